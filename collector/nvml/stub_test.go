//go:build !cgo

package nvml

import (
	"context"
	"errors"
	"testing"

	"github.com/fleettop/fleettop/collector"
)

func TestStubReportsUnavailable(t *testing.T) {
	s := NewSystem(Options{})
	_, err := s.Start(context.Background())
	if !errors.Is(err, collector.ErrNoData) || err.Error() != "NVML not available: built without cgo" {
		t.Fatalf("start: %v", err)
	}
}
