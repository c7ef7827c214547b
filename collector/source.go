// Package collector is the node agent: telemetry sources, the sampling loop,
// the durable spool and the uplink to the aggregator.
package collector

import (
	"context"
	"errors"

	"github.com/fleettop/fleettop/fleet"
)

// ErrNoData reports that a source's hardware is not on this machine (a jump
// host without GPUs, a node without npu-smi). It is not a failure: the agent
// logs it once and runs without that source.
var ErrNoData = errors.New("hardware not present")

// Source reads one kind of telemetry. The agent calls Start once, then Collect
// once per tick (never concurrently with itself), then Close.
type Source interface {
	// Name is the source's registry name, e.g. "nvml", "ascend", "host".
	Name() string
	// Start discovers the hardware and returns what it found. It returns an
	// error wrapping ErrNoData when the hardware is absent.
	Start(ctx context.Context) (Inventory, error)
	// Collect adds this tick's readings to s: device samples (with the indexes
	// given in Start's inventory), the host sample, the complete list of
	// current compute processes (appended to s.Procs), and any events seen
	// since the previous call (appended to s.Events). It must return promptly
	// even when hardware hangs.
	Collect(ctx context.Context, s *fleet.Sample) error
	// Close stops the source's goroutines and releases the hardware.
	Close() error
}

// Inventory is what a source found at Start.
type Inventory struct {
	Devices []fleet.Device
	Driver  string // driver version, "" when not applicable
	CUDA    string // CUDA (or CANN) version, "" when not applicable
}
