package store

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// TestHistory sums minute rollups of two nodes in two regions into
// two-minute steps, for the fleet, by region, by device and for one node.
func TestHistory(t *testing.T) {
	ctx := context.Background()
	st, clk, t0 := openHistoryStore(t)
	a, b := testNode("a", 2), testNode("b", 1)
	b.Region = "Johor"
	for i := 1; i <= 240; i++ { // four minutes
		st.Record(a, 0, testSample(uint64(i), clk.t, 2, 0.5))
		st.Record(b, 0, testSample(uint64(i), clk.t, 1, 0.01))
		clk.t = clk.t.Add(time.Second)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	q := fleet.HistoryQuery{From: t0, To: t0.Add(4 * time.Minute), Step: 2 * time.Minute}
	got, err := st.History(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("fleet: %d buckets, want 2: %+v", len(got), got)
	}
	for k, h := range got {
		if h.Start != t0.Add(time.Duration(k)*2*time.Minute).UnixMilli() {
			t.Errorf("bucket %d starts at %d", k, h.Start)
		}
		// 3 GPUs × 120 samples; (2×0.5 + 0.01)/3 mean; 3 × 300 W
		if h.UtilN != 360 || math.Abs(h.UtilSum/float64(h.UtilN)-1.01/3) > 1e-9 {
			t.Errorf("bucket %d: util %d samples, mean %v", k, h.UtilN, h.UtilSum/float64(h.UtilN))
		}
		if math.Abs(h.Power-900) > 1e-6 || h.PowerN != 3 || h.MemN != 3 || math.Abs(h.MemUsed-3<<30) > 1 {
			t.Errorf("bucket %d: power %v W over %d devices, memory %v over %d", k, h.Power, h.PowerN, h.MemUsed, h.MemN)
		}
		if h.TempMax != 61 || h.Reported != 360_000 || h.Idle != 120_000 {
			t.Errorf("bucket %d: temp max %v, reported %d, idle %d", k, h.TempMax, h.Reported, h.Idle)
		}
	}
	q.By = "region"
	got, err = st.History(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Group != "Johor" || got[2].Group != "Singapore" || got[2].Power != 600 {
		t.Fatalf("by region: %+v", got)
	}
	q.By, q.Region = "", "Johor"
	got, err = st.History(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Power != 300 || got[0].Idle != got[0].Reported {
		t.Fatalf("region Johor: %+v", got)
	}
	q.By, q.Region, q.Node = "device", "", "a"
	got, err = st.History(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Group != "0" || got[2].Group != "1" || got[2].TempMax != 61 {
		t.Fatalf("node a by device: %+v", got)
	}

	// Hour steps read rollup_hour before the last three hours.
	if _, err := st.DB().ExecContext(ctx, `INSERT INTO rollup_hour (node_id, idx, hour_ms, samples, util_n, util_sum, util_max,
		mem_n, mem_sum, power_n, power_sum, energy_j, temp_max, reported_ms, idle_ms)
		VALUES ('a', 0, ?, 3600, 3600, 1800, 0.9, 3600, 3600, 3600, 360000, 0, 70, 3600000, 0)`, t0.Add(-5*time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	got, err = st.History(ctx, fleet.HistoryQuery{From: t0.Add(-6 * time.Hour), To: t0.Add(time.Hour), Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Start != t0.Add(-5*time.Hour).UnixMilli() || got[0].Power != 100 || got[0].UtilMax != 0.9 ||
		got[1].Start != t0.UnixMilli() || got[1].UtilN != 720 {
		t.Fatalf("hour steps: %+v", got)
	}
}

// A node that comes back elsewhere under a new generation is booked there
// at once; under an unchanged generation Record trusts that nothing changed
// and compares nothing.
func TestRecordIdentityByGeneration(t *testing.T) {
	ctx := context.Background()
	st, clk, t0 := openHistoryStore(t)
	n := testNode("m", 1)
	region := func(gen uint64, r string) string {
		t.Helper()
		n.Region = r
		for range 3 {
			st.Record(n, gen, testSample(uint64(clk.t.Sub(t0)/time.Second)+1, clk.t, 1, 0.5))
			clk.t = clk.t.Add(time.Second)
		}
		if err := st.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := st.History(ctx, fleet.HistoryQuery{From: t0, To: clk.t, Step: time.Hour, By: "region"})
		if err != nil || len(got) != 1 {
			t.Fatalf("by region: %+v, %v", got, err)
		}
		return got[0].Group
	}
	if got := region(1, "Singapore"); got != "Singapore" {
		t.Fatalf("region %s, want Singapore", got)
	}
	if got := region(2, "Johor"); got != "Johor" {
		t.Fatalf("region %s after a new generation, want Johor", got)
	}
	if got := region(2, "Dubai"); got != "Johor" {
		t.Fatalf("region %s under the same generation, want Johor (not compared)", got)
	}
}

// openHistoryStore opens a store in a temporary directory on a fake clock
// that starts at t0 (2026-03-01 10:00 UTC), closed when the test ends.
func openHistoryStore(t *testing.T) (*Store, *fakeClock, time.Time) {
	t.Helper()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clk := &fakeClock{t0}
	st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now, SyncNormal: true})
	t.Cleanup(func() { st.Close() })
	return st, clk, t0
}
