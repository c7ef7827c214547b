package prometheus

// Test-only access to unexported state, compiled only into this package's tests.

import (
	"io"
)

// WriteText writes the fleet's series in the text format .
func (e *Exporter) WriteText(w io.Writer, flt Filter) error {
	ts := &textSink{w: w}
	e.render(ts, flt)
	ts.flush()
	return ts.err
}
