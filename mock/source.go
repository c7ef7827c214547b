package mock

import (
	"context"
	"fmt"
	"time"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
)

// Source is a simulated node's telemetry: devices (NVIDIA-like or
// Ascend-like), host, processes with jobs, and fault events. It implements
// collector.Source in pure Go.
type Source struct {
	node   *Node
	now    func() time.Time
	host   bool
	devs   bool
	last   time.Time
	energy []float64
	states []devState
}

var _ collector.Source = (*Source)(nil)

// SourceOptions tune a simulated source.
type SourceOptions struct {
	// Now is the simulated clock, used when the sample has no time yet;
	// default time.Now.
	Now func() time.Time
	// NoHost leaves the host sample out (when a real host source runs beside).
	NoHost bool
	// DevicesElsewhere makes this a companion of another source that reads
	// the node's devices (the NVML bridge): it reports no devices, adds the
	// host sample and the events other than XIDs, and names the processes the
	// other source found and attaches their jobs, as the jobs source would.
	DevicesElsewhere bool
}

// NewSource returns a source that reads node n.
func NewSource(n *Node, o SourceOptions) *Source {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Source{node: n, now: o.Now, host: !o.NoHost, devs: !o.DevicesElsewhere}
}

// Node returns the simulated node behind the source.
func (s *Source) Node() *Node { return s.node }

// Name implements collector.Source.
func (s *Source) Name() string {
	if !s.devs {
		return "mock-host"
	}
	if s.node.Model.Vendor == fleet.VendorAscend {
		return "mock-ascend"
	}
	return "mock-nvidia"
}

// Start implements collector.Source.
func (s *Source) Start(context.Context) (collector.Inventory, error) {
	n := s.node
	s.energy = make([]float64, len(n.Info.Devices))
	s.states = make([]devState, len(n.Info.Devices))
	t := s.now()
	for d := range s.energy {
		s.energy[d] = n.InitialEnergy(d, t)
	}
	if !s.devs {
		return collector.Inventory{}, nil
	}
	devs := append(append([]fleet.Device(nil), n.Info.Devices...), n.Instances()...)
	return collector.Inventory{Devices: devs, Driver: n.Info.Driver, CUDA: n.Info.CUDA}, nil
}

// Collect implements collector.Source.
func (s *Source) Collect(_ context.Context, smp *fleet.Sample) error {
	if s.states == nil {
		return fmt.Errorf("mock source %s: collect before start", s.node.Info.ID)
	}
	t := smp.Time
	if t.IsZero() {
		t = s.now()
	}
	n := s.node
	dt := 0.0
	before := len(smp.Events)
	if !s.last.IsZero() {
		dt = t.Sub(s.last).Seconds()
		smp.Events = n.AppendEvents(smp.Events, s.last, t)
	}
	if dt < 0 {
		dt = 0
	}
	if !s.devs {
		s.companion(t, smp, before)
		return nil
	}
	for d := range s.states {
		// The energy counter integrates the draw since the previous reading.
		s.energy[d] += s.states[d].power * dt
		var ds fleet.DeviceSample
		s.states[d] = n.ReadDevice(d, t, s.energy[d], &ds)
		smp.Devices = append(smp.Devices, ds)
	}
	for i := range n.inst {
		var ds fleet.DeviceSample
		n.ReadInstance(i, t, &ds)
		smp.Devices = append(smp.Devices, ds)
	}
	if s.host {
		h := smp.Host
		if h == nil {
			h = new(fleet.HostSample)
			smp.Host = h
		}
		n.ReadHost(t, h)
	}
	smp.Procs = n.AppendProcs(smp.Procs, t, s.states)
	s.last = t
	return nil
}

// companion fills in what the device source cannot know. Events from
// index before on are this call's.
func (s *Source) companion(t time.Time, smp *fleet.Sample, before int) {
	n := s.node
	// XID events come through the device source; keep the others.
	kept := smp.Events[:before]
	for _, ev := range smp.Events[before:] {
		if ev.Kind != fleet.EventXID {
			kept = append(kept, ev)
		}
	}
	smp.Events = kept
	var want []fleet.Process
	for i := range smp.Procs {
		p := &smp.Procs[i]
		want = n.DeviceProcs(want[:0], p.Device, t)
		if len(want) == 1 && want[0].PID == p.PID {
			p.Name, p.Job = want[0].Name, want[0].Job
		}
	}
	if s.host {
		if smp.Host == nil {
			smp.Host = new(fleet.HostSample)
		}
		n.ReadHost(t, smp.Host)
	}
	s.last = t
}

// Close implements collector.Source.
func (s *Source) Close() error { return nil }
