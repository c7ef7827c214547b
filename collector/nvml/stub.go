//go:build !cgo

// Package nvml is the NVIDIA source. This build has no cgo, so there is no
// NVML: the source reports itself unavailable and the agent runs without it.
package nvml

import (
	"context"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
)

// Source is the unavailable NVML source of a build without cgo.
type Source struct{}

var _ collector.Source = (*Source)(nil)

var errNoCgo = collector.NoData("NVML not available: built without cgo")

// New returns the unavailable source. Without cgo go-nvml does not build, so
// lib is untyped here; it is never used.
func New(lib any, o Options) *Source { return &Source{} }

// NewSystem returns the unavailable source.
func NewSystem(o Options) *Source { return &Source{} }

// Name implements collector.Source.
func (*Source) Name() string { return "nvml" }

// Start reports that NVML is not available.
func (*Source) Start(context.Context) (collector.Inventory, error) {
	return collector.Inventory{}, errNoCgo
}

// Collect reports that NVML is not available.
func (*Source) Collect(context.Context, *fleet.Sample) error { return errNoCgo }

// Close does nothing.
func (*Source) Close() error { return nil }

// Skipped is always 0 without cgo.
func (*Source) Skipped() uint64 { return 0 }

// Counters is empty without cgo.
func (*Source) Counters() map[string]uint64 { return nil }
