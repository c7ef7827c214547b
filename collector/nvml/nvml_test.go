//go:build cgo

package nvml

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
)

// setNormal gives every device of srv plausible readings that depend on its
// index, and no events.
func setNormal(srv *server.Server) {
	for i, h := range srv.Devices {
		d := h.(*server.Device)
		i := uint32(i)
		d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: 10 + i, Memory: 5 + i}, nvml.SUCCESS
		}
		d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
			return nvml.Memory_v2{Total: d.MemoryInfo.Total, Used: uint64(i+1) << 30, Free: d.MemoryInfo.Total - uint64(i+1)<<30}, nvml.SUCCESS
		}
		d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 300_000 + i*1000, nvml.SUCCESS }
		d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 700_000, nvml.SUCCESS }
		d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 5_000_000, nvml.SUCCESS }
		d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 40 + i, nvml.SUCCESS }
		d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) {
			if c == nvml.CLOCK_SM {
				return 1980, nvml.SUCCESS
			}
			return 2619, nvml.SUCCESS
		}
		d.GetFanSpeedFunc = func() (uint32, nvml.Return) { return 30, nvml.SUCCESS }
		d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return nvml.ClocksEventReasonGpuIdle, nvml.SUCCESS }
		d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, _ nvml.EccCounterType) (uint64, nvml.Return) {
			if t == nvml.MEMORY_ERROR_TYPE_CORRECTED {
				return 3, nvml.SUCCESS
			}
			return 0, nvml.SUCCESS
		}
		d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 2, 1, false, false, nvml.SUCCESS }
		d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			return []nvml.ProcessInfo{{Pid: 1000 + i, UsedGpuMemory: 1 << 30}}, nvml.SUCCESS
		}
		d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return quietEventSet(), nvml.SUCCESS }
}

// quietEventSet waits (briefly) and reports nothing.
func quietEventSet() *mock.EventSet {
	return eventSet(make(chan nvml.EventData))
}

func eventSet(ch chan nvml.EventData) *mock.EventSet {
	return &mock.EventSet{
		WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
			select {
			case e := <-ch:
				return e, nvml.SUCCESS
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() nvml.Return { return nvml.SUCCESS },
	}
}

// start starts a source whose devices all answer: its deadline is the
// tests' wait bound, so a loaded machine that is slow to run the device
// workers never drops a healthy device from a sample.
func start(t *testing.T, lib nvml.Interface) (*Source, collector.Inventory) {
	t.Helper()
	return startWithin(t, lib, testutil.WaitTimeout)
}

// hungDeadline is the deadline of a source with a hung device: every
// collection waits it out, and the healthy devices must answer within it
// however loaded the machine is.
const hungDeadline = time.Second

func startWithin(t *testing.T, lib nvml.Interface, deadline time.Duration) (*Source, collector.Inventory) {
	t.Helper()
	s := New(lib, Options{EventWait: 20 * time.Millisecond, Deadline: deadline})
	inv, err := s.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, inv
}

func collect(t *testing.T, s *Source) *fleet.Sample {
	t.Helper()
	var smp fleet.Sample
	if err := s.Collect(context.Background(), &smp); err != nil {
		t.Fatal(err)
	}
	return &smp
}

func byIndex(smp *fleet.Sample) map[int]fleet.DeviceSample {
	m := map[int]fleet.DeviceSample{}
	for _, d := range smp.Devices {
		m[d.Index] = d
	}
	return m
}

func TestNormalValues(t *testing.T) {
	for name, newSrv := range map[string]func() *server.Server{"dgxh100": dgxh100.New, "dgxh200": dgxh200.New} {
		t.Run(name, func(t *testing.T) {
			srv := newSrv()
			setNormal(srv)
			s, inv := start(t, srv)
			if len(inv.Devices) != 8 || inv.Driver != "550.54.15" && name == "dgxh100" || inv.CUDA == "" {
				t.Fatalf("inventory %+v", inv)
			}
			d0 := inv.Devices[0]
			want := srv.Devices[0].(*server.Device)
			if d0.UUID != want.UUID || !strings.Contains(d0.Model, "NVIDIA H") || d0.MemoryTotal != want.MemoryInfo.Total || d0.PowerLimit != 700 || d0.Vendor != fleet.VendorNVIDIA {
				t.Fatalf("device 0 %+v", d0)
			}
			smp := collect(t, s)
			for i, d := range smp.Devices {
				if d.Index != i {
					t.Fatalf("device %d at position %d: not in index order", d.Index, i)
				}
			}
			devs := byIndex(smp)
			if len(devs) != 8 || len(smp.Procs) != 8 {
				t.Fatalf("got %d devices, %d procs", len(devs), len(smp.Procs))
			}
			d3 := devs[3]
			for m, v := range map[fleet.Metric]float64{
				fleet.MetricUtil: 0.13, fleet.MetricMemUtil: 0.08, fleet.MetricMemUsed: 4 << 30,
				fleet.MetricPower: 303, fleet.MetricEnergy: 5000, fleet.MetricTemp: 43,
				fleet.MetricSMClock: 1980, fleet.MetricMemClock: 2619, fleet.MetricFan: 0.3,
				fleet.MetricThrottle: 1, fleet.MetricECCCorrected: 3, fleet.MetricECCUncorrected: 0,
				fleet.MetricRemappedRows: 3, fleet.MetricHealth: float64(fleet.HealthOK),
			} {
				got, ok := d3.Get(m)
				if !ok || got != v {
					t.Errorf("%s = %v (present %v), want %v", m, got, ok, v)
				}
			}
			if d3.Has(fleet.MetricRetiredPages) {
				t.Error("retired pages present although remapped rows are supported")
			}
			p := smp.Procs[0]
			if p.UsedMemory != 1<<30 || p.PID < 1000 || p.PID != 1000+uint32(p.Device) {
				t.Errorf("proc %+v", p)
			}
		})
	}
}

func TestNotSupportedIsAbsent(t *testing.T) {
	srv := dgxh100.New()
	setNormal(srv)
	for _, h := range srv.Devices {
		d := h.(*server.Device)
		d.GetFanSpeedFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_NOT_SUPPORTED }
		d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: 80 << 30, Used: 7 << 30, Free: 73 << 30}, nvml.SUCCESS
		}
		d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) { return 0, 0, false, false, nvml.ERROR_NOT_SUPPORTED }
		d.GetRetiredPagesFunc = func(nvml.PageRetirementCause) ([]uint64, nvml.Return) { return []uint64{1, 2}, nvml.SUCCESS }
		d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) {
			return 0, nvml.ERROR_NOT_SUPPORTED
		}
		d.GetCurrentClocksEventReasonsFunc = nil // an old library: the call panics in the mock
		d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) { return 4, nvml.SUCCESS }
	}
	s, _ := start(t, srv)
	for range 2 {
		devs := byIndex(collect(t, s))
		d := devs[0]
		for _, m := range []fleet.Metric{fleet.MetricFan, fleet.MetricECCCorrected, fleet.MetricECCUncorrected, fleet.MetricRemappedRows} {
			if v, ok := d.Get(m); ok {
				t.Errorf("%s present (%v) although not supported", m, v)
			}
		}
		if v, _ := d.Get(fleet.MetricMemUsed); v != 7<<30 {
			t.Errorf("v1 memory fallback: used %v", v)
		}
		if v, _ := d.Get(fleet.MetricRetiredPages); v != 4 {
			t.Errorf("retired pages %v, want 4 (2 per cause)", v)
		}
		if v, ok := d.Get(fleet.MetricThrottle); !ok || v != 4 {
			t.Errorf("throttle fallback %v %v", v, ok)
		}
		if !d.Has(fleet.MetricUtil) || !d.Has(fleet.MetricPower) {
			t.Error("supported metrics missing")
		}
	}
	// Not supported once: never asked again.
	d0 := srv.Devices[0].(*server.Device)
	if n := len(d0.GetFanSpeedCalls()); n != 1 {
		t.Errorf("fan speed asked %d times, want 1", n)
	}
	if n := len(d0.GetMemoryInfo_v2Calls()); n != 1 {
		t.Errorf("memory v2 asked %d times, want 1", n)
	}
}

func TestHungDeviceDoesNotStallOthers(t *testing.T) {
	srv := dgxh200.New()
	setNormal(srv)
	release := make(chan struct{})
	hung := srv.Devices[5].(*server.Device)
	hung.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		<-release
		return nvml.Utilization{Gpu: 99}, nvml.SUCCESS
	}
	s, _ := startWithin(t, srv, hungDeadline)
	defer close(release)
	for round := range 3 {
		devs := byIndex(collect(t, s))
		if len(devs) != 7 {
			t.Fatalf("round %d: %d devices, want the 7 healthy ones", round, len(devs))
		}
		if _, ok := devs[5]; ok {
			t.Fatalf("round %d: hung device sampled", round)
		}
	}
	if got := s.Skipped(); got != 2 {
		t.Fatalf("skipped %d, want 2 (rounds 2 and 3)", got)
	}
	if n := len(hung.GetUtilizationRatesCalls()); n != 1 {
		t.Fatalf("hung device called %d times, want 1", n)
	}
}

func TestHungDeviceRecovers(t *testing.T) {
	srv := dgxh100.New()
	setNormal(srv)
	release := make(chan struct{})
	srv.Devices[2].(*server.Device).GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) {
		<-release
		return 50, nvml.SUCCESS
	}
	s, _ := startWithin(t, srv, hungDeadline)
	if n := len(collect(t, s).Devices); n != 7 {
		t.Fatalf("%d devices", n)
	}
	close(release)
	testutil.WaitFor(t, "the device to come back after its call returned", func() bool {
		return len(collect(t, s).Devices) == 8
	})
}

func TestXIDEvent(t *testing.T) {
	srv := dgxh100.New()
	setNormal(srv)
	ch := make(chan nvml.EventData, 1)
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return eventSet(ch), nvml.SUCCESS }
	s, _ := start(t, srv)
	ch <- nvml.EventData{Device: srv.Devices[4], EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	var smp *fleet.Sample
	testutil.WaitFor(t, "the XID event to reach a sample", func() bool {
		smp = collect(t, s)
		return len(smp.Events) > 0
	})
	e := smp.Events[0]
	if e.Kind != fleet.EventXID || e.Code != 79 || e.Device != 4 || e.Severity != fleet.SevCritical {
		t.Fatalf("event %+v", e)
	}
	if smp2 := collect(t, s); len(smp2.Events) != 0 {
		t.Fatalf("event delivered twice: %+v", smp2.Events)
	}
}

// TestFailedInitCallsNothingElse: after Init fails, not one other library
// function may be called (go-nvml would abort on a missing symbol).
func TestFailedInitCallsNothingElse(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	s := New(lib, Options{})
	_, err := s.Start(context.Background())
	if !errors.Is(err, collector.ErrNoData) || !strings.HasPrefix(err.Error(), "NVML not available: ") {
		t.Fatalf("start error %v", err)
	}
	var smp fleet.Sample
	if err := s.Collect(context.Background(), &smp); !errors.Is(err, collector.ErrNoData) {
		t.Fatalf("collect error %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Every XxxCalls method of the mock records its calls: only Init may have any.
	v := reflect.ValueOf(lib)
	for i := range v.NumMethod() {
		name := v.Type().Method(i).Name
		if !strings.HasSuffix(name, "Calls") || v.Method(i).Type().NumIn() != 0 {
			continue
		}
		n := v.Method(i).Call(nil)[0].Len()
		if name == "InitCalls" && n != 1 || name != "InitCalls" && n != 0 {
			t.Errorf("%s: %d calls", name, n)
		}
	}
}

func TestNoGPUs(t *testing.T) {
	srv := dgxh100.NewWithGPUs()
	s := New(srv, Options{})
	if _, err := s.Start(context.Background()); !errors.Is(err, collector.ErrNoData) {
		t.Fatalf("no GPUs: %v", err)
	}
}

func BenchmarkCollect8GPU(b *testing.B) {
	srv := dgxh100.New()
	setNormal(srv)
	s := New(srv, Options{EventWait: 50 * time.Millisecond})
	if _, err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var smp fleet.Sample
	b.ReportAllocs()
	for b.Loop() {
		smp.Devices, smp.Procs, smp.Events = smp.Devices[:0], smp.Procs[:0], smp.Events[:0]
		if err := s.Collect(context.Background(), &smp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/8, "ns/gpu-sample")
}
