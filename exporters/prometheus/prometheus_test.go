package prometheus

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/fleettop/fleettop/aggregator/insight"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var fixedNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func fptr(f float64) *float64 { return &f }

// fixture is a small fleet: an NVIDIA node with a full and a sparse GPU, an
// Ascend node, and an offline node whose devices must not be exported.
func fixture() []wire.NodeView {
	usd := func(m int64) fleet.Money { return fleet.Money{Micros: m, Currency: "USD"} }
	return []wire.NodeView{
		{
			ID: "sg-1", Hostname: "gpu-sg-1", Region: "Singapore", Jurisdiction: "SG", Provider: "acme", State: wire.StateOnline,
			Lease:       fleet.Lease{ID: "L-1", PricePerGPUHour: usd(2_850_000), Billing: fleet.BillPerSecond},
			BurnPerHour: usd(5_700_000),
			Devices: []wire.DeviceView{
				{Index: 0, UUID: "GPU-aaaa", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", Util: fptr(0.5), Metrics: map[string]float64{
					"util": 0.5, "mem_util": 0.25, "mem_used": 1024 * mib, "mem_free": 80 * 1024 * mib, "power": 350.5,
					"energy": 1234.5, "temp": 61, "sm_clock": 1980, "mem_clock": 2619,
				}},
				{Index: 1, UUID: "GPU-bbbb", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", Metrics: map[string]float64{"temp": 40}},
			},
			Events: []fleet.Event{{Kind: fleet.EventXID, Device: 1, Code: 79, Severity: fleet.SevCritical}},
		},
		{
			ID: "jb-1", Hostname: "npu-jb-1", Region: "Johor", Jurisdiction: "MY", Provider: "tiger", State: wire.StateStale,
			Lease:       fleet.Lease{ID: "L-2", PricePerGPUHour: fleet.Money{Micros: 4_000_000, Currency: "MYR"}},
			BurnPerHour: fleet.Money{Micros: 4_000_000, Currency: "MYR"},
			Devices: []wire.DeviceView{
				{Index: 0, UUID: "185011D4-21104518", Vendor: fleet.VendorAscend, Model: "Ascend 910B", Metrics: map[string]float64{
					"util": 0.9, "mem_used": 30e9, "mem_total": 64e9, "power": 300, "temp": 55, "health": 0,
				}},
			},
		},
		{
			ID: "sg-2", Hostname: "gpu-sg-2", Region: "Singapore", Jurisdiction: "SG", Provider: "acme", State: wire.StateOffline,
			Lease:       fleet.Lease{ID: "L-3", PricePerGPUHour: usd(2_000_000)},
			BurnPerHour: usd(2_000_000),
			Devices:     []wire.DeviceView{{Index: 0, UUID: "GPU-cccc", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA A100", Metrics: map[string]float64{"util": 0.1}}},
		},
	}
}

// fakeInsights is an engine with fixed figures.
type fakeInsights struct{}

var _ Summarizer = fakeInsights{}
var _ placer = fakeInsights{}

func (fakeInsights) Summarize(time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	return wire.Summary{}, nil, nil
}

func (fakeInsights) Placements(time.Time) []insight.Placement {
	return []insight.Placement{
		{Region: "Johor", Provider: "tiger", Jurisdiction: "MY", GPUs: 1, BurnPerHour: fleet.Money{Micros: 880_000, Currency: "USD"},
			SpendMonth: fleet.Money{Micros: 190_080_000, Currency: "USD"}, IdleSpendMonth: fleet.Money{Currency: "USD"},
			Violations: 1, AlertsOpen: map[fleet.Severity]int{fleet.SevCritical: 1}},
		{Region: "Singapore", Provider: "acme", Jurisdiction: "SG", GPUs: 3, BurnPerHour: fleet.Money{Micros: 7_700_000, Currency: "USD"},
			SpendMonth: fleet.Money{Micros: 1_663_200_000, Currency: "USD"}, IdleSpendMonth: fleet.Money{Micros: 12_345_678, Currency: "USD"},
			AlertsOpen: map[fleet.Severity]int{fleet.SevWarning: 2}},
	}
}

func newTestCollector(ins Summarizer) *Collector {
	c := NewCollector(fixture, ins).(*Collector)
	c.now = func() time.Time { return fixedNow }
	return c
}

func exposition(t *testing.T, c prometheus.Collector) []byte {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		ins  Summarizer
	}{
		{"engine", fakeInsights{}},
		{"no-insights", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCollector(tc.ins)
			golden := filepath.Join("testdata", tc.name+".prom")
			if *update {
				if err := os.WriteFile(golden, exposition(t, c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, err := os.Open(golden)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := testutil.CollectAndCompare(c, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAbsentNotEmitted: a sparse device yields only what it reports, and an
// offline node's devices yield nothing.
func TestAbsentNotEmitted(t *testing.T) {
	c := newTestCollector(nil)
	if n := testutil.CollectAndCount(c, "DCGM_FI_DEV_GPU_TEMP"); n != 2 {
		t.Errorf("GPU_TEMP series = %d, want 2 (sparse device included, offline excluded)", n)
	}
	if n := testutil.CollectAndCount(c, "DCGM_FI_DEV_GPU_UTIL"); n != 1 {
		t.Errorf("GPU_UTIL series = %d, want 1", n)
	}
	if n := testutil.CollectAndCount(c, "npu_chip_info_utilization"); n != 1 {
		t.Errorf("npu utilization series = %d, want 1", n)
	}
}

// dcgmCamelCase is the one lint promtool raises that we accept: DCGM's own
// label name modelName is camelCase, and dashboards select on it.
const dcgmCamelCase = "label names should be written in 'snake_case' not 'camelCase'"

func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH")
	}
	for _, ins := range []Summarizer{fakeInsights{}, nil} {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(exposition(t, newTestCollector(ins)))
		out, err := cmd.CombinedOutput()
		if err == nil {
			continue
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasPrefix(l, "DCGM_FI_") || !strings.HasSuffix(l, dcgmCamelCase) {
				t.Errorf("promtool check metrics: %s", l)
			}
		}
	}
}
