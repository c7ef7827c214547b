package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// CloseContext honours the shutdown deadline: with a commit holding the
// store (a wedged disk), it gives up when ctx ends instead of blocking
// the aggregator's exit past systemd's stop timeout.
func TestCloseContextHonoursDeadline(t *testing.T) {
	clk := newClock()
	st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now, SyncNormal: true})
	st.Record(testNode("n1", 1), 0, testSample(1, clk.t, 1, 0.5))
	st.commitMu.Lock() // a commit that never ends
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- st.CloseContext(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("CloseContext = %v, want the deadline's error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("CloseContext ignored its deadline")
	}
	st.commitMu.Unlock()
}
