//go:build cgo

package nvml

import (
	"sync/atomic"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/fleettop/fleettop/fleet"
)

// gpmValue is what the fake GPM reports for metric id on GPU (or GPU instance) key.
func gpmValue(id uint32, key int) float64 {
	switch nvml.GpmMetricId(id) {
	case nvml.GPM_METRIC_PCIE_TX_PER_SEC, nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC:
		return float64(100 + key) // MiB/s
	}
	return float64(10*int(id) + key) // percent
}

type fakeSample struct {
	mock.GpmSample
	key   int // device index, or 50+GPU instance id
	taken int
}

// withGPM gives the first gpmDevs devices of srv GPM, and counts the samples taken.
func withGPM(srv *server.Server, gpmDevs int, taken *atomic.Int64) {
	idx := func(h nvml.Device) int {
		for i, d := range srv.Devices {
			if d == h {
				return i
			}
		}
		return -1
	}
	srv.GpmQueryDeviceSupportFunc = func(h nvml.Device) (nvml.GpmSupport, nvml.Return) {
		i := idx(h)
		return nvml.GpmSupport{IsSupportedDevice: b2u(i >= 0 && i < gpmDevs)}, nvml.SUCCESS
	}
	srv.GpmSampleAllocFunc = func() (nvml.GpmSample, nvml.Return) {
		s := &fakeSample{key: -1}
		s.FreeFunc = func() nvml.Return { return nvml.SUCCESS }
		return s, nvml.SUCCESS
	}
	srv.GpmSampleGetFunc = func(h nvml.Device, s nvml.GpmSample) nvml.Return {
		taken.Add(1)
		fs := s.(*fakeSample)
		fs.key, fs.taken = idx(h), fs.taken+1
		return nvml.SUCCESS
	}
	srv.GpmMigSampleGetFunc = func(h nvml.Device, gi int, s nvml.GpmSample) nvml.Return {
		taken.Add(1)
		fs := s.(*fakeSample)
		fs.key, fs.taken = 50+gi, fs.taken+1
		return nvml.SUCCESS
	}
	srv.GpmMetricsGetFunc = func(req *nvml.GpmMetricsGetType) nvml.Return {
		a, b := req.Sample1.(*fakeSample), req.Sample2.(*fakeSample)
		if a == b || a.key != b.key || a.key < 0 {
			return nvml.ERROR_INVALID_ARGUMENT
		}
		for i := range req.NumMetrics {
			m := &req.Metrics[i]
			m.NvmlReturn, m.Value = uint32(nvml.SUCCESS), gpmValue(m.MetricId, b.key)
			if nvml.GpmMetricId(m.MetricId) == nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC {
				m.NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED) // one metric the driver lacks
			}
		}
		return nvml.SUCCESS
	}
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func TestGPMProfiling(t *testing.T) {
	srv := dgxh100.New()
	setNormal(srv)
	var taken atomic.Int64
	withGPM(srv, 4, &taken)
	s, _ := start(t, srv)
	// Start took the baseline sample, so the first collection already measures.
	devs := byIndex(collect(t, s))
	d1 := devs[1]
	for m, want := range map[fleet.Metric]float64{
		fleet.MetricGREngineActive: 0.11, fleet.MetricSMActive: 0.21, fleet.MetricSMOccupancy: 0.31,
		fleet.MetricTensorActive: 0.51, fleet.MetricDRAMActive: 1.0, // 101 % is clamped to 1
		fleet.MetricPCIeTx: 101 << 20, fleet.MetricNVLinkRx: 101 << 20,
	} {
		if got, ok := d1.Get(m); !ok || got != want {
			t.Errorf("device 1 %s = %v (present %v), want %v", m, got, ok, want)
		}
	}
	if d1.Has(fleet.MetricNVLinkTx) {
		t.Error("a GPM metric the driver refused is present")
	}
	if d1.Has(fleet.MetricPCIeRx) == false {
		t.Error("pcie_rx absent")
	}
	for _, m := range []fleet.Metric{fleet.MetricSMActive, fleet.MetricPCIeTx} {
		if d5 := devs[5]; d5.Has(m) {
			t.Errorf("device 5 has no GPM but reports %s", m)
		}
	}
	before := taken.Load()
	collect(t, s)
	if got := taken.Load() - before; got != 4 {
		t.Errorf("a collection took %d GPM samples, want one per GPM device (4)", got)
	}
}

func TestMIGInstancesAreDevices(t *testing.T) {
	srv := dgxh100.New()
	setNormal(srv)
	var taken atomic.Int64
	withGPM(srv, 8, &taken)
	parent := srv.Devices[0].(*server.Device)
	parent.GetMigModeFunc = func() (int, int, nvml.Return) { return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS }
	parent.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		t.Error("the parent's process list was read although its instances list the processes")
		return nil, nvml.SUCCESS
	}
	mig := func(gi int, name string, pid uint32) *mock.Device {
		return &mock.Device{
			GetNameFunc:              func() (string, nvml.Return) { return name, nvml.SUCCESS },
			GetUUIDFunc:              func() (string, nvml.Return) { return "MIG-" + name, nvml.SUCCESS },
			GetGpuInstanceIdFunc:     func() (int, nvml.Return) { return gi, nvml.SUCCESS },
			GetComputeInstanceIdFunc: func() (int, nvml.Return) { return 0, nvml.SUCCESS },
			GetMemoryInfoFunc:        func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: 40 << 30, Used: 1 << 30}, nvml.SUCCESS },
			GetMemoryInfo_v2Func: func() (nvml.Memory_v2, nvml.Return) {
				return nvml.Memory_v2{Total: 40 << 30, Used: 1 << 30, Free: 39 << 30}, nvml.SUCCESS
			},
			GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED },
			GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
				return []nvml.ProcessInfo{{Pid: pid, UsedGpuMemory: 1 << 30, GpuInstanceId: uint32(gi)}}, nvml.SUCCESS
			},
			GetProcessUtilizationFunc: func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
				return []nvml.ProcessUtilizationSample{{Pid: pid, TimeStamp: 5, SmUtil: 40}, {Pid: pid, TimeStamp: 9, SmUtil: 55}}, nvml.SUCCESS
			},
		}
	}
	handles := []nvml.Device{mig(1, "NVIDIA H100 80GB HBM3 MIG 3g.40gb", 7001), nil, mig(2, "NVIDIA H100 80GB HBM3 MIG 3g.40gb", 7002)}
	parent.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	parent.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i < len(handles) && handles[i] != nil {
			return handles[i], nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	s, inv := start(t, srv)
	if len(inv.Devices) != 10 || !inv.Devices[0].MIG {
		t.Fatalf("inventory: %d devices (want 8 GPUs + 2 instances), GPU 0 MIG %v", len(inv.Devices), inv.Devices[0].MIG)
	}
	for k, gi := range []int{1, 2} {
		d := inv.Devices[8+k]
		want := fleet.MIGInstance{Parent: 0, GPUInstanceID: gi, Profile: "3g.40gb"}
		if d.Index != 8+k || d.Instance != want || d.MemoryTotal != 40<<30 || !d.IsInstance() {
			t.Errorf("instance %d: %+v", k, d)
		}
	}
	smp := collect(t, s)
	devs := byIndex(smp)
	in := devs[8]
	if v, ok := in.Get(fleet.MetricMemUsed); !ok || v != 1<<30 {
		t.Errorf("instance memory used %v %v", v, ok)
	}
	if in.Has(fleet.MetricUtil) {
		t.Error("instance reports utilisation NVML does not offer")
	}
	if v, ok := in.Get(fleet.MetricSMActive); !ok || v != 0.71 {
		t.Errorf("instance sm_active %v %v: want the GPU instance's GPM sample (gi 1)", v, ok)
	}
	var seen int
	for _, p := range smp.Procs {
		switch p.PID {
		case 7001, 7002:
			seen++
			if p.Device != 8 && p.Device != 9 {
				t.Errorf("MIG process %d on device %d", p.PID, p.Device)
			}
			if u, ok := p.Util.Get(); !ok || u != 0.55 {
				t.Errorf("process %d utilisation %v %v, want the newest sample 0.55", p.PID, u, ok)
			}
		}
		if p.Device == 0 {
			t.Errorf("process %+v listed on the MIG parent", p)
		}
	}
	if seen != 2 {
		t.Errorf("%d MIG processes, want 2", seen)
	}
}
