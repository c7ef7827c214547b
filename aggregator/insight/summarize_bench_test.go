package insight

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/mock"
	"github.com/fleettop/fleettop/store"
)

// BenchmarkSummarize is one Summarize of a fleet of 8-GPU nodes whose
// leases began an hour ago, with the store's ledger accrued (as loadgen's
// 100k run). It reports the CPU time per call and the longest a shard's
// lock was held (ingest's Observe of a node in that shard waits as long).
func BenchmarkSummarize(b *testing.B) {
	for _, nodes := range []int{1250, 12500} {
		b.Run(fmt.Sprintf("gpus=%d", nodes*8), func(b *testing.B) {
			clock := time.Date(2026, 3, 10, 10, 30, 0, 0, time.UTC)
			st, err := store.Open(filepath.Join(b.TempDir(), "fleettop.db"), store.Options{SyncNormal: true, Clock: func() time.Time { return clock }})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			cfg, err := ParseConfig([]byte(fixtureYAML), "fleettop.yaml")
			if err != nil {
				b.Fatal(err)
			}
			e, err := New(cfg, st, nil)
			if err != nil {
				b.Fatal(err)
			}
			regions := []string{"Singapore", "Johor", "Dubai", "Frankfurt"}
			ns := make([]*fleet.Node, nodes)
			for i := range ns {
				n := &fleet.Node{ID: fmt.Sprintf("n-%06d", i), Hostname: fmt.Sprintf("gpu-%06d", i), Region: regions[i%4], Jurisdiction: "SG", Provider: "acme",
					Lease: fleet.Lease{ID: fmt.Sprintf("L-%d", i), Start: clock.Add(-time.Hour), PricePerGPUHour: fleet.Money{Micros: 2_850_000, Currency: "USD"}, Billing: fleet.BillPerSecond}}
				for d := range 8 {
					n.Devices = append(n.Devices, fleet.Device{Index: d, UUID: fmt.Sprintf("GPU-%d-%d", i, d), Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3"})
				}
				ns[i] = n
			}
			job := fleet.Job{ID: "j1", Team: "vision"}
			for k := range 3 {
				at := clock.Add(time.Duration(k-2) * time.Second)
				for i, n := range ns {
					s := &fleet.Sample{Seq: uint64(k + 1), Time: at}
					for d := range 8 {
						s.Devices = append(s.Devices, util(d, float64((i+d)%10)/10))
					}
					if k == 0 {
						s.ProcsSet, s.Procs = true, []fleet.Process{{Device: 0, PID: 100, Job: fleet.Job{ID: fmt.Sprintf("j%d", i%50), Team: job.Team}}}
					}
					st.Record(n, 0, s)
					e.Observe(n, 0, s)
				}
			}
			if err := st.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			timeSummarize(b, e, clock)
		})
	}
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSummarizeMockFleet is one Summarize of `fleettop mock`'s fleet
// (the ingest check's 1,250 nodes: its regions, leases, jobs and teams)
// after two minutes of its samples went through the store and the engine,
// with the aggregator's default configuration. It reports the CPU time per
// call: 4.4-5.5 ms on the project's machine, where BenchmarkSummarize's
// synthetic fleet (one job a node) reads 1.9 ms at 10,000 GPUs and the
// aggregator in place 6-14 ms a call (docs/BENCHMARKS.md).
func BenchmarkSummarizeMockFleet(b *testing.B) {
	const nodes, secs = 1250, 120
	t0 := time.Date(2026, 3, 10, 10, 30, 0, 0, time.UTC)
	clock := t0
	st, err := store.Open(filepath.Join(b.TempDir(), "fleettop.db"), store.Options{SyncNormal: true, Clock: func() time.Time { return clock }})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e, err := New(DefaultConfig(), st, nil)
	if err != nil {
		b.Fatal(err)
	}
	sc, err := mock.New(mock.Config{Seed: 1, Start: t0.Add(-time.Hour), Nodes: nodes})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	samplers := make([]*mock.AgentSampler, nodes)
	gpus := 0
	for i, nd := range sc.Nodes {
		src := mock.NewSource(nd, mock.SourceOptions{Now: func() time.Time { return clock }})
		if _, err := src.Start(ctx); err != nil {
			b.Fatal(err)
		}
		samplers[i] = mock.NewAgentSampler(src)
		gpus += len(nd.Info.Devices)
	}
	var s fleet.Sample
	for k := range secs {
		clock = t0.Add(time.Duration(k) * time.Second)
		for i, nd := range sc.Nodes {
			if err := samplers[i].Sample(ctx, &s, uint64(k+1), clock); err != nil {
				b.Fatal(err)
			}
			st.Record(&nd.Info, uint64(i+1), &s)
			e.Observe(&nd.Info, uint64(i+1), &s)
		}
		if k%5 == 4 {
			if err := st.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	timeSummarize(b, e, clock)
	b.ReportMetric(float64(gpus), "gpus")
}

// timeSummarize times b.N calls of Summarize at now, after one that warms
// the store's cache, and reports the CPU time per call.
func timeSummarize(b *testing.B, e *Engine, now time.Time) {
	e.Summarize(now)
	b.ReportAllocs()
	b.ResetTimer()
	c0 := cpuNow()
	for range b.N {
		e.Summarize(now)
	}
	b.ReportMetric(float64((cpuNow()-c0).Nanoseconds())/float64(b.N)/1e6, "cpu-ms/op")
}
