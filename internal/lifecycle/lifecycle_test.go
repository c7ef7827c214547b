package lifecycle

import (
	"context"
	"errors"
	"sync"
	"testing"
)

func TestWaitDone(t *testing.T) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	wg.Go(func() { <-release })
	close(release)
	if err := Wait(context.Background(), &wg); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
}

func TestWaitContextEnds(t *testing.T) {
	var wg sync.WaitGroup
	release := make(chan struct{})
	wg.Go(func() { <-release })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wait(ctx, &wg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()
}
