package wire

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fleettop/fleettop/fleet"
)

func goodNode() fleet.Node {
	return fleet.Node{
		ID: "node-1", Hostname: "gpu-01.example", Region: "Singapore", Site: "sg-1", Provider: "acme",
		Jurisdiction: "SG", BootID: "0b1c2d3e-aaaa", AgentVersion: "v1.2.3 (abc)",
		Lease: fleet.Lease{ID: "lease 7", PricePerGPUHour: fleet.Money{Micros: 2_500_000, Currency: "USD"}, Billing: fleet.BillPerSecond,
			Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		Labels:  map[string]string{"team": "Recherche et développement", "k8s.io/zone": "a"},
		Devices: []fleet.Device{{Index: 0, UUID: "GPU-1234-abcd", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", PCIBusID: "00000000:17:00.0", MemoryTotal: 80 << 30, PowerLimit: 700}},
	}
}

func TestValidateHello(t *testing.T) {
	if err := ValidateHello(&Hello{Proto: Version, Node: goodNode()}); err != nil {
		t.Fatalf("good node refused: %v", err)
	}
	cases := []struct {
		name   string
		mod    func(n *fleet.Node)
		reason string
	}{
		{"empty id", func(n *fleet.Node) { n.ID = "" }, ReasonBadString},
		{"id with slash", func(n *fleet.Node) { n.ID = "a/b" }, ReasonBadString},
		{"hostname 41 ff", func(n *fleet.Node) { n.Hostname = "\x41\xff" }, ReasonBadString},
		{"region with NUL", func(n *fleet.Node) { n.Region = "a\x00" }, ReasonBadString},
		{"site too long", func(n *fleet.Node) { n.Site = strings.Repeat("s", MaxNameBytes+1) }, ReasonBadString},
		{"zero-width in provider", func(n *fleet.Node) { n.Provider = "ac\u200bme" }, ReasonBadString},
		{"too many labels", func(n *fleet.Node) {
			for i := range MaxLabels + 1 {
				n.Labels[strings.Repeat("k", i+1)] = "v"
			}
		}, ReasonBadString},
		{"label key with =", func(n *fleet.Node) { n.Labels["a=b"] = "v" }, ReasonBadString},
		{"lease start year 21000", func(n *fleet.Node) { n.Lease.Start = time.Date(21000, 1, 1, 0, 0, 0, 0, time.UTC) }, ReasonBadLease},
		{"lease end 1970", func(n *fleet.Node) { n.Lease.End = time.Unix(1, 0) }, ReasonBadLease},
		{"price without currency", func(n *fleet.Node) { n.Lease.PricePerGPUHour.Currency = "" }, ReasonBadLease},
		{"huge price", func(n *fleet.Node) { n.Lease.PricePerGPUHour.Micros = math.MaxInt64 }, ReasonBadLease},
		{"lease gpus", func(n *fleet.Node) { n.Lease.GPUs = 1 << 30 }, ReasonBadLease},
		{"billing", func(n *fleet.Node) { n.Lease.Billing = "weekly" }, ReasonBadLease},
		{"uuid with quote", func(n *fleet.Node) { n.Devices[0].UUID = `GPU-"x"` }, ReasonBadString},
		{"memory 1 EiB", func(n *fleet.Node) { n.Devices[0].MemoryTotal = 1 << 60 }, ReasonBadDevice},
		{"power limit NaN", func(n *fleet.Node) { n.Devices[0].PowerLimit = math.NaN() }, ReasonBadDevice},
		{"vendor", func(n *fleet.Node) { n.Devices[0].Vendor = "amd" }, ReasonBadDevice},
		{"duplicate index", func(n *fleet.Node) { n.Devices = append(n.Devices, n.Devices[0]) }, ReasonBadDevice},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := goodNode()
			tc.mod(&n)
			err := ValidateHello(&Hello{Proto: Version, Node: n})
			var inv *Invalid
			if !errors.As(err, &inv) {
				t.Fatalf("got %v, want *Invalid", err)
			}
			if inv.Reason != tc.reason {
				t.Errorf("reason %q (%v), want %q", inv.Reason, err, tc.reason)
			}
		})
	}
}

func TestSanitizeSources(t *testing.T) {
	src := []fleet.SourceStatus{{Name: "nvml", Up: true}, {Name: "ho st\xff", Reason: "open: no such file\nsecond line"}}
	if n := SanitizeSources(src); n != 2 {
		t.Fatalf("%d repairs, want 2", n)
	}
	if src[0].Name != "nvml" || src[1].Name != "ho_st_" || strings.Contains(src[1].Reason, "\n") {
		t.Fatalf("not repaired: %+v", src)
	}
	// The same statuses again (the next Status frame): nothing new to count.
	if n := SanitizeSources(src); n != 0 {
		t.Errorf("%d repairs of already repaired statuses %+v, want 0", n, src)
	}
	bad := []fleet.SourceStatus{{Name: "npu", Reason: "npu-smi: \xff\xfe garbled"}}
	SanitizeSources(bad)
	if !strings.Contains(bad[0].Reason, "\uFFFD") {
		t.Fatalf("reason %q: want U+FFFD for the invalid bytes", bad[0].Reason)
	}
	if n := SanitizeSources(bad); n != 0 {
		t.Errorf("%d repairs of the repaired reason %q, want 0", n, bad[0].Reason)
	}
}

func TestSanitizeSample(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := fleet.Sample{Seq: 7, Time: at, Devices: []fleet.DeviceSample{{Index: 0}}}
	d := &s.Devices[0]
	d.Set(fleet.MetricUtil, 1e9)
	d.Set(fleet.MetricMemUtil, 0.3)
	d.Set(fleet.MetricTemp, -500)
	d.Set(fleet.MetricPower, 1e11)
	d.Set(fleet.MetricFan, 1)
	d.Set(fleet.MetricHealth, 2)
	s.Events = []fleet.Event{{Time: time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC), Kind: "xid", Severity: "critical", Message: "line1\nline2"}}
	s.Procs = []fleet.Process{{Name: strings.Repeat("é", 300), Job: fleet.Job{ID: "job\x1b"}}}
	rp, err := SanitizeSampleAfter(&s, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Repairs{OutOfRange: 3, BadString: 3, BadTime: 1}
	if rp != want {
		t.Errorf("repairs %+v, want %+v", rp, want)
	}
	for _, m := range []fleet.Metric{fleet.MetricUtil, fleet.MetricTemp, fleet.MetricPower} {
		if d.Has(m) {
			t.Errorf("%s present", m)
		}
	}
	for _, m := range []fleet.Metric{fleet.MetricMemUtil, fleet.MetricFan, fleet.MetricHealth} {
		if !d.Has(m) {
			t.Errorf("%s absent", m)
		}
	}
	if !s.Events[0].Time.Equal(at) {
		t.Errorf("event time %v", s.Events[0].Time)
	}
	if p := s.Procs[0].Name; len(p) > MaxProcName || !utf8.ValidString(p) {
		t.Errorf("process name %d bytes, valid %v", len(p), utf8.ValidString(p))
	}
	for _, bad := range []fleet.Sample{
		{Seq: 1, Time: time.Date(21000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Seq: 1, Time: time.Unix(0, 0)},
		{Seq: math.MaxUint64, Time: at},
		{Seq: 0, Time: at},
	} {
		if _, err := SanitizeSampleAfter(&bad, nil); err == nil {
			t.Errorf("seq %d time %v accepted", bad.Seq, bad.Time)
		}
	}
}

// A process that repeats the previous, sanitized list's entry at its index
// is not checked again; any other is, and a repeated memory figure still is.
func TestSanitizeSampleAfter(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	prev := []fleet.Process{{Name: "python", Job: fleet.Job{ID: "train-7", Team: "ml"}}, {Name: "bad\x1b"}}
	s := fleet.Sample{Seq: 7, Time: at, Procs: []fleet.Process{
		{Name: "python", Job: fleet.Job{ID: "train-7", Team: "ml"}, UsedMemory: MaxDeviceMemory + 1}, // same as prev[0]
		{Name: "bad\x1b"},         // as prev[1], which a caller passing prev vouches for
		{Name: "new\x1b", PID: 3}, // no entry at its index
	}}
	rp, err := SanitizeSampleAfter(&s, prev)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Repairs{OutOfRange: 1, BadString: 1}); rp != want {
		t.Errorf("repairs %+v, want %+v", rp, want)
	}
	if s.Procs[0].UsedMemory != 0 || s.Procs[0].Name != "python" || s.Procs[1].Name != "bad\x1b" {
		t.Errorf("procs %+v", s.Procs)
	}
	if n := s.Procs[2].Name; n != "new\uFFFD" {
		t.Errorf("new process name %q, want it repaired", n)
	}
	// Without prev every entry is checked.
	s.Procs[2].Name = "new"
	if rp, _ := SanitizeSampleAfter(&s, nil); rp.BadString != 1 {
		t.Errorf("without prev: repairs %+v, want 1 bad string", rp)
	}
}

func TestCheckSeqJump(t *testing.T) {
	for _, tc := range []struct {
		last, seq uint64
		ok        bool
	}{
		{0, 1, true}, {10, 11, true}, {10, 10 + DefaultMaxSeqJump, true}, {10, 11 + DefaultMaxSeqJump, false},
		{0, math.MaxUint64, false}, {5, 3, true}, // a duplicate is not a jump
	} {
		if err := CheckSeqJump(tc.last, tc.seq, DefaultMaxSeqJump); (err == nil) != tc.ok {
			t.Errorf("last %d seq %d: %v", tc.last, tc.seq, err)
		}
	}
}

// FuzzSanitizeSample: whatever a decoder hands over, sanitising never panics
// and leaves only in-range values and valid strings.
func FuzzSanitizeSample(f *testing.F) {
	f.Add(uint64(1), int64(1_770_000_000_000), 0.5, 60.0, "name", "job")
	f.Add(uint64(math.MaxUint64), int64(math.MaxInt64), 1e300, -1e300, "\xff", "\x00")
	f.Fuzz(func(t *testing.T, seq uint64, ms int64, util, temp float64, name, job string) {
		s := fleet.Sample{Seq: seq, Time: time.UnixMilli(ms).UTC(), Devices: []fleet.DeviceSample{{}}}
		s.Devices[0].Set(fleet.MetricUtil, util)
		s.Devices[0].Set(fleet.MetricTemp, temp)
		s.Procs = []fleet.Process{{Name: name, Job: fleet.Job{ID: job}}}
		if _, err := SanitizeSampleAfter(&s, nil); err != nil {
			return
		}
		if u, ok := s.Devices[0].Get(fleet.MetricUtil); ok && !(u >= 0 && u <= 1) {
			t.Fatalf("util %v kept", u)
		}
		if x, ok := s.Devices[0].Get(fleet.MetricTemp); ok && !(x >= -40 && x <= 150) {
			t.Fatalf("temp %v kept", x)
		}
		for _, str := range []string{s.Procs[0].Name, s.Procs[0].Job.ID} {
			if checkString("", str, MaxTextBytes, text) != nil {
				t.Fatalf("string %q kept", str)
			}
		}
	})
}
