package mock

// Test-only access to unexported state, compiled only into this package's tests.

// Restarts returns how many times nodes came back from an outage.
func (r *Runner) Restarts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restarts
}
