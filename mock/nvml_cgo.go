//go:build cgo

package mock

// The NVML bridge serves a simulated node through go-nvml's mock server, so
// the real NVML source (collector/nvml) is what reads the simulated GPUs:
// every telemetry call of the server's devices is answered from the
// simulation, and XID errors arrive through an NVML event set.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	nvmlmock "github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/fleettop/fleettop/collector"
	nvmlsource "github.com/fleettop/fleettop/collector/nvml"
	"github.com/fleettop/fleettop/fleet"
)

// arch maps the simulation's models to NVML architectures and compute capabilities.
var arch = map[string]struct {
	a            nvml.DeviceArchitecture
	major, minor int
}{
	"h100": {nvml.DEVICE_ARCH_HOPPER, 9, 0},
	"h200": {nvml.DEVICE_ARCH_HOPPER, 9, 0},
	"h20":  {nvml.DEVICE_ARCH_HOPPER, 9, 0},
	"a100": {nvml.DEVICE_ARCH_AMPERE, 8, 0},
	"l40s": {nvml.DEVICE_ARCH_ADA, 8, 9},
}

// NVMLServer is go-nvml's mock server with its devices wired to a simulated node.
type NVMLServer struct {
	*server.Server
	node *Node
	now  func() time.Time
	devs []*device

	evMu   sync.Mutex
	evLast time.Time
	queue  []fleet.Event
}

type device struct {
	*server.Device
	idx int

	mu     sync.Mutex
	last   time.Time
	energy float64            // joules
	power  float64            // watts at last
	ds     fleet.DeviceSample // the reading at last
	have   bool
}

var _ nvml.Interface = (*NVMLServer)(nil)

// NewNVMLServer returns an NVML server that reports node n (an NVIDIA node)
// at the simulated time now().
func NewNVMLServer(n *Node, now func() time.Time) (*NVMLServer, error) {
	if n.Model.Vendor != fleet.VendorNVIDIA {
		return nil, errNotNVIDIA(n.Info.ID)
	}
	if now == nil {
		now = time.Now
	}
	a := arch[n.Model.Key]
	cfg := gpus.Config{
		Name: n.Model.Name, Architecture: a.a, Brand: nvml.BRAND_NVIDIA,
		MemoryMB: n.Model.MemMiB, CudaMajor: a.major, CudaMinor: a.minor,
	}
	srv, err := server.New(
		server.WithGPUs(gpus.Multiple(len(n.Info.Devices), cfg)...),
		server.WithDriverVersion(n.Info.Driver),
		server.WithNVMLVersion("12."+n.Info.Driver),
		server.WithCUDADriverVersion(cudaVersion(n.Info.CUDA)),
	)
	if err != nil {
		return nil, err
	}
	s := &NVMLServer{Server: srv, node: n, now: now, evLast: now()}
	for i, h := range srv.Devices {
		d := &device{Device: h.(*server.Device), idx: i}
		inv := n.Info.Devices[i]
		d.UUID, d.PciBusID = inv.UUID, inv.PCIBusID
		d.energy = -1
		s.wire(d)
		s.devs = append(s.devs, d)
	}
	srv.EventSetCreateFunc = s.eventSetCreate
	s.wireGPM()
	return s, nil
}

type errNotNVIDIA string

func (e errNotNVIDIA) Error() string {
	return "mock nvml: node " + string(e) + " is not an NVIDIA node"
}

func cudaVersion(v string) int {
	var major, minor int
	for i, part := 0, 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '.':
			part++
		case c >= '0' && c <= '9' && part == 0:
			major = major*10 + int(c-'0')
		case c >= '0' && c <= '9' && part == 1:
			minor = minor*10 + int(c-'0')
		}
	}
	return major*1000 + minor*10
}

// read returns the device's readings now, integrating its energy counter.
// memory is a device's memory as NVML reports it, from its sample.
func memory(ds *fleet.DeviceSample) nvml.Memory {
	used, _ := ds.Get(fleet.MetricMemUsed)
	total, _ := ds.Get(fleet.MetricMemTotal)
	return nvml.Memory{Total: uint64(total), Used: uint64(used), Free: uint64(total) - uint64(used)}
}

// memoryV2 is memory in nvmlDeviceGetMemoryInfo_v2's struct.
func memoryV2(ds *fleet.DeviceSample) nvml.Memory_v2 {
	m := memory(ds)
	return nvml.Memory_v2{Version: nvml.STRUCT_VERSION(nvml.Memory_v2{}, 2), Total: m.Total, Used: m.Used, Free: m.Free}
}

func (s *NVMLServer) read(d *device) (fleet.DeviceSample, bool) {
	t := s.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	// One collection asks a device a dozen questions within milliseconds:
	// they share one simulated reading, as they would one instant.
	if dt := t.Sub(d.last); d.have && dt >= 0 && dt < readReuse {
		return d.ds, d.ds.Has(fleet.MetricUtil)
	}
	if d.energy < 0 {
		d.energy = s.node.InitialEnergy(d.idx, t)
	} else if dt := t.Sub(d.last).Seconds(); dt > 0 {
		d.energy += d.power * dt
	}
	var ds fleet.DeviceSample
	s.node.ReadDevice(d.idx, t, d.energy, &ds)
	d.last = t
	d.power, _ = ds.Get(fleet.MetricPower)
	d.ds, d.have = ds, true
	return ds, ds.Has(fleet.MetricUtil)
}

// readReuse is how long one simulated reading answers a device's calls.
const readReuse = 100 * time.Millisecond

func (s *NVMLServer) wire(d *device) {
	limitMW := uint32(s.node.Model.PowerLimit * 1000)
	d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
		var p nvml.PciInfo
		for i := 0; i < len(d.PciBusID) && i < len(p.BusId)-1; i++ {
			p.BusId[i] = int8(d.PciBusID[i])
		}
		p.PciDeviceId = d.Config.PciDeviceId
		return p, nvml.SUCCESS
	}
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return limitMW, nvml.SUCCESS }
	d.GetPowerManagementLimitFunc = func() (uint32, nvml.Return) { return limitMW, nvml.SUCCESS }
	metric := func(m fleet.Metric) (float64, nvml.Return) {
		ds, ok := s.read(d)
		if !ok {
			return 0, nvml.ERROR_GPU_IS_LOST
		}
		v, _ := ds.Get(m)
		return v, nvml.SUCCESS
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		ds, ok := s.read(d)
		if !ok {
			return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST
		}
		u, _ := ds.Get(fleet.MetricUtil)
		mu, _ := ds.Get(fleet.MetricMemUtil)
		return nvml.Utilization{Gpu: uint32(u*100 + 0.5), Memory: uint32(mu*100 + 0.5)}, nvml.SUCCESS
	}
	d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		ds, ok := s.read(d)
		if !ok {
			return nvml.Memory_v2{}, nvml.ERROR_GPU_IS_LOST
		}
		return memoryV2(&ds), nvml.SUCCESS
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) {
		v, r := metric(fleet.MetricPower)
		return uint32(v * 1000), r
	}
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) {
		v, r := metric(fleet.MetricEnergy)
		return uint64(v * 1000), r
	}
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) {
		v, r := metric(fleet.MetricTemp)
		return uint32(v), r
	}
	d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
		m := fleet.MetricSMClock
		switch c {
		case nvml.CLOCK_MEM:
			m = fleet.MetricMemClock
		case nvml.CLOCK_SM, nvml.CLOCK_GRAPHICS:
		default:
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		v, r := metric(m)
		return uint32(v), r
	}
	d.GetFanSpeedFunc = func() (uint32, nvml.Return) {
		if !s.node.Model.HasFan {
			return 0, nvml.ERROR_NOT_SUPPORTED // passively cooled SXM boards
		}
		v, r := metric(fleet.MetricFan)
		return uint32(v*100 + 0.5), r
	}
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) {
		v, r := metric(fleet.MetricThrottle)
		return uint64(v), r
	}
	d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
		m := fleet.MetricECCCorrected
		switch {
		case t == nvml.MEMORY_ERROR_TYPE_UNCORRECTED && c == nvml.AGGREGATE_ECC:
			m = fleet.MetricECCUncorrectedAgg
		case t == nvml.MEMORY_ERROR_TYPE_UNCORRECTED:
			m = fleet.MetricECCUncorrected
		case c == nvml.AGGREGATE_ECC:
			m = fleet.MetricECCCorrectedAgg
		}
		v, r := metric(m)
		return uint64(v), r
	}
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) {
		ds, ok := s.read(d)
		if !ok {
			return 0, 0, false, false, nvml.ERROR_GPU_IS_LOST
		}
		rows, _ := ds.Get(fleet.MetricRemappedRows)
		unc, _ := ds.Get(fleet.MetricECCUncorrected)
		pending, _ := ds.Get(fleet.MetricRemapPending)
		failed, _ := ds.Get(fleet.MetricRemapFailure)
		return int(rows - min(unc, rows)), int(min(unc, rows)), pending > 0, failed > 0, nvml.SUCCESS
	}
	d.GetProcessUtilizationFunc = func(since uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		if _, ok := s.read(d); !ok {
			return nil, nvml.ERROR_GPU_IS_LOST
		}
		now := s.now()
		var out []nvml.ProcessUtilizationSample
		for _, p := range s.node.DeviceProcs(nil, d.idx, now) {
			if u, ok := p.Util.Get(); ok {
				out = append(out, nvml.ProcessUtilizationSample{Pid: p.PID, TimeStamp: uint64(now.UnixMicro()),
					SmUtil: uint32(u*100 + 0.5)})
			}
		}
		if len(out) == 0 {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return out, nvml.SUCCESS
	}
	s.wireMIG(d)
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		if _, ok := s.read(d); !ok {
			return nil, nvml.ERROR_GPU_IS_LOST
		}
		var out []nvml.ProcessInfo
		for _, p := range s.node.DeviceProcs(nil, d.idx, s.now()) {
			out = append(out, nvml.ProcessInfo{Pid: p.PID, UsedGpuMemory: p.UsedMemory,
				GpuInstanceId: 0xFFFFFFFF, ComputeInstanceId: 0xFFFFFFFF})
		}
		return out, nvml.SUCCESS
	}
	d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
}

// eventSetCreate returns an event set that delivers the simulation's XID
// errors as NVML would: one per Wait, or a timeout. Like the driver's wait,
// it sleeps until the next scheduled XID or the timeout, whichever comes
// first, rather than polling: a simulated node costs its collector no more
// wake-ups than a real one.
func (s *NVMLServer) eventSetCreate() (nvml.EventSet, nvml.Return) {
	set := &nvmlmock.EventSet{}
	set.FreeFunc = func() nvml.Return { return nvml.SUCCESS }
	set.WaitFunc = func(ms uint32) (nvml.EventData, nvml.Return) {
		deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
		for {
			ev, ok, next := s.nextXID()
			if ok {
				var h nvml.Device
				if ev.Device >= 0 && ev.Device < len(s.devs) {
					h = s.Devices[ev.Device]
				}
				return nvml.EventData{Device: h, EventType: nvml.EventTypeXidCriticalError,
					EventData: uint64(ev.Code), GpuInstanceId: 0xFFFFFFFF, ComputeInstanceId: 0xFFFFFFFF}, nvml.SUCCESS
			}
			left := time.Until(deadline)
			if left <= 0 {
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
			// next is on the simulation's clock, which may not be the wall
			// clock (tests step it): the wait still ends by its deadline.
			time.Sleep(min(left, max(next, time.Millisecond)))
		}
	}
	return set, nvml.SUCCESS
}

// nextXID returns the next XID the simulation raised since the last call;
// when there is none, next is how long (on the simulation's clock) until the
// next scheduled one.
func (s *NVMLServer) nextXID() (ev fleet.Event, ok bool, next time.Duration) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if len(s.queue) == 0 {
		t := s.now()
		for _, ev := range s.node.AppendEvents(nil, s.evLast, t) {
			if ev.Kind == fleet.EventXID {
				s.queue = append(s.queue, ev)
			}
		}
		s.evLast = t
	}
	if len(s.queue) == 0 {
		return fleet.Event{}, false, s.node.nextXIDAfter(s.evLast).Sub(s.evLast)
	}
	ev = s.queue[0]
	s.queue = s.queue[1:]
	return ev, true, 0
}

// collectorSources reads an NVIDIA node through the real NVML source over
// the bridge, completed with the simulated host, jobs and non-XID events; an
// Ascend node through the simulated source.
func collectorSources(n *Node) ([]collector.Source, error) {
	if n.Model.Vendor != fleet.VendorNVIDIA {
		return []collector.Source{NewSource(n, SourceOptions{})}, nil
	}
	srv, err := NewNVMLServer(n, time.Now)
	if err != nil {
		return nil, err
	}
	return []collector.Source{&withCompanion{
		Source: nvmlsource.New(srv, nvmlsource.Options{}),
		comp:   NewSource(n, SourceOptions{DevicesElsewhere: true}),
	}}, nil
}

// withCompanion is the NVML source followed, in the same Collect, by the
// simulated companion, which names the processes NVML found, attaches their
// jobs and adds the host sample and the non-XID events. One source, so the
// agent does not shift the companion's device indexes past NVML's devices.
type withCompanion struct {
	collector.Source
	comp *Source
}

func (w *withCompanion) Start(ctx context.Context) (collector.Inventory, error) {
	inv, err := w.Source.Start(ctx)
	if err != nil {
		return inv, err
	}
	if _, err := w.comp.Start(ctx); err != nil {
		return inv, err
	}
	return inv, nil
}

func (w *withCompanion) Collect(ctx context.Context, s *fleet.Sample) error {
	err := w.Source.Collect(ctx, s)
	return errors.Join(err, w.comp.Collect(ctx, s))
}

func (w *withCompanion) Close() error { return errors.Join(w.Source.Close(), w.comp.Close()) }
