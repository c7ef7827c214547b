package remotewrite

// Test-only access to unexported state, compiled only into this package's tests.

// Pending returns the intervals buffered and not yet delivered.
func (w *Writer) Pending() int {
	p, _ := w.buf.stats()
	return p
}
