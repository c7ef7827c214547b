package store

import (
	"context"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
)

// The "cost truth" test: a simulated 30-day fleet (price changes, leases
// starting and ending mid-month, nodes and single GPUs going dark, billing
// per second and per started hour, three currencies) is driven through
// Record/Commit with a fake clock; the ledger must equal an invoice computed
// here independently, second by second, with big.Rat: exactly.

var (
	monthStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	monthEnd   = monthStart.Add(30 * 24 * time.Hour)
)

type span struct{ from, to time.Time }

func (s span) has(t time.Time) bool { return !t.Before(s.from) && t.Before(s.to) }

type priceStep struct {
	from   time.Time // a whole minute at which the node reports
	micros int64
}

type simNode struct {
	id, region, cur string
	gpus            int
	billing         fleet.Billing
	start, end      time.Time // lease; end zero: open-ended
	firstSample     time.Time // first minute the collector reports
	prices          []priceStep
	dark            []span         // node sends nothing
	gpuDown         map[int][]span // one device missing from samples
	idle            func(m time.Time, d int) bool
	job             func(m time.Time, d int) (id, team string)
}

func day(d, h, m, s int) time.Time {
	return monthStart.Add(time.Duration(d-1)*24*time.Hour + time.Duration(h)*time.Hour +
		time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
}

func (n *simNode) price(t time.Time) int64 {
	p := n.prices[0].micros
	for _, s := range n.prices[1:] {
		if !t.Before(s.from) {
			p = s.micros
		}
	}
	return p
}

func (n *simNode) leased(t time.Time) bool {
	return !t.Before(n.start) && (n.end.IsZero() || t.Before(n.end))
}

// reports says whether device d's sample of minute m exists.
func (n *simNode) reports(m time.Time, d int) bool {
	if m.Before(n.firstSample) {
		return false
	}
	for _, s := range n.dark {
		if s.has(m) {
			return false
		}
	}
	for _, s := range n.gpuDown[d] {
		if s.has(m) {
			return false
		}
	}
	return true
}

func (n *simNode) node(m time.Time) *fleet.Node {
	fn := &fleet.Node{ID: n.id, Hostname: n.id, Region: n.region, Provider: "p-" + n.region, Jurisdiction: "XX",
		Labels: map[string]string{"team": "ops"},
		Lease: fleet.Lease{ID: "lease-" + n.id, PricePerGPUHour: fleet.Money{Micros: n.price(m), Currency: n.cur},
			Billing: n.billing, Start: n.start, End: n.end}}
	for i := range n.gpus {
		fn.Devices = append(fn.Devices, fleet.Device{Index: i, UUID: n.id + "-" + string(rune('a'+i)), Vendor: fleet.VendorNVIDIA, Model: "H100"})
	}
	return fn
}

func (n *simNode) sample(seq uint64, m time.Time) *fleet.Sample {
	s := &fleet.Sample{Seq: seq, Time: m, ProcsSet: true}
	for d := range n.gpus {
		if !n.reports(m, d) {
			continue
		}
		var ds fleet.DeviceSample
		ds.Index = d
		u := 0.7
		if n.idle(m, d) {
			u = 0.01
		}
		ds.Set(fleet.MetricUtil, u)
		ds.Set(fleet.MetricPower, 400*u)
		s.Devices = append(s.Devices, ds)
		if id, team := n.job(m, d); id != "" {
			s.Procs = append(s.Procs, fleet.Process{Device: d, PID: uint32(100 + d), Job: fleet.Job{ID: id, Team: team}})
		}
	}
	return s
}

func simFleet() []*simNode {
	noJob := func(time.Time, int) (string, string) { return "", "" }
	return []*simNode{
		{ // per second, SGD, a price rise mid-month, dark for 7 hours, one GPU out for a day, a job for a week
			id: "sg-1", region: "Singapore", cur: "SGD", gpus: 2, billing: fleet.BillPerSecond,
			start: day(1, 0, 0, 0), firstSample: day(1, 0, 0, 0),
			prices:  []priceStep{{monthStart, 3_340_000}, {day(12, 9, 30, 0), 3_610_000}},
			dark:    []span{{day(5, 2, 0, 0), day(5, 9, 13, 0)}},
			gpuDown: map[int][]span{1: {{day(20, 0, 0, 0), day(21, 0, 0, 0)}}},
			idle:    func(m time.Time, d int) bool { return m.Hour() < 6 || (d == 1 && m.Minute()%7 == 0) },
			job: func(m time.Time, d int) (string, string) {
				if m.After(day(3, 0, 0, 0)) && m.Before(day(10, 0, 0, 0)) {
					return "train-1", "vision"
				}
				return "", ""
			},
		},
		{ // per started hour, USD, lease starts mid-month off the hour, price cut, ends mid-month
			id: "sg-2", region: "Singapore", cur: "USD", gpus: 1, billing: fleet.BillPerStartedHour,
			start: day(4, 13, 17, 23), end: day(26, 8, 5, 41), firstSample: day(4, 13, 18, 0),
			prices: []priceStep{{monthStart, 2_490_001}, {day(15, 10, 41, 0), 2_190_000}},
			dark:   []span{{day(9, 23, 0, 0), day(10, 1, 30, 0)}},
			idle:   func(m time.Time, d int) bool { return m.Weekday() == time.Sunday },
			job:    noJob,
		},
		{ // per second, AED, reports before its lease starts, goes dark for good on day 25
			id: "ae-1", region: "Dubai", cur: "AED", gpus: 2, billing: fleet.BillPerSecond,
			start: day(2, 7, 45, 10), firstSample: day(2, 7, 0, 0),
			prices:  []priceStep{{monthStart, 9_150_000}},
			dark:    []span{{day(25, 14, 0, 0), monthEnd.Add(time.Hour)}},
			gpuDown: map[int][]span{0: {{day(11, 0, 0, 0), day(11, 3, 0, 0)}}},
			idle:    func(m time.Time, d int) bool { return m.Day()%3 == 0 },
			job:     noJob,
		},
		{ // per second, USD, lease ends mid-month, node keeps reporting after
			id: "my-1", region: "Johor", cur: "USD", gpus: 2, billing: fleet.BillPerSecond,
			start: day(1, 0, 0, 0), end: day(18, 16, 20, 7), firstSample: day(1, 0, 0, 0),
			prices: []priceStep{{monthStart, 1_450_000}, {day(7, 0, 1, 0), 1_500_003}, {day(9, 12, 0, 0), 1_390_000}},
			idle:   func(m time.Time, d int) bool { return d == 0 && m.Hour()%4 == 0 },
			job:    noJob,
		},
	}
}

// invoice is what one node owes over [monthStart, monthEnd), exact.
type invoice struct {
	cur                          string
	leased, reported, idle, dark int64 // GPU-seconds
	spend, idleSpend, darkSpend  *big.Rat
}

func computeInvoice(n *simNode) invoice {
	inv := invoice{cur: n.cur, spend: new(big.Rat), idleSpend: new(big.Rat), darkSpend: new(big.Rat)}
	perPrice := map[int64]*[4]int64{} // leased, reported, idle, dark GPU-seconds at a price
	// second by second, in Unix seconds (what the device reports is known per minute)
	start, end := n.start.Unix(), int64(1<<62)
	if !n.end.IsZero() {
		end = n.end.Unix()
	}
	for m := monthStart; m.Before(monthEnd); m = m.Add(time.Minute) {
		var rep, idle [8]bool
		for d := range n.gpus {
			rep[d] = n.reports(m, d)
			idle[d] = rep[d] && n.idle(m, d)
		}
		for sec := m.Unix(); sec < m.Unix()+60; sec++ {
			if sec < start || sec >= end {
				continue
			}
			p := n.price(time.Unix(sec, 0))
			c := perPrice[p]
			if c == nil {
				c = new([4]int64)
				perPrice[p] = c
			}
			for d := range n.gpus {
				c[0]++
				switch {
				case !rep[d]:
					c[3]++
				case idle[d]:
					c[1]++
					c[2]++
				default:
					c[1]++
				}
			}
		}
	}
	hourly := func(p int64, secs int64) *big.Rat { return big.NewRat(p*secs, 3600) }
	for p, c := range perPrice {
		inv.leased += c[0]
		inv.reported += c[1]
		inv.idle += c[2]
		inv.dark += c[3]
		if n.billing == fleet.BillPerSecond {
			inv.spend.Add(inv.spend, hourly(p, c[0]))
		}
		inv.idleSpend.Add(inv.idleSpend, hourly(p, c[2]))
		inv.darkSpend.Add(inv.darkSpend, hourly(p, c[3]))
	}
	if n.billing == fleet.BillPerStartedHour {
		for t := n.start; n.leased(t) && t.Before(monthEnd); t = t.Add(time.Hour) {
			if !t.Before(monthStart) {
				inv.spend.Add(inv.spend, big.NewRat(n.price(t)*int64(n.gpus), 1))
			}
		}
	}
	return inv
}

func driveFleet(t *testing.T, path string, fleetNodes []*simNode) {
	t.Helper()
	ctx := context.Background()
	clk := &fakeClock{monthStart}
	opts := Options{Clock: clk.Now, Interval: time.Minute, LedgerEvery: 3 * time.Hour, FoldEvery: 2 * time.Hour,
		SyncNormal: true, MaxBackfill: time.Hour}
	st, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[string]uint64{}
	reopened := false
	for m := monthStart; m.Before(monthEnd); m = m.Add(time.Minute) {
		clk.t = m
		for _, n := range fleetNodes {
			if m.Before(n.firstSample) {
				continue
			}
			dark := false
			for _, s := range n.dark {
				dark = dark || s.has(m)
			}
			if dark {
				continue
			}
			seqs[n.id]++
			st.Record(n.node(m), 0, n.sample(seqs[n.id], m))
		}
		if m.Minute() == 59 {
			clk.t = m.Add(59 * time.Second)
			if err := st.Commit(ctx, seqs); err != nil {
				t.Fatal(err)
			}
		}
		if !reopened && m.Equal(day(15, 3, 14, 0)) { // restart the aggregator mid-month
			reopened = true
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if st, err = Open(path, opts); err != nil {
				t.Fatal(err)
			}
		}
	}
	clk.t = monthEnd
	if err := st.Close(); err != nil { // Close accrues up to the clock
		t.Fatal(err)
	}
}

func TestCostTruth(t *testing.T) {
	if testing.Short() {
		t.Skip("30 simulated days")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleettop.db")
	nodes := simFleet()
	driveFleet(t, path, nodes)

	st, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if r, err := st.IntegrityCheck(ctx); err != nil || r != "ok" {
		t.Fatalf("integrity_check = %q, %v", r, err)
	}
	// 1. The ledger of every node equals its invoice, exactly.
	us, err := st.Usage(ctx, "node", monthStart, monthEnd)
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string]Usage{}
	for _, u := range us {
		if _, dup := byNode[u.Group]; dup {
			t.Fatalf("node %s has ledger rows in two currencies", u.Group)
		}
		byNode[u.Group] = u
	}
	invoices := map[string]invoice{}
	for _, n := range nodes {
		inv := computeInvoice(n)
		invoices[n.id] = inv
		u, ok := byNode[n.id]
		if !ok {
			t.Fatalf("no ledger for %s", n.id)
		}
		if u.Currency != inv.cur {
			t.Errorf("%s: ledger currency %s, invoice %s", n.id, u.Currency, inv.cur)
		}
		for _, c := range []struct {
			what      string
			got, want int64
		}{
			{"leased GPU-ms", u.LeasedGPUms, inv.leased * 1000},
			{"reported GPU-ms", u.ReportedGPUms, inv.reported * 1000},
			{"idle GPU-ms", u.IdleGPUms, inv.idle * 1000},
			{"dark GPU-ms", u.DarkGPUms, inv.dark * 1000},
		} {
			if c.got != c.want {
				t.Errorf("%s: %s = %d, invoice %d", n.id, c.what, c.got, c.want)
			}
		}
		for _, c := range []struct {
			what string
			got  cost.Exact
			want *big.Rat
		}{{"spend", u.Spend, inv.spend}, {"idle spend", u.Idle, inv.idleSpend}, {"dark spend", u.Dark, inv.darkSpend}} {
			if c.got.Rat().Cmp(c.want) != 0 {
				t.Errorf("%s: %s = %s micros, invoice %s", n.id, c.what, c.got.Rat().FloatString(6), c.want.FloatString(6))
			}
		}
	}
	// 2. The report by region, in USD, equals the invoice rounded once per figure.
	rates, err := cost.ParseRates("USD", map[string]string{"SGD": "0.7412", "AED": "0.2722940776"})
	if err != nil {
		t.Fatal(err)
	}
	regionUsage, err := st.Usage(ctx, "region", monthStart, monthEnd)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*[3]*big.Rat{}
	for _, n := range nodes {
		inv := invoices[n.id]
		w := want[n.region]
		if w == nil {
			w = &[3]*big.Rat{new(big.Rat), new(big.Rat), new(big.Rat)}
			want[n.region] = w
		}
		rate, _ := rates.Rate(n.cur)
		for i, v := range []*big.Rat{inv.spend, inv.idleSpend, inv.darkSpend} {
			w[i].Add(w[i], new(big.Rat).Mul(v, rate))
		}
	}
	got := reportLines(t, regionUsage, rates)
	if len(got) != len(want) {
		t.Fatalf("report has %d regions, invoice %d", len(got), len(want))
	}
	for region, w := range want {
		g, ok := got[region]
		if !ok {
			t.Fatalf("report lacks %s", region)
		}
		for i, what := range []string{"spend", "idle spend", "paid but dark"} {
			if wm := cost.RoundRat(w[i]); g[i] != wm {
				t.Errorf("report %s %s = %d micros USD, invoice %d", region, what, g[i], wm)
			}
		}
	}
	// 3. Hourly rollups carry every reported minute.
	var minuteMs, hourMs int64
	if err := st.DB().QueryRow(`SELECT (SELECT SUM(reported_ms) FROM rollup_minute), (SELECT SUM(reported_ms) FROM rollup_hour)`).Scan(&minuteMs, &hourMs); err != nil {
		t.Fatal(err)
	}
	if minuteMs != hourMs || minuteMs == 0 {
		t.Errorf("reported ms: minutes %d, hours %d", minuteMs, hourMs)
	}
	// 4. By job, the GPU-time adds up to the same totals.
	jobUsage, err := st.Usage(ctx, "job", monthStart, monthEnd)
	if err != nil {
		t.Fatal(err)
	}
	var jobLeased, nodeLeased int64
	sawJob := false
	for _, u := range jobUsage {
		jobLeased += u.LeasedGPUms
		sawJob = sawJob || u.Group == "train-1"
	}
	for _, u := range us {
		nodeLeased += u.LeasedGPUms
	}
	if jobLeased != nodeLeased || !sawJob {
		t.Errorf("by job: %d GPU-ms leased (train-1 seen: %v), by node %d", jobLeased, sawJob, nodeLeased)
	}
}

// reportLines converts per-region usage the way the report does: exact
// conversion, one rounding per figure. (The report package's own tests
// check its writers against golden files.)
func reportLines(t *testing.T, us []Usage, rates cost.Rates) map[string][3]int64 {
	t.Helper()
	acc := map[string]*[3]*big.Rat{}
	for _, u := range us {
		a := acc[u.Group]
		if a == nil {
			a = &[3]*big.Rat{new(big.Rat), new(big.Rat), new(big.Rat)}
			acc[u.Group] = a
		}
		for i, e := range []cost.Exact{u.Spend, u.Idle, u.Dark} {
			v, err := rates.ConvertRat(e, u.Currency)
			if err != nil {
				t.Fatal(err)
			}
			a[i].Add(a[i], v)
		}
	}
	out := map[string][3]int64{}
	for g, a := range acc {
		out[g] = [3]int64{cost.RoundRat(a[0]), cost.RoundRat(a[1]), cost.RoundRat(a[2])}
	}
	return out
}
