package insight

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// churnNode is a two-GPU node at 3.60 USD a GPU-hour: 1,000 micro-USD a
// GPU-second.
func churnNode() *fleet.Node {
	return &fleet.Node{ID: "batch-1", Hostname: "batch-1", Region: "Singapore", Jurisdiction: "SG", Provider: "acme",
		Lease: fleet.Lease{ID: "L-9", PricePerGPUHour: fleet.Money{Micros: 3_600_000, Currency: "USD"}, Billing: fleet.BillPerSecond},
		Devices: []fleet.Device{
			{Index: 0, UUID: "GPU-0", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3"},
			{Index: 1, UUID: "GPU-1", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3"},
		}}
}

// churnSample: GPU 0 runs "steady" throughout, GPU 1 a job of its own each
// sample (a batch node, or one making ids up).
func churnSample(i int, at time.Time) *fleet.Sample {
	return &fleet.Sample{Seq: uint64(i + 1), Time: at, Devices: []fleet.DeviceSample{util(0, 0.9), util(1, 0.9)},
		ProcsSet: true, Procs: []fleet.Process{
			{Device: 0, PID: 100, Job: fleet.Job{ID: "steady", Team: "ml"}},
			{Device: 1, PID: uint32(200 + i), Job: fleet.Job{ID: fmt.Sprintf("batch-%d", i), Team: "ml"}},
		}}
}

func jobSpendOf(t *testing.T, e *Engine, at time.Time, id string) fleet.Money {
	t.Helper()
	_, jobs, _ := e.Summarize(at)
	for _, j := range jobs {
		if j.ID == id {
			return j.Spend
		}
	}
	t.Fatalf("job %s not among the running jobs %+v", id, jobs)
	return fleet.Money{}
}

// TestJobSpendIsBoundedPerNode: a node that runs a new job every sample
// keeps at most maxNodeJobs jobs' spend (it kept one more each sample, for
// the aggregator's whole run), while the job that runs throughout keeps all
// of its spend; a new month starts job spend afresh. (Without a store the
// engine's own sampled figures are what the job views show.)
func TestJobSpendIsBoundedPerNode(t *testing.T) {
	e := newFixtureEngine(t)
	n := churnNode()
	const samples = 1000
	var at time.Time
	for i := range samples {
		at = t0.Add(time.Duration(i) * time.Second)
		e.Observe(n, 0, churnSample(i, at))
	}
	sh := e.shard(n.ID)
	sh.mu.Lock()
	kept := len(sh.nodes[n.ID].jobs)
	sh.mu.Unlock()
	if kept > maxNodeJobs {
		t.Errorf("the node keeps the spend of %d jobs, want at most %d", kept, maxNodeJobs)
	}
	// 999 GPU-seconds since the first sample, at 1,000 micro-USD each.
	if got, want := jobSpendOf(t, e, at, "steady"), usd(999_000); got != want {
		t.Errorf("steady spent %d µUSD (%s), want %d", got.Micros, got.Currency, want.Micros)
	}
	if got, want := jobSpendOf(t, e, at, fmt.Sprintf("batch-%d", samples-1)), usd(1_000); got != want {
		t.Errorf("the newest batch job spent %d µUSD (%s), want %d", got.Micros, got.Currency, want.Micros)
	}

	// Across midnight into April: only April's 5 seconds count this month.
	e = newFixtureEngine(t)
	start := time.Date(2026, 3, 31, 23, 59, 55, 0, time.UTC)
	for i := range 11 {
		at = start.Add(time.Duration(i) * time.Second)
		e.Observe(n, 0, churnSample(i, at))
	}
	if got, want := jobSpendOf(t, e, at, "steady"), usd(5_000); got != want {
		t.Errorf("steady spent %d µUSD (%s) in April by %v, want %d", got.Micros, got.Currency, at, want.Micros)
	}
}

// TestTeamsAreBoundedPerPeriod: a node whose processes name a new team every
// sample keeps at most maxPeriodTeams teams a day and month (it kept them
// all, and scanned them every sample), the time of the teams past the bound
// counts as nobody's, and the teams still add up to the node's spend.
func TestTeamsAreBoundedPerPeriod(t *testing.T) {
	e := newFixtureEngine(t)
	n := churnNode()
	var at time.Time
	for i := range 500 {
		at = t0.Add(time.Duration(i) * time.Second)
		s := churnSample(i, at)
		s.Procs[1].Job.Team = fmt.Sprintf("team-%d", i)
		e.Observe(n, 0, s)
	}
	sh := e.shard(n.ID)
	sh.mu.Lock()
	ns := sh.nodes[n.ID]
	day, month := len(ns.day.teams), len(ns.month.teams)
	sh.mu.Unlock()
	if day > maxPeriodTeams+1 || month > maxPeriodTeams+1 {
		t.Errorf("the node keeps %d teams today and %d this month, want at most %d (and nobody's)", day, month, maxPeriodTeams+1)
	}
	sum, _, _ := e.Summarize(at)
	var teams, none int64
	for _, l := range sum.Costs {
		if l.By == "team" {
			teams += l.SpendToday.Micros
			if l.Group == noGroup {
				none = l.SpendToday.Micros
			}
		}
	}
	if teams != sum.SpendToday.Micros {
		t.Errorf("teams' spend today adds up to %d µUSD, the fleet's is %d", teams, sum.SpendToday.Micros)
	}
	if none == 0 {
		t.Errorf("nobody's spend today is 0: the teams past the bound went missing")
	}
}
