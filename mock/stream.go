package mock

import (
	"context"
	"slices"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// AgentSampler samples a Source as the collector agent does, for code that
// replays the mock's stream without running agents (benchmarks, loadgen):
// each sample starts empty, and carries the process list only when it
// changed since the previous one (ProcsSet), the first always.
type AgentSampler struct {
	src   *Source
	last  []fleet.Process
	began bool
}

// NewAgentSampler samples src, which must be started.
func NewAgentSampler(src *Source) *AgentSampler { return &AgentSampler{src: src} }

// Sample fills s (reusing its slices) with the sample seq taken at at.
func (a *AgentSampler) Sample(ctx context.Context, s *fleet.Sample, seq uint64, at time.Time) error {
	s.Devices, s.Procs, s.Events, s.Host, s.ProcsSet = s.Devices[:0], s.Procs[:0], s.Events[:0], nil, false
	s.Seq, s.Time = seq, at
	if err := a.src.Collect(ctx, s); err != nil {
		return err
	}
	if !a.began || !slices.Equal(s.Procs, a.last) {
		s.ProcsSet = true
		a.last = append(a.last[:0], s.Procs...)
	} else {
		s.Procs = s.Procs[:0]
	}
	a.began = true
	return nil
}
