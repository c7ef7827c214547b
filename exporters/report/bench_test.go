package report

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/store"
)

// BenchmarkReport30Days10kGPUs is `fleettop report --since 30d --by region`
// over 30 days of a 10,000-GPU fleet (1,250 nodes of 8 GPUs, 8 regions,
// three currencies, half the nodes running a job: 1.35 million hourly ledger
// rows), with the ledger written straight into SQLite: open read-only, sum,
// convert, write CSV. The window is 30 days plus a partial hour at each end,
// so both the daily and the hourly ledger are read.
func BenchmarkReport30Days10kGPUs(b *testing.B) {
	const nodes, gpus, hours = 1250, 8, 30 * 24
	path := filepath.Join(b.TempDir(), store.FileName)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	generateLedger(b, path, nodes, gpus, hours, start)
	rates, err := cost.ParseRates("USD", map[string]string{"SGD": "0.7412", "AED": "0.2722940776"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var lines int
	for b.Loop() {
		st, err := store.Open(path, store.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		us, err := st.Usage(ctx, "region", start.Add(-30*time.Minute), start.Add(hours*time.Hour+30*time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		r, err := Build("region", start, start.Add(hours*time.Hour), us, &rates)
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteCSV(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		st.Close()
		lines = len(r.Lines)
	}
	if lines != 8 {
		b.Fatalf("report has %d lines, want 8 regions", lines)
	}
}

func generateLedger(b *testing.B, path string, nodes, gpus, hours int, start time.Time) {
	b.Helper()
	st, err := store.Open(path, store.Options{SyncNormal: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	db := st.DB()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	curs := []string{"USD", "SGD", "AED"}
	for n := range nodes {
		if _, err := tx.Exec(`INSERT INTO nodes (id, region, provider, model, team, gpus) VALUES (?, ?, ?, ?, ?, ?)`,
			fmt.Sprintf("node-%05d", n), fmt.Sprintf("region-%d", n%8), fmt.Sprintf("provider-%d", n%5),
			"H100", fmt.Sprintf("team-%d", n%6), gpus); err != nil {
			b.Fatal(err)
		}
	}
	ins, err := tx.Prepare(`INSERT INTO ledger (node_id, hour_ms, currency, job, team, upto_ms, leased_gpu_ms,
		reported_gpu_ms, idle_gpu_ms, dark_gpu_ms, spend_micros, spend_rem, idle_micros, idle_rem, dark_micros, dark_rem)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	full := int64(gpus) * 3_600_000
	for h := range hours {
		hour := start.Add(time.Duration(h) * time.Hour).UnixMilli()
		for n := range nodes {
			id := fmt.Sprintf("node-%05d", n)
			cur := curs[n%3]
			price := int64(2_000_000 + 100_000*(n%7))
			job := n%2 == 0
			rem := full
			if job {
				used := full / 2
				if _, err := ins.Exec(id, hour, cur, fmt.Sprintf("job-%d", n%40), "team", hour+3_600_000, used, used, 0, 0,
					price*int64(gpus)/2, 0, 0, 0, 0, 0); err != nil {
					b.Fatal(err)
				}
				rem -= used
			}
			idle := rem / 3
			dark := rem / 6
			if _, err := ins.Exec(id, hour, cur, "", "ops", hour+3_600_000, rem, rem-dark, idle, dark,
				price*rem/3_600_000, (price*rem)%3_600_000, price*idle/3_600_000, (price*idle)%3_600_000,
				price*dark/3_600_000, (price*dark)%3_600_000); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := tx.Exec(store.LedgerDaySQL); err != nil { // what Commit keeps up to date
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
