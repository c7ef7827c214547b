// Package lifecycle holds the one way the services' Close(ctx) methods wait
// for the goroutines they own: until the WaitGroup is done or ctx ends,
// whichever comes first.
package lifecycle

import (
	"context"
	"sync"
)

// Wait waits for wg, or for ctx. It returns nil when wg is done first and
// ctx.Err() when ctx ends first; the goroutines are then left running and a
// helper goroutine waits on for them.
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
