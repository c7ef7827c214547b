package store

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"
)

func minuteSamples(t *testing.T, st *Store, id string) int64 {
	t.Helper()
	var n int64
	if err := st.DB().QueryRow(`SELECT COALESCE(SUM(samples), 0) FROM rollup_minute WHERE node_id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// One node whose rows the database refuses (here a trigger stands in for
// any row-level fault) is left out; every other node still commits, so
// the aggregator still acks them.
func TestBadNodeRowsDoNotStopOthers(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now, SyncNormal: true})
	defer st.Close()
	for _, q := range []string{
		`CREATE TRIGGER bad_rollup BEFORE INSERT ON rollup_minute WHEN NEW.node_id = 'bad' BEGIN SELECT RAISE(ABORT, 'bad row'); END`,
		`CREATE TRIGGER bad_device BEFORE INSERT ON devices WHEN NEW.node_id = 'bad' BEGIN SELECT RAISE(ABORT, 'bad device'); END`,
	} {
		if _, err := st.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	good, bad, late := testNode("a-good", 2), testNode("bad", 2), testNode("z-good", 2)
	for i := 1; i <= 30; i++ {
		st.Record(good, 0, testSample(uint64(i), clk.t, 2, 0.5))
		st.Record(bad, 0, testSample(uint64(i), clk.t, 2, 0.5))
		st.Record(late, 0, testSample(uint64(i), clk.t, 2, 0.5))
		clk.t = clk.t.Add(time.Second)
	}
	if err := st.Commit(ctx, map[string]uint64{"a-good": 30, "bad": 30, "z-good": 30}); err != nil {
		t.Fatalf("commit with one bad node: %v", err)
	}
	if err := st.Flush(ctx); err != nil { // the fold writes the minute rows
		t.Fatalf("fold with one bad node: %v", err)
	}
	if a, z := minuteSamples(t, st, "a-good"), minuteSamples(t, st, "z-good"); a != 60 || z != 60 {
		t.Fatalf("good nodes' rows: %d and %d samples, want 60 each", a, z)
	}
	if b := minuteSamples(t, st, "bad"); b != 0 {
		t.Fatalf("bad node's rows written: %d", b)
	}
	if st.IsolatedRows() == 0 {
		t.Fatal("the left-out node was not counted")
	}
	// Later commits of the good nodes keep working.
	st.Record(good, 0, testSample(31, clk.t, 2, 0.5))
	st.Record(bad, 0, testSample(31, clk.t, 2, 0.5))
	if err := st.Flush(ctx); err != nil {
		t.Fatalf("next fold: %v", err)
	}
	if a := minuteSamples(t, st, "a-good"); a != 62 {
		t.Fatalf("a-good: %d samples, want 62", a)
	}
}

// NaN and infinite readings count as absent: SQLite would store NaN as
// NULL in a NOT NULL column and fail the fold of the whole fleet.
func TestNonFiniteReadingsDoNotFailFold(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now, SyncNormal: true})
	defer st.Close()
	good, bad := testNode("good", 1), testNode("nan", 1)
	for i := 1; i <= 10; i++ {
		st.Record(good, 0, testSample(uint64(i), clk.t, 1, 0.5))
		s := testSample(uint64(i), clk.t, 1, math.NaN())
		s.Devices[0].Set(0, math.NaN())
		st.Record(bad, 0, s)
		clk.t = clk.t.Add(time.Second)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatalf("fold with NaN readings: %v", err)
	}
	if n := minuteSamples(t, st, "good"); n != 10 {
		t.Fatalf("good node: %d samples, want 10", n)
	}
}
