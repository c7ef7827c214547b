//go:build cgo

package mock

// GPM and MIG on the NVML bridge: the server answers go-nvml's GPM calls
// (GpmQueryDeviceSupport, GpmSampleAlloc, GpmSampleGet, GpmMigSampleGet,
// GpmMetricsGet) from the simulation, and a partitioned GPU hands out MIG
// device handles (GetMaxMigDeviceCount, GetMigDeviceHandleByIndex) whose
// memory, identity and processes are the simulated instances'.

import (
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	nvmlmock "github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	nvmlsource "github.com/fleettop/fleettop/collector/nvml"
	"github.com/fleettop/fleettop/fleet"
)

// gpmSample is the bridge's GPM sample: which device (and GPU instance) was
// sampled, and when.
type gpmSample struct {
	mu   sync.Mutex
	dev  int // -1: never taken
	inst int // index into the node's instances; -1: the whole GPU
	t    time.Time
}

var _ nvml.GpmSample = (*gpmSample)(nil)

func (g *gpmSample) Free() nvml.Return { return nvml.SUCCESS }

// Get and MigGet are answered by the server (they need its devices).
func (g *gpmSample) Get(nvml.Device) nvml.Return         { return nvml.ERROR_NOT_SUPPORTED }
func (g *gpmSample) MigGet(nvml.Device, int) nvml.Return { return nvml.ERROR_NOT_SUPPORTED }

func (s *NVMLServer) devIndex(h nvml.Device) int {
	sd, ok := h.(*server.Device)
	if !ok {
		return -1
	}
	for _, d := range s.devs {
		if d.Device == sd {
			return d.idx
		}
	}
	return -1
}

func (s *NVMLServer) wireGPM() {
	gpm := s.node.Model.hasGPM()
	s.GpmQueryDeviceSupportFunc = func(h nvml.Device) (nvml.GpmSupport, nvml.Return) {
		if s.devIndex(h) < 0 {
			return nvml.GpmSupport{}, nvml.ERROR_INVALID_ARGUMENT
		}
		sup := nvml.GpmSupport{Version: nvml.GPM_SUPPORT_VERSION}
		if gpm {
			sup.IsSupportedDevice = 1
		}
		return sup, nvml.SUCCESS
	}
	s.GpmSampleAllocFunc = func() (nvml.GpmSample, nvml.Return) {
		return &gpmSample{dev: -1, inst: -1}, nvml.SUCCESS
	}
	take := func(h nvml.Device, gi int, mig bool, smp nvml.GpmSample) nvml.Return {
		g, ok := smp.(*gpmSample)
		d := s.devIndex(h)
		if !ok || d < 0 {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		if !gpm {
			return nvml.ERROR_NOT_SUPPORTED
		}
		inst := -1
		if mig {
			for i := range s.node.inst {
				if in := &s.node.inst[i]; in.parent == d && in.slice.gi == gi {
					inst = i
				}
			}
			if inst < 0 {
				return nvml.ERROR_NOT_FOUND
			}
		}
		g.mu.Lock()
		g.dev, g.inst, g.t = d, inst, s.now()
		g.mu.Unlock()
		return nvml.SUCCESS
	}
	s.GpmSampleGetFunc = func(h nvml.Device, smp nvml.GpmSample) nvml.Return { return take(h, 0, false, smp) }
	s.GpmMigSampleGetFunc = func(h nvml.Device, gi int, smp nvml.GpmSample) nvml.Return { return take(h, gi, true, smp) }
	s.GpmMetricsGetFunc = func(req *nvml.GpmMetricsGetType) nvml.Return {
		a, ok1 := req.Sample1.(*gpmSample)
		b, ok2 := req.Sample2.(*gpmSample)
		if !ok1 || !ok2 || req.NumMetrics > uint32(len(req.Metrics)) {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		a.mu.Lock()
		ad, ai, at := a.dev, a.inst, a.t
		a.mu.Unlock()
		b.mu.Lock()
		bd, bi, bt := b.dev, b.inst, b.t
		b.mu.Unlock()
		if ad < 0 || ad != bd || ai != bi || !bt.After(at) {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		// The simulation's activity at the second sample stands for the
		// interval's average.
		var ds fleet.DeviceSample
		if bi >= 0 {
			s.node.ReadInstance(bi, bt, &ds)
		} else {
			el := bt.Sub(s.node.start).Seconds()
			st := s.node.state(bd, el, float64(bt.UnixNano())/1e9)
			if st.fellOff {
				return nvml.ERROR_GPU_IS_LOST
			}
			s.node.setProfile(hash2(s.node.key, uint64(bd)), el, &st, &ds, 1)
		}
		for i := range req.NumMetrics {
			r := &req.Metrics[i]
			r.NvmlReturn, r.Value = uint32(nvml.ERROR_NOT_SUPPORTED), 0
			for _, gm := range nvmlsource.GPMMetrics {
				if uint32(gm.ID) == r.MetricId {
					if v, ok := ds.Get(gm.Metric); ok {
						r.NvmlReturn, r.Value = uint32(nvml.SUCCESS), v/gm.Scale
					}
				}
			}
		}
		return nvml.SUCCESS
	}
}

// wireMIG makes device d hand out the handles of its simulated MIG instances.
func (s *NVMLServer) wireMIG(d *device) {
	var insts []int
	for i := range s.node.inst {
		if s.node.inst[i].parent == d.idx {
			insts = append(insts, i)
		}
	}
	if len(insts) == 0 {
		d.GetMigModeFunc = func() (int, int, nvml.Return) {
			return nvml.DEVICE_MIG_DISABLE, nvml.DEVICE_MIG_DISABLE, nvml.SUCCESS
		}
		return
	}
	handles := make([]nvml.Device, len(insts))
	for k, i := range insts {
		handles[k] = s.migHandle(d, i)
	}
	d.GetMigModeFunc = func() (int, int, nvml.Return) {
		return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS
	}
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	d.GetMigDeviceHandleByIndexFunc = func(k int) (nvml.Device, nvml.Return) {
		if k < 0 || k >= 7 {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		if k >= len(handles) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return handles[k], nvml.SUCCESS
	}
}

// migHandle is the MIG device handle of the node's instance i. Only what
// NVML answers for MIG devices is filled in; the rest is not supported.
func (s *NVMLServer) migHandle(parent *device, i int) nvml.Device {
	in := &s.node.inst[i]
	h := &nvmlmock.Device{}
	read := func() (fleet.DeviceSample, bool) {
		var ds fleet.DeviceSample
		s.node.ReadInstance(i, s.now(), &ds)
		return ds, ds.Has(fleet.MetricMemTotal)
	}
	notSup := func() nvml.Return { return nvml.ERROR_NOT_SUPPORTED }
	h.GetNameFunc = func() (string, nvml.Return) { return in.dev.Model, nvml.SUCCESS }
	h.GetUUIDFunc = func() (string, nvml.Return) { return in.dev.UUID, nvml.SUCCESS }
	h.GetGpuInstanceIdFunc = func() (int, nvml.Return) { return in.slice.gi, nvml.SUCCESS }
	h.GetComputeInstanceIdFunc = func() (int, nvml.Return) { return 0, nvml.SUCCESS }
	h.GetDeviceHandleFromMigDeviceHandleFunc = func() (nvml.Device, nvml.Return) { return parent.Device, nvml.SUCCESS }
	h.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return true, nvml.SUCCESS }
	h.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		ds, ok := read()
		if !ok {
			return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST
		}
		return memory(&ds), nvml.SUCCESS
	}
	h.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		ds, ok := read()
		if !ok {
			return nvml.Memory_v2{}, nvml.ERROR_GPU_IS_LOST
		}
		return memoryV2(&ds), nvml.SUCCESS
	}
	h.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		var out []nvml.ProcessInfo
		for _, p := range s.node.DeviceProcs(nil, in.dev.Index, s.now()) {
			out = append(out, nvml.ProcessInfo{Pid: p.PID, UsedGpuMemory: p.UsedMemory,
				GpuInstanceId: uint32(in.slice.gi), ComputeInstanceId: 0})
		}
		return out, nvml.SUCCESS
	}
	h.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	h.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, notSup() }
	h.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 0, notSup() }
	h.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, notSup() }
	h.GetClockInfoFunc = func(nvml.ClockType) (uint32, nvml.Return) { return 0, notSup() }
	h.GetFanSpeedFunc = func() (uint32, nvml.Return) { return 0, notSup() }
	h.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0, notSup() }
	h.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) { return 0, notSup() }
	h.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) { return 0, notSup() }
	h.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, notSup() }
	h.GetRetiredPagesFunc = func(nvml.PageRetirementCause) ([]uint64, nvml.Return) { return nil, notSup() }
	h.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) { return nil, notSup() }
	h.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return notSup() }
	return h
}
