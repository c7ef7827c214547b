package store

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRollups feeds a fleet of nodes×8 GPUs at 1 Hz through Record and
// Commit (one Commit per second of data, as the aggregator does; a fold each
// minute of data; the ledger refreshed every 5 minutes). One iteration is one
// second of fleet data; "%core" is the process CPU (user+system, fsyncs'
// waiting excluded) it costs as a share of one core running in real time.
// Run with -benchtime 300x or more so folds and ledger refreshes are in.
func benchRollups(b *testing.B, nodes int) {
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := base
	st, err := Open(filepath.Join(b.TempDir(), "fleettop.db"), Options{Clock: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ns := make([]*fleet.Node, nodes)
	ss := make([]*fleet.Sample, nodes)
	seqs := make(map[string]uint64, nodes)
	for i := range ns {
		ns[i] = testNode(fmt.Sprintf("node-%05d", i), 8)
		ss[i] = testSample(0, base, 8, 0.5)
	}
	second := func(it int) {
		now = base.Add(time.Duration(it) * time.Second)
		for i, n := range ns {
			s := ss[i]
			s.Seq++
			s.Time = now
			for d := range s.Devices {
				s.Devices[d].Values[fleet.MetricUtil] = float64((it+i+d)%100) / 100
			}
			st.Record(n, 0, s)
			seqs[n.ID] = s.Seq
		}
		if err := st.Commit(ctx, seqs); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up for two minutes of data: first identities, leases and the
	// first ledger accrual are one-off costs, not the steady state.
	const warm = 120
	for it := range warm {
		second(it)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	var journal int
	for it := 0; it < b.N; it++ {
		second(warm + it)
		journal += len(st.journalBuf)
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	perSecond := float64(cpu) / float64(b.N) // CPU ns per second of data
	b.ReportMetric(perSecond/1e9*100, "%core")
	b.ReportMetric(perSecond/float64(nodes*8), "cpu-ns/gpu-sample")
	b.ReportMetric(float64(journal)/float64(b.N*nodes*8), "journal-B/gpu-sample")
}

func BenchmarkRollups1kGPUs(b *testing.B)   { benchRollups(b, 125) }
func BenchmarkRollups10kGPUs(b *testing.B)  { benchRollups(b, 1250) }
func BenchmarkRollups100kGPUs(b *testing.B) { benchRollups(b, 12500) }

// BenchmarkLiveLedger reads this month's ledger as the live view does, for
// 1,250 nodes (10,000 GPUs) with 30 days of history, 3 lines a node a day:
// "miss" after every fold that wrote ledger rows (the rows are read again,
// under the commit lock), "hit" on every other read (the cached rows plus
// each lease's tail), "reuse" a hit into the room of the previous read.
func BenchmarkLiveLedger(b *testing.B) {
	ctx := context.Background()
	base := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	now := base
	st := openT(b, filepath.Join(b.TempDir(), "fleettop.db"), Options{SyncNormal: true, Clock: func() time.Time { return now }})
	defer st.Close()
	const nodes = 1250
	for i := range nodes {
		n := testNode(fmt.Sprintf("node-%05d", i), 8)
		st.Record(n, 0, testSample(1, base, 8, 0.5))
	}
	if err := st.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for d := range 30 {
		day := time.Date(2026, 3, 1+d, 0, 0, 0, 0, time.UTC).UnixMilli()
		for i := range nodes {
			for j, job := range []string{"", "train", "eval"} {
				if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_day (day_ms, node_id, currency, job, team, upto_ms,
					leased_gpu_ms, reported_gpu_ms, idle_gpu_ms, dark_gpu_ms, spend_micros, spend_rem, idle_micros, idle_rem,
					dark_micros, dark_rem) VALUES (?, ?, 'USD', ?, 'ml', ?, 1, 1, 0, 0, ?, 0, 0, 0, 0, 0)`,
					day, fmt.Sprintf("node-%05d", i), job, day+dayMs, 1000+j); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// "reuse": a hit read into the same Ledger each time, as Summarize does.
	for _, name := range []string{"miss", "hit", "reuse"} {
		b.Run(name, func(b *testing.B) {
			var lg Ledger
			for range b.N {
				if name == "miss" {
					st.ledgerSeq.Add(2) // today's hours changed, as after every fold
				}
				if name != "reuse" {
					lg = Ledger{}
				}
				if err := st.LiveLedgerInto(ctx, from, now.Add(time.Minute), &lg); err != nil || len(lg.Lines) < 3*nodes {
					b.Fatalf("%d lines, %v", len(lg.Lines), err)
				}
			}
		})
	}
}
