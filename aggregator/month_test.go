package aggregator

import (
	"context"
	"fmt"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleettop/fleettop/aggregator/insight"
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
// an hour behind, and one whose NVML failed at start. For every day, the
// ledger's breakdowns by region, team and job (unattributed included) equal
// its total and the live fleet figure to the micro-unit, the live team
// breakdown adds up to the fleet figure, and the skewed node is billed
// exactly its lease.
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
	ts := startServer(t, nil, func(c *Config) {
		c.Recorder, c.Insights, c.Clock = st, eng, clk.Now
		c.Interval = monthStep
		c.OfflineAfter = 365 * 24 * time.Hour
	})
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
