package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleettop/fleettop/aggregator/insight"
	"github.com/fleettop/fleettop/cost"
	promexp "github.com/fleettop/fleettop/exporters/prometheus"
	"github.com/fleettop/fleettop/exporters/report"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/store"
	"github.com/fleettop/fleettop/wire"
)

const monthConfig = `currency: USD
rates:
  SGD: "0.74"
`

// monthNode is one simulated collector of the month.
type monthNode struct {
	*skewed
	job      string // job on GPU 0, "" none
	team     string
	dark     func(t time.Time) bool // no samples then
	blind    bool                   // NVML failed at start: no devices seen
	repriced bool
}

// TestMonthInvariants simulates a month of a small demo-like fleet through
// the real ingest path, store and cost engine, on a fake clock, one sample a
// quarter hour sent a day at a time (as a spool resend): a price change, an
// hourly-billed lease in another currency, a node dark two hours a day, a node
// an hour behind, and one whose NVML failed at start (billed its 4 leased
// GPUs, all of them paid but blind). For every day, to the micro-unit: the
// report (ledger) by region, team, job (unattributed included) and node
// each add up to their total and the totals are equal; they equal the live
// fleet figure, whose region, provider, model and team lines add up to it;
// and checkSurfaces holds /api/v1/fleet (spend today and this month, each
// region's and team's line), /metrics (spend this month by placement and by
// team) and the live jobs' spend to the report. The skewed node is billed
// exactly its lease, the blind node is blind for all of it.
func TestMonthInvariants(t *testing.T) {
	days := 30
	if testing.Short() {
		days = 3
	}
	clk := newFakeClock()
	clk.ns.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	st, err := store.Open(filepath.Join(t.TempDir(), "fleettop.db"), store.Options{SyncNormal: true, Clock: clk.Now, Interval: monthStep})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg, err := insight.ParseConfig([]byte(monthConfig), "aggregator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := insight.New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	// /metrics is the production exporter over this server, as
	// cmd/fleettop wires it.
	var live atomic.Pointer[Server]
	exp := promexp.NewExporter(func(fn func(promexp.NodeReader)) {
		if s := live.Load(); s != nil {
			s.EachNode(func(n *LiveNode) { fn(n) })
		}
	}, eng)
	ts := startServer(t, nil, func(c *Config) {
		c.Recorder, c.Insights, c.Clock = st, eng, clk.Now
		c.Interval = monthStep
		c.OfflineAfter = 365 * 24 * time.Hour
		c.MetricsHandler = func(self prometheus.Gatherer) http.Handler { return exp.Handler(self, nil) }
	})
	live.Store(ts.Server)
	rates, err := cfg.Rates.Rebase("USD")
	if err != nil {
		t.Fatal(err)
	}

	mk := func(id string, gpus int, price int64, cur string, billing fleet.Billing, region, team string) fleet.Node {
		n := testNode(id, gpus)
		n.Region = region
		n.Lease.PricePerGPUHour = fleet.Money{Micros: price, Currency: cur}
		n.Lease.Billing = billing
		n.Labels = map[string]string{"team": team}
		return n
	}
	start := clk.Now()
	nodes := []*monthNode{
		{skewed: &skewed{node: mk("sg-1", 2, 2_500_000, "USD", fleet.BillPerSecond, "Singapore", "infra")}, job: "train-1", team: "vision"},
		{skewed: &skewed{node: mk("jb-1", 1, 4_000_000, "SGD", fleet.BillPerStartedHour, "Johor", "infra")}, job: "eval-2", team: "nlp"},
		{skewed: &skewed{node: mk("dark-1", 1, 1_000_000, "USD", fleet.BillPerSecond, "Singapore", "infra")},
			dark: func(t time.Time) bool { return t.Hour() == 2 || t.Hour() == 3 }},
		{skewed: &skewed{node: mk("skew-1", 2, 2_000_000, "USD", fleet.BillPerSecond, "Dubai", "infra"), skew: -time.Hour}, job: "train-3", team: "vision"},
		{skewed: &skewed{node: mk("blind-1", 0, 3_000_000, "USD", fleet.BillPerSecond, "Dubai", "infra")}, blind: true},
	}
	nodes[4].node.Lease.GPUs = 4 // contracted, none visible
	for _, n := range nodes {
		n.tt, n.clk, n.ins = t, clk, nil
		n.connectQuiet(ts)
	}
	ctx := context.Background()
	for day := range days {
		dayStart := start.AddDate(0, 0, day)
		if day == 10 { // sg-1's price rises: its collector says Hello with the new lease
			n := nodes[0]
			n.node.Lease.PricePerGPUHour.Micros = 3_100_000
			n.repriced = true
			n.conn.CloseNow()
			n.connectQuiet(ts)
		}
		// One sample every monthStep, the last at 23:45.
		batches := make([][]fleet.Sample, len(nodes))
		for m := range int(24 * time.Hour / monthStep) {
			if day == 0 && m == 0 {
				continue
			}
			at := dayStart.Add(time.Duration(m) * monthStep)
			clk.ns.Store(at.UnixNano())
			for i, n := range nodes {
				if n.dark != nil && n.dark(at) {
					continue
				}
				batches[i] = append(batches[i], n.monthRecord())
			}
		}
		for i, n := range nodes {
			for b := batches[i]; len(b) > 0; b = b[min(len(b), wire.MaxSamples):] {
				n.send(&wire.Samples{Samples: b[:min(len(b), wire.MaxSamples)]})
			}
		}
		for _, n := range nodes {
			waitApplied(t, ts, n.node.ID, n.seq)
		}
		if err := st.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		now := clk.Now()
		sum, _, _ := eng.Summarize(now)
		dayEnd := dayStart.Add(24 * time.Hour)
		totals := map[string]int64{}
		var lineSums []string
		for _, by := range []string{"region", "team", "job", "node"} {
			us, err := st.Usage(ctx, by, dayStart, dayEnd)
			if err != nil {
				t.Fatal(err)
			}
			r, err := report.Build(by, dayStart, dayEnd, us, &rates)
			if err != nil {
				t.Fatal(err)
			}
			var lines int64
			for _, l := range r.Lines {
				lines += l.Spend
			}
			if r.Total == nil {
				t.Fatalf("day %d by %s: no total", day+1, by)
			}
			totals[by] = r.Total.Spend
			lineSums = append(lineSums, fmt.Sprintf("%s lines %d total %d", by, lines, r.Total.Spend))
			if lines != r.Total.Spend {
				t.Errorf("day %d: report by %s: lines add up to %d, total %d", day+1, by, lines, r.Total.Spend)
			}
			if by == "node" {
				for _, u := range us {
					if u.Group == "blind-1" && (u.BlindGPUms != u.LeasedGPUms || u.Blind != u.Spend || u.LeasedGPUms != leasedMs(day, 4)) {
						t.Errorf("day %d: blind node: %d of %d GPU-ms blind (want all %d), blind %v of spend %v", day+1, u.BlindGPUms, u.LeasedGPUms, leasedMs(day, 4), u.Blind, u.Spend)
					}
					if u.Group != "blind-1" && u.BlindGPUms != 0 {
						t.Errorf("day %d: %s has %d blind GPU-ms, sees all its GPUs", day+1, u.Group, u.BlindGPUms)
					}
					if u.Group == "skew-1" {
						want := cost2(2_000_000, u.LeasedGPUms)
						if u.Spend.Rat().Cmp(want) != 0 || u.LeasedGPUms != leasedMs(day, 2) {
							t.Errorf("day %d: skewed node billed %v for %d GPU-ms, want %v for %d", day+1, u.Spend, u.LeasedGPUms, want, leasedMs(day, 2))
						}
					}
				}
			}
		}
		for by, v := range totals {
			if v != sum.SpendToday.Micros {
				t.Errorf("day %d: report by %s totals %d, live spend today %d (%v)", day+1, by, v, sum.SpendToday.Micros, lineSums)
			}
		}
		live := map[string]int64{}
		for _, c := range sum.Costs {
			live[c.By] += c.SpendToday.Micros
		}
		for _, by := range []string{"region", "provider", "model", "team"} {
			if live[by] != sum.SpendToday.Micros {
				t.Errorf("day %d: live spend today by %s adds up to %d, fleet %d", day+1, by, live[by], sum.SpendToday.Micros)
			}
		}
		checkSurfaces(t, day, ts, st, eng, &rates, start, dayEnd)
		if t.Failed() {
			t.FailNow()
		}
		// Midnight: the next day begins.
		clk.ns.Store(dayEnd.UnixNano())
	}
}

// leasedMs is what a node of gpus GPUs leases on a day up to its last
// sample, from its first connection at 00:00 on the first day.
func leasedMs(_, gpus int) int64 {
	return int64(gpus) * (24*time.Hour - monthStep).Milliseconds()
}

// monthStep is the simulated sampling interval: coarse, so that a month
// runs in seconds; the store and the aggregator are told it.
const monthStep = 15 * time.Minute

func cost2(pricePerHour, gpuMs int64) *big.Rat {
	return new(big.Rat).SetFrac64(pricePerHour*gpuMs, 3_600_000)
}

// connectQuiet says Hello and a Clock reading, and waits for the reading to
// be applied (no ClockObserver fake here: it waits for the node's estimate).
func (n *monthNode) connectQuiet(ts *testServer) {
	n.collector = dialCollector(n.tt, ts, secretAll)
	n.send(&wire.Hello{Proto: wire.Version, Node: n.node})
	n.send(&wire.Clock{Sent: n.now()})
	if f := n.mustRecv(); f.Type() != wire.TypeWelcome {
		n.tt.Fatalf("%s: want welcome, got %+v", n.node.ID, f)
	}
	ns := ts.node(n.node.ID)
	testutil.WaitFor(n.tt, "clock reading", func() bool {
		return ns.offsetKnown.Load() && time.Duration(ns.offset.Load()) == -n.skew
	})
}

func (n *monthNode) monthRecord() fleet.Sample {
	n.seq++
	s := fleet.Sample{Seq: n.seq, Time: n.now()}
	if !n.blind {
		s.Devices = make([]fleet.DeviceSample, len(n.node.Devices))
		for i := range s.Devices {
			s.Devices[i].Index = i
			s.Devices[i].Set(fleet.MetricUtil, 0.8)
		}
	}
	if n.seq == 1 && n.job != "" {
		s.ProcsSet = true
		s.Procs = []fleet.Process{{Device: 0, PID: 42, Name: "python", Job: fleet.Job{ID: n.job, Team: n.team}}}
	}
	return s
}

// checkSurfaces compares, at the end of a simulated day, every surface that
// shows money with the report built from the ledger, to the micro-unit:
// /api/v1/fleet (spend today and this month, and each region's and team's
// line), /metrics (spend this month by placement and by team), and the jobs
// the live view shows (spend this month) with the report by job.
func checkSurfaces(t *testing.T, day int, ts *testServer, st *store.Store, eng *insight.Engine, rates *cost.Rates, monthStart, dayEnd time.Time) {
	t.Helper()
	ctx := context.Background()
	dayStart := dayEnd.Add(-24 * time.Hour)
	rep := func(by string, from time.Time) map[string]int64 {
		us, err := st.Usage(ctx, by, from, dayEnd)
		if err != nil {
			t.Fatal(err)
		}
		r, err := report.Build(by, from, dayEnd, us, rates)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{"": r.Total.Spend}
		for _, l := range r.Lines {
			g := l.Group
			if g == "" {
				g = "(none)"
			}
			out["="+g] = l.Spend
		}
		return out
	}
	get := func(path string) []byte {
		req, err := http.NewRequest(http.MethodGet, ts.httpURL(path), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secretViewer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b []byte
		b, err = io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return b
	}
	same := func(what string, got, want int64) {
		if got != want {
			t.Errorf("day %d: %s: %d micro-units, the report says %d", day+1, what, got, want)
		}
	}

	// /api/v1/fleet
	var fr FleetResponse
	if err := json.Unmarshal(get("/api/v1/fleet"), &fr); err != nil {
		t.Fatal(err)
	}
	today, month := map[string]map[string]int64{}, map[string]map[string]int64{}
	for _, by := range []string{"region", "team", "job", "node"} {
		today[by], month[by] = rep(by, dayStart), rep(by, monthStart)
	}
	same("API spend today", fr.Summary.SpendToday.Micros, today["region"][""])
	same("API spend this month", fr.Summary.SpendMonth.Micros, month["region"][""])
	seen := map[string]bool{}
	for _, c := range fr.Summary.Costs {
		if c.By != "region" && c.By != "team" {
			continue
		}
		seen[c.By+"="+c.Group] = true // a group with burn and no spend has no report line: 0
		same("API "+c.By+" "+c.Group+" today", c.SpendToday.Micros, today[c.By]["="+c.Group])
		same("API "+c.By+" "+c.Group+" this month", c.SpendMonth.Micros, month[c.By]["="+c.Group])
	}
	for _, by := range []string{"region", "team"} {
		for g := range month[by] {
			if g != "" && !seen[by+g] {
				t.Errorf("day %d: the report has %s %s, the API does not", day+1, by, g[1:])
			}
		}
	}
	// Job + unattributed add up to the fleet (the report's by-job total is
	// checked against the others by the caller); the jobs the live view
	// shows carry the report's spend this month.
	_, jobs, _ := eng.Summarize(ts.clock())
	if len(jobs) == 0 {
		t.Errorf("day %d: no jobs in the live view", day+1)
	}
	for _, j := range jobs {
		same("job "+j.ID+" this month", j.Spend.Micros, month["job"]["="+j.ID])
	}

	// /metrics: spend this month by placement, and by team.
	metrics := string(get("/metrics"))
	sumOf := func(family string, label string) (int64, map[string]int64) {
		re := regexp.MustCompile(`(?m)^` + family + `\{([^}]*)\} (\S+)$`)
		lab := regexp.MustCompile(label + `="([^"]*)"`)
		var total int64
		by := map[string]int64{}
		for _, m := range re.FindAllStringSubmatch(metrics, -1) {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatal(err)
			}
			micros := int64(math.Round(v * 1e6))
			total += micros
			if l := lab.FindStringSubmatch(m[1]); l != nil {
				by[l[1]] += micros
			}
		}
		return total, by
	}
	placed, _ := sumOf("fleettop_cost_spend_total", "region")
	same("/metrics fleettop_cost_spend_total (all placements)", placed, month["region"][""])
	teamTotal, teams := sumOf("fleettop_team_cost_spend_total", "team")
	if placed == 0 || len(teams) < 3 {
		t.Errorf("day %d: /metrics has no spend by placement (%d) or too few teams (%v)", day+1, placed, teams)
	}
	same("/metrics fleettop_team_cost_spend_total (all teams)", teamTotal, month["team"][""])
	for team, v := range teams {
		same("/metrics team "+team+" this month", v, month["team"]["="+team])
	}
}
