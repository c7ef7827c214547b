package insight

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

const fixtureYAML = `
currency: USD
rates:
  SGD: "0.74"
prices:
  - provider: tiger
    region: Johor
    model: 910B
    price: "4.00"
    currency: SGD
  - price: "9.99"          # fallback for anything else: must lose to the row above
residency:
  cn-customer: [CN]
budgets:
  regions:
    Singapore: "10"
  teams:
    vision: "100"
alerts:
  idle_after: 3h
`

var (
	t0  = time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	now = t0.Add(2 * time.Hour)
)

func fixtureNodes() (sg, jb *fleet.Node) {
	sg = &fleet.Node{ID: "sg-1", Hostname: "gpu-sg-1", Region: "Singapore", Jurisdiction: "SG", Provider: "acme",
		Lease: fleet.Lease{ID: "L-1", PricePerGPUHour: fleet.Money{Micros: 2_850_000, Currency: "USD"}, Billing: fleet.BillPerSecond},
		Devices: []fleet.Device{
			{Index: 0, UUID: "GPU-a", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3"},
			{Index: 1, UUID: "GPU-b", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3"},
		}}
	jb = &fleet.Node{ID: "jb-1", Hostname: "npu-jb-1", Region: "Johor", Jurisdiction: "MY", Provider: "tiger",
		Lease:   fleet.Lease{ID: "L-2", End: now.Add(72 * time.Hour)},
		Devices: []fleet.Device{{Index: 0, UUID: "npu-a", Vendor: fleet.VendorAscend, Model: "Ascend 910B"}}}
	return sg, jb
}

func util(i int, u float64) fleet.DeviceSample {
	var d fleet.DeviceSample
	d.Index = i
	d.Set(fleet.MetricUtil, u)
	return d
}

// newFixtureEngine returns an engine of fixtureYAML without a store.
func newFixtureEngine(t *testing.T) *Engine {
	t.Helper()
	cfg, err := ParseConfig([]byte(fixtureYAML), "fleettop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fixtureEngine runs two nodes for two hours at one sample every 30 s.
func fixtureEngine(t *testing.T) *Engine {
	t.Helper()
	e := newFixtureEngine(t)
	sg, jb := fixtureNodes()
	job := fleet.Job{ID: "j1", Team: "vision", DataClass: "cn-customer"}
	for i := 0; t0.Add(time.Duration(i)*30*time.Second).Compare(now) <= 0; i++ {
		at := t0.Add(time.Duration(i) * 30 * time.Second)
		s := &fleet.Sample{Seq: uint64(i + 1), Time: at, Devices: []fleet.DeviceSample{util(0, 0.5), util(1, 0.01)}}
		if i == 0 {
			s.ProcsSet, s.Procs = true, []fleet.Process{{Device: 0, PID: 100, Job: job}}
		}
		e.Observe(sg, 0, s)
		e.Observe(jb, 0, &fleet.Sample{Seq: uint64(i + 1), Time: at, Devices: []fleet.DeviceSample{util(0, 0.02)}})
	}
	return e
}

func usd(m int64) fleet.Money { return fleet.Money{Micros: m, Currency: "USD"} }

func TestSummarizeMoney(t *testing.T) {
	e := fixtureEngine(t)
	sum, jobs, alerts := e.Summarize(now)

	// Burn: 2 × 2.85 USD + 4.00 SGD × 0.74 = 5.70 + 2.96.
	// Idle: GPU 1 of sg-1 (1%) and the NPU (2%) are under 5%.
	// Spend (accounting began at t0, 2 h ago): 11.40 USD + 8 SGD (5.92 USD).
	// Projection to 1 April: sg-1 518 h × 5.70 = 2952.60; jb-1's lease ends
	// in 72 h: 74 h × 4 SGD = 296 SGD = 219.04 USD.
	checks := []struct {
		name      string
		got, want fleet.Money
	}{
		{"burn", sum.BurnPerHour, usd(8_660_000)},
		{"idle burn", sum.IdleBurn, usd(5_810_000)},
		{"today", sum.SpendToday, usd(17_320_000)},
		{"month", sum.SpendMonth, usd(17_320_000)},
		{"projected", sum.ProjectedMonth, usd(3_171_640_000)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v (%d), want %v (%d)", c.name, c.got, c.got.Micros, c.want, c.want.Micros)
		}
	}
	if sum.GPUsOnline != 3 || sum.NodesOnline != 2 || sum.Currency != "USD" {
		t.Errorf("counts %+v", sum)
	}
	if want := (0.5 + 0.01 + 0.02) / 3; sum.Util < want-1e-12 || sum.Util > want+1e-12 {
		t.Errorf("util = %v, want %v", sum.Util, want)
	}

	line := func(by, g string) wire.CostLine {
		for _, l := range sum.Costs {
			if l.By == by && l.Group == g {
				return l
			}
		}
		t.Fatalf("no cost line %s=%s in %+v", by, g, sum.Costs)
		return wire.CostLine{}
	}
	for _, c := range []struct {
		by, g                         string
		gpus                          int
		burn, idle, month, idleM, bud int64
	}{
		{"region", "Singapore", 2, 5_700_000, 2_850_000, 11_400_000, 5_700_000, 10_000_000},
		{"region", "Johor", 1, 2_960_000, 2_960_000, 5_920_000, 5_920_000, 0},
		{"provider", "tiger", 1, 2_960_000, 2_960_000, 5_920_000, 5_920_000, 0},
		{"model", "NVIDIA H100 80GB HBM3", 2, 5_700_000, 2_850_000, 11_400_000, 5_700_000, 0},
		// Teams from the 2 h the samples cover: GPU 0 of sg-1 runs vision's job.
		{"team", "vision", 1, 2_850_000, 0, 5_700_000, 0, 100_000_000},
		{"team", noGroup, 2, 5_810_000, 5_810_000, 11_620_000, 0, 0},
	} {
		l := line(c.by, c.g)
		if l.GPUs != c.gpus || l.BurnPerHour != usd(c.burn) || l.IdleBurn != usd(c.idle) || l.SpendMonth != usd(c.month) {
			t.Errorf("%s=%s: %+v", c.by, c.g, l)
		}
		if c.by != "team" && l.IdleSpend != usd(c.idleM) {
			t.Errorf("%s=%s idle spend %v, want %d", c.by, c.g, l.IdleSpend, c.idleM)
		}
		if c.bud != 0 && l.Budget != usd(c.bud) {
			t.Errorf("%s=%s budget %v, want %d", c.by, c.g, l.Budget, c.bud)
		}
	}

	if len(jobs) != 1 {
		t.Fatalf("jobs %+v", jobs)
	}
	j := jobs[0]
	if j.ID != "j1" || j.GPUs != 1 || j.Allowed || !strings.Contains(j.Violation, "CN") ||
		j.BurnPerHour != usd(2_850_000) || j.Spend != usd(5_700_000) ||
		!slices.Equal(j.Jurisdictions, []string{"SG"}) || !slices.Equal(j.Nodes, []string{"sg-1"}) {
		t.Errorf("job %+v", j)
	}

	var open []string
	for _, a := range alerts {
		if a.Open() {
			open = append(open, a.ID)
		}
	}
	slices.Sort(open)
	want := []string{"budget/region/Singapore/100", "budget/region/Singapore/80", "residency/j1/sg-1"}
	if !slices.Equal(open, want) || sum.AlertsOpen != 3 {
		t.Errorf("open alerts %q (%d), want %q", open, sum.AlertsOpen, want)
	}
	if len(sum.LeasesEnding) != 1 || sum.LeasesEnding[0].Node != "jb-1" || sum.LeasesEnding[0].Lease != "L-2" {
		t.Errorf("leases ending %+v", sum.LeasesEnding)
	}
	// 4.00 SGD from the price table, converted by the aggregator at 0.74.
	if got := e.NodeBurn(func() *fleet.Node { _, jb := fixtureNodes(); return jb }()); got != usd(2_960_000) {
		t.Errorf("NodeBurn(jb-1) = %v, want 2.96 USD (4.00 SGD from the price table)", got)
	}

	pl := e.Placements(now)
	if len(pl) != 2 || pl[1].Region != "Singapore" || pl[1].SpendMonth != usd(11_400_000) || pl[1].Violations != 1 ||
		pl[1].AlertsOpen[fleet.SevCritical] != 1 || pl[0].IdleSpendMonth != usd(5_920_000) {
		t.Errorf("placements %+v", pl)
	}
}

// TestOfflineIsPaidButDark: an offline node still burns and accrues, and
// all its GPUs count as idle burn.
func TestOfflineIsPaidButDark(t *testing.T) {
	e := fixtureEngine(t)
	sg, _ := fixtureNodes()
	e.NodeState(sg, wire.StateOffline, now)
	later := now.Add(time.Hour)
	sum, _, _ := e.Summarize(later)
	if sum.NodesOffline != 1 || sum.GPUsOffline != 2 {
		t.Fatalf("offline counts %+v", sum)
	}
	if sum.IdleBurn != usd(5_700_000+2_960_000) {
		t.Errorf("idle burn %v", sum.IdleBurn)
	}
	if sum.SpendToday != usd(17_320_000+5_700_000+2_960_000) {
		t.Errorf("spend today %v", sum.SpendToday)
	}
	// After offline_after (90 s default) the offline alert is open.
	_, _, alerts := e.Summarize(now.Add(6 * time.Minute))
	if !slices.ContainsFunc(alerts, func(a fleet.Alert) bool { return a.ID == "offline/sg-1" && a.Open() }) {
		t.Errorf("no offline alert in %+v", alerts)
	}
}

// A lease price that changes mid-day is billed from the sample that brings
// it: every sample when the caller has no node generations (0), and under
// generations when the generation moves; a sample under the same generation
// is the aggregator's promise that nothing changed, and is not read again.
func TestPriceChangeMidDay(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		before, same, change uint64 // generations; same 0: no sample between
	}{
		{"without generations", 0, 0, 0},
		{"by generation", 7, 7, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := New(DefaultConfig(), nil, nil)
			n := &fleet.Node{ID: "n", Region: "r", Lease: fleet.Lease{ID: "L", PricePerGPUHour: usd(1_000_000)},
				Devices: []fleet.Device{{Index: 0, Vendor: fleet.VendorNVIDIA}}}
			e.Observe(n, tc.before, &fleet.Sample{Seq: 1, Time: t0})
			n.Lease.PricePerGPUHour = usd(3_000_000)
			if tc.same != 0 {
				e.Observe(n, tc.same, &fleet.Sample{Seq: 2, Time: t0.Add(time.Minute)})
				if sum, _, _ := e.Summarize(t0.Add(2 * time.Minute)); sum.BurnPerHour != usd(1_000_000) {
					t.Errorf("burn %v under the same generation, want the 1.00 read with it", sum.BurnPerHour)
				}
			}
			e.Observe(n, tc.change, &fleet.Sample{Seq: 3, Time: t0.Add(time.Hour)})
			sum, _, _ := e.Summarize(t0.Add(90 * time.Minute))
			// 1 h at 1.00 + 30 min at 3.00.
			if sum.SpendToday != usd(2_500_000) || sum.BurnPerHour != usd(3_000_000) {
				t.Errorf("today %v burn %v", sum.SpendToday, sum.BurnPerHour)
			}
		})
	}
}

// TestBreakdownsAddUp: region, provider and model lines add up to the fleet
// figures to the micro-unit, although each is converted from SGD and USD.
func TestBreakdownsAddUp(t *testing.T) {
	e := fixtureEngine(t)
	for _, at := range []time.Time{now, now.Add(37 * time.Minute), now.Add(3*time.Hour + 11*time.Second)} {
		sum, _, _ := e.Summarize(at)
		for _, by := range []string{"region", "provider", "model"} {
			var b, i, d, m int64
			for _, c := range sum.Costs {
				if c.By == by {
					b, i, d, m = b+c.BurnPerHour.Micros, i+c.IdleBurn.Micros, d+c.SpendToday.Micros, m+c.SpendMonth.Micros
				}
			}
			if b != sum.BurnPerHour.Micros || i != sum.IdleBurn.Micros || d != sum.SpendToday.Micros || m != sum.SpendMonth.Micros {
				t.Errorf("%v by %s: %d %d %d %d, fleet %d %d %d %d", at, by, b, i, d, m, sum.BurnPerHour.Micros,
					sum.IdleBurn.Micros, sum.SpendToday.Micros, sum.SpendMonth.Micros)
			}
		}
	}
}

// TestSplitTeamsIsAPartition: sampled team shares that overshoot the node's
// accrued spend (they count from the previous sample) are capped, so the
// team breakdown still adds up to the node's spend exactly.
func TestSplitTeamsIsAPartition(t *testing.T) {
	var spend cost.Sums
	spend.Add(cost.MakeExact(1_000_000, 0), "USD")
	a, b := cost.MakeExact(700_000, 3), cost.MakeExact(400_000, 0)
	got := map[string]*cost.Sums{}
	to := func(team string) *cost.Sums {
		if got[team] == nil {
			got[team] = new(cost.Sums)
		}
		return got[team]
	}
	splitTeams(spend, []teamSpend{{"b", b}, {"a", a}}, "USD", to)
	sum := cost.Exact{}
	for _, m := range got {
		sum = sum.Add(m.Get("USD"))
	}
	if sum != spend.Get("USD") {
		t.Errorf("teams sum to %v, node spent %v: %v", sum, spend.Get("USD"), got)
	}
	if got["a"].Get("USD") != a {
		t.Errorf("team a got %v, want its whole share %v", got["a"].Get("USD"), a)
	}
}

// A job's view lists each region, jurisdiction and node it runs on once,
// sorted, however many of its GPUs are there and in whatever order the
// engine meets its nodes.
func TestJobViewAcrossNodes(t *testing.T) {
	e := newFixtureEngine(t)
	job := fleet.Job{ID: "big", Team: "vision"}
	for _, n := range []struct{ id, region, jur string }{{"sg-2", "Singapore", "SG"}, {"jb-2", "Johor", "MY"}, {"sg-1", "Singapore", "SG"}} {
		node := &fleet.Node{ID: n.id, Region: n.region, Jurisdiction: n.jur, Provider: "acme",
			Lease:   fleet.Lease{ID: "L-" + n.id, PricePerGPUHour: usd(1_000_000), Billing: fleet.BillPerSecond},
			Devices: []fleet.Device{{Index: 0, UUID: n.id + "-a"}, {Index: 1, UUID: n.id + "-b"}}}
		e.Observe(node, 0, &fleet.Sample{Seq: 1, Time: t0, Devices: []fleet.DeviceSample{util(0, 0.5), util(1, 0.7)},
			ProcsSet: true, Procs: []fleet.Process{{Device: 0, PID: 1, Job: job}, {Device: 1, PID: 2, Job: job}}})
	}
	_, jobs, _ := e.Summarize(t0.Add(time.Minute))
	if len(jobs) != 1 {
		t.Fatalf("jobs %+v, want one", jobs)
	}
	j := jobs[0]
	if j.GPUs != 6 || j.BurnPerHour != usd(6_000_000) || j.Util < 0.6-1e-9 || j.Util > 0.6+1e-9 ||
		!slices.Equal(j.Regions, []string{"Johor", "Singapore"}) || !slices.Equal(j.Jurisdictions, []string{"MY", "SG"}) ||
		!slices.Equal(j.Nodes, []string{"jb-2", "sg-1", "sg-2"}) {
		t.Errorf("job %+v", j)
	}
	// The next Summarize counts the job in the same room: the same view, and
	// the first one's lists untouched.
	_, again, _ := e.Summarize(t0.Add(time.Minute))
	if !reflect.DeepEqual(again, jobs) || !slices.Equal(j.Nodes, []string{"jb-2", "sg-1", "sg-2"}) {
		t.Errorf("second Summarize: %+v, first now %+v", again, jobs)
	}
	// A job that stopped is gone from the next one.
	for _, id := range []string{"sg-2", "jb-2", "sg-1"} {
		e.Observe(&fleet.Node{ID: id, Provider: "acme", Devices: []fleet.Device{{Index: 0, UUID: id + "-a"}, {Index: 1, UUID: id + "-b"}}}, 0,
			&fleet.Sample{Seq: 2, Time: t0.Add(time.Second), Devices: []fleet.DeviceSample{util(0, 0.5), util(1, 0.7)}, ProcsSet: true})
	}
	if _, after, _ := e.Summarize(t0.Add(time.Minute)); len(after) != 0 {
		t.Errorf("after the job stopped: %+v", after)
	}
}
