package prometheus

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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
	usd := func(m int64) fleet.Money { return fleet.Money{Micros: m, Currency: "USD"} }
	sum := wire.Summary{Currency: "USD", GPUsBlind: 1, BlindBurnPerHour: usd(2_000_000), Costs: []wire.CostLine{
		{By: "region", Group: "Johor", GPUs: 1, Burn: wire.Burn{BurnPerHour: usd(880_000)}, SpendMonth: usd(190_080_000), ProjectedMonth: usd(600_000_000)},
		{By: "region", Group: "Singapore", GPUs: 3, Burn: wire.Burn{BurnPerHour: usd(7_700_000)}, SpendMonth: usd(1_663_200_000),
			ProjectedMonth: usd(5_000_000_000), Budget: usd(4_000_000_000)},
		{By: "team", Group: "(none)", GPUs: 1, Burn: wire.Burn{BurnPerHour: usd(2_000_000), IdleBurn: usd(2_000_000)}, SpendMonth: usd(400_000_000)},
		{By: "team", Group: "search", GPUs: 3, Burn: wire.Burn{BurnPerHour: usd(6_580_000)}, SpendMonth: usd(1_453_280_000), Budget: usd(2_000_000_000)},
	}}
	jobs := []wire.JobView{{Job: fleet.Job{ID: "rank-7", Team: "search", DataClass: "pii"}, Jurisdictions: []string{"MY", "SG"},
		GPUs: 3, BurnPerHour: usd(6_580_000)}}
	return sum, jobs, nil
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

func newTestExporter(ins Summarizer) *Exporter {
	e := NewExporter(fakeFleet(fixture), ins)
	e.now = func() time.Time { return fixedNow }
	return e
}

// fakeNode serves a NodeView as the aggregator's LiveNode would.
type fakeNode struct {
	v       *wire.NodeView
	node    fleet.Node
	samples []*fleet.DeviceSample
	gen     uint64 // 0 reads as 1
}

var _ NodeReader = (*fakeNode)(nil)

func (f *fakeNode) ID() string            { return f.v.ID }
func (f *fakeNode) Identity() *fleet.Node { return &f.node }
func (f *fakeNode) Generation() uint64    { return max(f.gen, 1) }
func (f *fakeNode) State() string         { return f.v.State }
func (f *fakeNode) Burn() fleet.Money     { return f.v.BurnPerHour }
func (f *fakeNode) NumDevices() int       { return len(f.node.Devices) }
func (f *fakeNode) Device(i int) (*fleet.Device, *fleet.DeviceSample) {
	return &f.node.Devices[i], f.samples[i]
}
func (f *fakeNode) EachEvent(fn func(*fleet.Event)) {
	for i := range f.v.Events {
		fn(&f.v.Events[i])
	}
}

// fakeFleet serves views (called on every walk) through NodeReader.
func fakeFleet(views func() []wire.NodeView) Fleet {
	return func(fn func(NodeReader)) {
		vs := views()
		for i := range vs {
			v := &vs[i]
			f := &fakeNode{v: v, node: fleet.Node{ID: v.ID, Hostname: v.Hostname, Region: v.Region, Site: v.Site,
				Provider: v.Provider, Jurisdiction: v.Jurisdiction, Lease: v.Lease}}
			for _, d := range v.Devices {
				f.node.Devices = append(f.node.Devices, fleet.Device{Index: d.Index, UUID: d.UUID, Vendor: d.Vendor, Model: d.Model})
				var s *fleet.DeviceSample
				if len(d.Metrics) > 0 {
					s = &fleet.DeviceSample{Index: d.Index}
					for m := fleet.Metric(0); m < fleet.NumMetrics; m++ {
						if x, ok := d.Metrics[m.String()]; ok {
							s.Set(m, x)
						}
					}
				}
				f.samples = append(f.samples, s)
			}
			fn(f)
		}
	}
}

// exposition renders e in the text format, checked by the text parser and
// normalised as client_golang writes it (families by name, series by label
// values), so the golden files stay comparable with the registry's output.
func exposition(t *testing.T, e *Exporter) []byte {
	t.Helper()
	var raw bytes.Buffer
	if err := e.WriteText(&raw, Filter{}); err != nil {
		t.Fatal(err)
	}
	return normalize(t, raw.Bytes())
}

// normalize parses text and writes it again as client_golang would: families
// by name, each series' labels by name (the exposition may write them in
// any order), series by label values.
func normalize(t *testing.T, text []byte) []byte {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text)
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, n := range names {
		mf := fams[n]
		for _, m := range mf.Metric {
			sort.Slice(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
		}
		sort.SliceStable(mf.Metric, func(i, j int) bool {
			a, b := mf.Metric[i].Label, mf.Metric[j].Label
			for k := 0; k < len(a) && k < len(b); k++ {
				if a[k].GetValue() != b[k].GetValue() {
					return a[k].GetValue() < b[k].GetValue()
				}
			}
			return len(a) < len(b)
		})
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// count returns how many series of family name e renders.
func count(t *testing.T, e *Exporter, name string) int {
	t.Helper()
	var raw bytes.Buffer
	if err := e.WriteText(&raw, Filter{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(raw.String(), "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			n++
		}
	}
	return n
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
			got := exposition(t, newTestExporter(tc.ins))
			golden := filepath.Join("testdata", tc.name+".prom")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("exposition differs from %s (-update to accept):\n%s", golden, got)
			}
		})
	}
}

// TestInventoryChangeMidRender: a node whose inventory changes between a
// render's first walk and a series' own walk (its collector said Hello
// again) is left out of those series, not read at positions of its old
// inventory; the series of later walks, once the node is as it was, have it.
func TestInventoryChangeMidRender(t *testing.T) {
	walks := 0
	inner := fakeFleet(fixture)
	e := NewExporter(func(fn func(NodeReader)) {
		walks++
		inner(func(n NodeReader) {
			if f := n.(*fakeNode); walks == 2 && f.v.ID == "sg-1" { // the first series' walk
				f.gen, f.node.Devices, f.samples = 2, nil, nil
			}
			fn(n)
		})
	}, nil)
	var out bytes.Buffer
	if err := e.WriteText(&out, Filter{}); err != nil {
		t.Fatal(err)
	}
	series := func(name string) int { return strings.Count(out.String(), "\n"+name+"{") }
	if n := series(dcgmSeries[0].Name); n != 0 {
		t.Errorf("%s series = %d, want 0: sg-1 changed inventory during the series' walk", dcgmSeries[0].Name, n)
	}
	later := dcgmSeries[seriesPerWalk].Name // the next walk's first series
	want := count(t, newTestExporter(nil), later)
	if want == 0 {
		t.Fatalf("the fixture has no %s series: pick a series it has", later)
	}
	if n := series(later); n != want {
		t.Errorf("%s series = %d, want %d", later, n, want)
	}
}

// TestAbsentNotEmitted: a sparse device yields only what it reports, and an
// offline node's devices yield nothing.
func TestAbsentNotEmitted(t *testing.T) {
	c := newTestExporter(nil)
	if n := count(t, c, "DCGM_FI_DEV_GPU_TEMP"); n != 2 {
		t.Errorf("GPU_TEMP series = %d, want 2 (sparse device included, offline excluded)", n)
	}
	if n := count(t, c, "DCGM_FI_DEV_GPU_UTIL"); n != 1 {
		t.Errorf("GPU_UTIL series = %d, want 1", n)
	}
	if n := count(t, c, "npu_chip_info_utilization"); n != 1 {
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
		var raw bytes.Buffer
		if err := newTestExporter(ins).WriteText(&raw, Filter{}); err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = &raw
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

// TestNewIdentityNewLabels: a node whose identity changed (a new
// generation: its collector said Hello with another inventory) is exported
// under its new labels from the next scrape on, with all its series.
func TestNewIdentityNewLabels(t *testing.T) {
	var gen uint64 = 1
	model := "NVIDIA H100 80GB HBM3"
	inner := fakeFleet(func() []wire.NodeView {
		vs := fixture()
		vs[0].Devices[0].Model = model
		return vs
	})
	e := NewExporter(func(fn func(NodeReader)) {
		inner(func(n NodeReader) {
			if f := n.(*fakeNode); f.v.ID == "sg-1" {
				f.gen = gen
			}
			fn(n)
		})
	}, nil)
	text := func() string {
		var out bytes.Buffer
		if err := e.WriteText(&out, Filter{}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if first := text(); !strings.Contains(first, `modelName="NVIDIA H100 80GB HBM3"`) {
		t.Fatalf("first scrape without the first model:\n%s", first)
	}
	gen, model = 2, "NVIDIA H200"
	second := text()
	if !strings.Contains(second, `modelName="NVIDIA H200"`) {
		t.Errorf("after a new identity the scrape keeps the old labels")
	}
	if n := strings.Count(second, "\nDCGM_FI_DEV_GPU_UTIL{"); n != 1 {
		t.Errorf("after a new identity %d GPU_UTIL series, want 1 (sg-1's GPU 0)", n)
	}
}
