package ascend

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
)

func TestParseInfo910B(t *testing.T) {
	b, _ := os.ReadFile("testdata/910b/info.txt")
	info := ParseInfo(b)
	if info.Version != "23.0.rc3" || len(info.Chips) != 4 || len(info.Procs) != 3 {
		t.Fatalf("parsed %+v", info)
	}
	c := info.Chips[0]
	if c.NPU != 0 || c.Chip != 0 || c.Name != "910B3" || c.Health != "OK" || c.BusID != "0000:C1:00.0" ||
		c.Power != 96.8 || c.Temp != 35 || c.AICore != 57 || !c.HasHBM || c.HBMUsedMB != 26838 || c.HBMTotalMB != 65536 ||
		c.MemTotalMB != 0 {
		t.Fatalf("chip 0 %+v", c)
	}
	if c3 := info.Chips[3]; c3.HasPower || c3.HasTemp || c3.HasAICore || c3.Health != "Alarm" {
		t.Fatalf("chip 3 (NA cells) %+v", c3)
	}
	if p := info.Procs[2]; p.NPU != 2 || p.PID != 1187 || p.Name != "torchrun" || p.MemMB != 57854 {
		t.Fatalf("proc %+v", p)
	}
}

func TestParseInfo310P(t *testing.T) {
	b, _ := os.ReadFile("testdata/310p/info.txt")
	info := ParseInfo(b)
	if len(info.Chips) != 4 || len(info.Procs) != 1 {
		t.Fatalf("parsed %+v", info)
	}
	c := info.Chips[1]
	if c.NPU != 1 || c.Chip != 1 || c.HasPower || c.Temp != 49 || c.HasHBM || !c.HasMem || c.MemUsedMB != 1612 || c.MemTotalMB != 21527 {
		t.Fatalf("chip %+v", c)
	}
}

func TestKVUnits(t *testing.T) {
	kv := ParseKV([]byte("\tNPU ID                         : 2\n\tPower Dissipation(0.1W)        : 336\n\tNPU Temperature (C)            : 44\n"))
	if v, ok := KVValue(kv, "Power Dissipation(W)"); !ok || math.Abs(v-33.6) > 1e-9 {
		t.Fatalf("0.1 W power = %v %v", v, ok)
	}
	if v, ok := KVValue(kv, "NPU Temperature(C)"); !ok || v != 44 {
		t.Fatalf("temp = %v %v", v, ok)
	}
	if _, ok := KVValue(kv, "HBM Capacity(MB)"); ok {
		t.Fatal("absent key found")
	}
}

func fakeSource(t *testing.T, fixture string) (*Source, string) {
	t.Helper()
	bin, _ := filepath.Abs("testdata/fake-npu-smi")
	log := filepath.Join(t.TempDir(), "calls")
	t.Setenv("NPU_FIXTURE", fixture)
	t.Setenv("FAKE_NPU_SMI_LOG", log)
	s := New(Options{Path: bin, Interval: time.Hour})
	t.Cleanup(func() { s.Close() })
	return s, log
}

func TestSource910B(t *testing.T) {
	s, log := fakeSource(t, "910b")
	inv, err := s.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Devices) != 4 || inv.Devices[0].Model != "Ascend 910B3" || inv.Devices[0].MemoryTotal != 65536<<20 || inv.Driver != "23.0.rc3" {
		t.Fatalf("inventory %+v", inv)
	}
	var smp fleet.Sample
	for range 2 {
		s.pollOnce(context.Background())
		smp = fleet.Sample{}
		if err := s.Collect(context.Background(), &smp); err != nil {
			t.Fatal(err)
		}
	}
	if len(smp.Devices) != 4 || len(smp.Procs) != 3 {
		t.Fatalf("sample %+v", smp)
	}
	d0, d2, d3 := smp.Devices[0], smp.Devices[2], smp.Devices[3]
	for _, c := range []struct {
		d    fleet.DeviceSample
		m    fleet.Metric
		want float64
	}{
		{d0, fleet.MetricUtil, 0.57}, {d0, fleet.MetricMemUsed, 26838 << 20}, {d0, fleet.MetricMemTotal, 65536 << 20},
		{d0, fleet.MetricPower, 96.8}, {d0, fleet.MetricTemp, 35}, {d0, fleet.MetricHealth, float64(fleet.HealthOK)},
		{d2, fleet.MetricHealth, float64(fleet.HealthWarning)}, {d2, fleet.MetricUtil, 1},
		// NA in the table: from the per-chip queries.
		{d3, fleet.MetricPower, 71.4}, {d3, fleet.MetricTemp, 44}, {d3, fleet.MetricUtil, 0},
		{d3, fleet.MetricHealth, float64(fleet.HealthCritical)},
	} {
		if v, ok := c.d.Get(c.m); !ok || math.Abs(v-c.want) > 1e-9 {
			t.Errorf("device %d %s = %v (present %v), want %v", c.d.Index, c.m, v, ok, c.want)
		}
	}
	for _, d := range smp.Devices {
		if d.Has(fleet.MetricFan) || d.Has(fleet.MetricEnergy) {
			t.Errorf("device %d reports a metric npu-smi does not give", d.Index)
		}
	}
	if p := smp.Procs[0]; p.PID != 2365612 || p.UsedMemory != 23452<<20 || p.Device != 0 || p.Name != "python3.9" {
		t.Errorf("proc %+v", p)
	}
	calls, _ := os.ReadFile(log)
	if n := strings.Count(string(calls), "-t power"); n != 2 {
		t.Errorf("power queried %d times in 2 ticks for one NA chip, want 2:\n%s", n, calls)
	}
}

func TestSource310PPowerAndUnsupported(t *testing.T) {
	s, log := fakeSource(t, "310p")
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.pollOnce(context.Background())
		var smp fleet.Sample
		if err := s.Collect(context.Background(), &smp); err != nil {
			t.Fatal(err)
		}
		want := map[int]float64{0: 21.5, 1: 20.9, 2: 33.6}
		for _, d := range smp.Devices {
			v, ok := d.Get(fleet.MetricPower)
			if w, exp := want[d.Index]; exp != ok || math.Abs(v-w) > 1e-9 {
				t.Errorf("device %d power %v (present %v), want %v (present %v)", d.Index, v, ok, w, exp)
			}
		}
		if v, _ := smp.Devices[0].Get(fleet.MetricMemUsed); v != 1631<<20 {
			t.Errorf("DDR used %v", v)
		}
	}
	calls, _ := os.ReadFile(log)
	// "NA" power on chip 2-1 parses as absent but the query works; a chip
	// whose query fails (none here) would be asked once.
	if n := strings.Count(string(calls), "info -t power -i 2 -c 1"); n != 3 {
		t.Errorf("asked chip 2-1 power %d times", n)
	}
}

func TestHealthChangeEvent(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "x"), 0o755)
	src, _ := os.ReadFile("testdata/910b/info.txt")
	os.WriteFile(filepath.Join(dir, "x", "info.txt"), src, 0o644)
	script, _ := os.ReadFile("testdata/fake-npu-smi")
	os.WriteFile(filepath.Join(dir, "npu-smi"), script, 0o755)
	t.Setenv("NPU_FIXTURE", "x")
	s := New(Options{Path: filepath.Join(dir, "npu-smi"), Interval: time.Hour})
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var smp fleet.Sample
	s.Collect(context.Background(), &smp)
	if len(smp.Events) != 0 {
		t.Fatalf("events on first sample: %+v", smp.Events)
	}
	os.WriteFile(filepath.Join(dir, "x", "info.txt"), []byte(strings.Replace(string(src), "| OK            | 96.8", "| Critical      | 96.8", 1)), 0o644)
	s.pollOnce(context.Background())
	smp = fleet.Sample{}
	s.Collect(context.Background(), &smp)
	if len(smp.Events) != 1 || smp.Events[0].Kind != fleet.EventHealth || smp.Events[0].Device != 0 || smp.Events[0].Severity != fleet.SevCritical {
		t.Fatalf("events %+v", smp.Events)
	}
}

func TestNoNpuSmi(t *testing.T) {
	s := New(Options{Path: filepath.Join(t.TempDir(), "npu-smi")})
	_, err := s.Start(context.Background())
	if !errors.Is(err, collector.ErrNoData) {
		t.Fatalf("err %v", err)
	}
	s = New(Options{Path: "definitely-not-npu-smi"})
	if _, err := s.Start(context.Background()); !errors.Is(err, collector.ErrNoData) {
		t.Fatalf("err %v", err)
	}
}

func FuzzParseInfo(f *testing.F) {
	for _, p := range []string{"testdata/910b/info.txt", "testdata/310p/info.txt", "testdata/910b/usages-3-0.txt"} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info := ParseInfo(b)
		for _, c := range info.Chips {
			if c.HasPower && (c.Power < 0 || c.Power != c.Power) {
				t.Fatalf("bad power %v", c.Power)
			}
		}
		kv := ParseKV(b)
		KVValue(kv, "NPU Real-time Power(W)", "Power Dissipation(W)")
	})
}
