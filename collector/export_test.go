package collector

// Test-only access to unexported state, compiled only into this package's tests.

// Spool returns the agent's spool (nil before Run).
func (a *Agent) Spool() *Spool { return a.spool }

// Connected reports whether a session with the aggregator is up.
func (a *Agent) Connected() bool { return a.connected.Load() }

// UntilBoundary is untilBoundary: the wait to the interval's next wall-clock multiple.
var UntilBoundary = untilBoundary
