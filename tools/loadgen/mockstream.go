package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/mock"
)

// mockRecords samples node k of `fleettop mock`'s default scenario (seed 1)
// once a second from t0, as a collector agent would: a few milliseconds of
// timer jitter, the process list only when it changes.
func mockRecords(o options, k int, t0 time.Time) (fleet.Node, []fleet.Sample, error) {
	sc, err := mock.New(mock.Config{Seed: 1, Start: t0.Add(-time.Hour), Nodes: max(o.templates, k+1)})
	if err != nil {
		return fleet.Node{}, nil, fmt.Errorf("mock scenario: %w", err)
	}
	n := sc.Nodes[k]
	src := mock.NewSource(n, mock.SourceOptions{Now: func() time.Time { return t0 }})
	if _, err := src.Start(context.Background()); err != nil {
		return fleet.Node{}, nil, fmt.Errorf("mock source: %w", err)
	}
	recs := make([]fleet.Sample, o.records)
	smp := mock.NewAgentSampler(src)
	for i := range recs {
		s := &recs[i]
		jitter := time.Duration((i*7919+k*104729)%4000) * time.Microsecond
		if err := smp.Sample(context.Background(), s, uint64(i+1), t0.Add(time.Duration(i)*time.Second+jitter)); err != nil {
			return fleet.Node{}, nil, fmt.Errorf("mock collect: %w", err)
		}
		s.Time = t0.Add(time.Duration(i) * time.Second) // the template's frames carry exact seconds
		if !s.ProcsSet {
			s.Procs = nil
		}
	}
	return n.Info, recs, nil
}
