package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
)

// A Commit whose deferrable work exceeds CommitSlice does part of it (at
// least one node's identity, one node's ledger) and leaves the rest to the
// next Commits: the identities of nodes that connected together are
// written over several Commits, and once a fold runs short of time the
// following Commits fold and accrue again until nothing is due. Once every
// identity is written, live spend is the same at every step (a node not yet
// accrued counts through the ledger's tail) and equals what one Commit of
// everything gives.
func TestCommitSliceSpreadsWork(t *testing.T) {
	const nodes = 5
	type step struct {
		idents, accrued int
		spend           cost.Exact
	}
	run := func(slice time.Duration) []step {
		clk := newClock()
		// LedgerEvery of a second: every node is due at the fold (by
		// default new nodes are spread over five minutes, see
		// TestNewNodesAccrueSpread).
		st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now, SyncNormal: true,
			FoldEvery: time.Minute, CommitSlice: slice, LedgerEvery: time.Second})
		defer st.Close()
		var ns []*fleet.Node
		for i := range nodes {
			ns = append(ns, testNode(fmt.Sprintf("n%d", i), 2))
		}
		seqs := map[string]uint64{}
		record := func(from, to int) {
			for k := from; k < to; k++ {
				for _, n := range ns {
					st.Record(n, 0, testSample(uint64(k+1), clk.t, 2, 0.5))
					seqs[n.ID] = uint64(k + 1)
				}
				clk.t = clk.t.Add(time.Second)
			}
		}
		ctx := context.Background()
		var steps []step
		commit := func() {
			if err := st.Commit(ctx, seqs); err != nil {
				t.Fatal(err)
			}
			var s step
			if err := st.DB().QueryRow(`SELECT COUNT(DISTINCT node_id) FROM ledger`).Scan(&s.accrued); err != nil {
				t.Fatal(err)
			}
			if err := st.DB().QueryRow(`SELECT COUNT(*) FROM nodes WHERE hostname != ''`).Scan(&s.idents); err != nil {
				t.Fatal(err)
			}
			lg, err := st.LiveLedger(ctx, clk.t.Add(-2*time.Hour), clk.t)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lg.Lines {
				s.spend = s.spend.Add(l.Spend)
			}
			steps = append(steps, s)
		}
		record(0, 5)
		for range nodes + 1 { // no fold yet: identities only
			commit()
		}
		record(5, 65) // a minute on: the next Commit folds
		for range nodes + 1 {
			commit()
		}
		return steps
	}
	ref := run(time.Hour)
	got := run(time.Nanosecond)
	t.Logf("one Commit of everything: %+v", ref)
	t.Logf("1 ns slices: %+v", got)
	for i, s := range got {
		phase := i / (nodes + 1)
		k := i%(nodes+1) + 1 // Commits so far in this phase
		wantIdents, wantAccrued := nodes, 0
		if phase == 0 {
			wantIdents = min(k, nodes)
		} else {
			wantAccrued = min(k, nodes)
		}
		if s.idents != wantIdents || s.accrued != wantAccrued {
			t.Errorf("after Commit %d: %d identities written and %d nodes accrued, want %d and %d", i+1, s.idents, s.accrued, wantIdents, wantAccrued)
		}
		if ref[i].idents != nodes || ref[i].accrued != nodes*phase {
			t.Errorf("with a generous slice, after Commit %d: %d identities written and %d nodes accrued, want %d and %d", i+1, ref[i].idents, ref[i].accrued, nodes, nodes*phase)
		}
		if phase == 1 && s.spend != ref[i].spend {
			t.Errorf("after Commit %d: live spend %v, want %v whatever has been accrued", i+1, s.spend, ref[i].spend)
		}
	}
}

// Flush works in CommitSlice transactions too, and goes on until every
// identity is written and every node accrued up to its start: the same
// ledger as one transaction of everything.
func TestFlushInSlices(t *testing.T) {
	const nodes = 5
	run := func(slice time.Duration) (idents, accrued int, leased int64) {
		clk := newClock()
		st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now, SyncNormal: true, CommitSlice: slice})
		defer st.Close()
		for k := range 90 {
			for i := range nodes {
				st.Record(testNode(fmt.Sprintf("n%d", i), 2), 0, testSample(uint64(k+1), clk.t, 2, 0.5))
			}
			clk.t = clk.t.Add(time.Second)
		}
		if err := st.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		db := st.DB()
		if err := db.QueryRow(`SELECT COUNT(*) FROM nodes WHERE hostname != ''`).Scan(&idents); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT COUNT(DISTINCT node_id), SUM(leased_gpu_ms) FROM ledger`).Scan(&accrued, &leased); err != nil {
			t.Fatal(err)
		}
		return idents, accrued, leased
	}
	wi, wa, wl := run(time.Hour)
	gi, ga, gl := run(time.Nanosecond)
	if wi != nodes || wa != nodes || gi != wi || ga != wa || gl != wl {
		t.Fatalf("Flush in 1 ns slices: %d identities, %d nodes accrued, %d GPU-ms leased; in one: %d, %d, %d (want %d nodes)", gi, ga, gl, wi, wa, wl, nodes)
	}
}

// Nodes that appear together (a fleet reconnecting to a new or restarted
// aggregator) are not all accrued by the first fold: each waits a share of
// LedgerEvery of its own, so the folds of the next five minutes share the
// work; live spend meanwhile is what a store that accrues everything at once
// reports, since the ledger's tail covers what is not accrued yet.
func TestNewNodesAccrueSpread(t *testing.T) {
	const nodes = 20
	run := func(every time.Duration) (accrued []int, spend []cost.Exact) {
		clk := newClock()
		st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now, SyncNormal: true,
			FoldEvery: time.Minute, LedgerEvery: every})
		defer st.Close()
		var ns []*fleet.Node
		for i := range nodes {
			ns = append(ns, testNode(fmt.Sprintf("n%02d", i), 2))
		}
		seqs := map[string]uint64{}
		ctx := context.Background()
		for m := range 6 {
			for k := m * 60; k < (m+1)*60; k++ {
				for _, n := range ns {
					st.Record(n, 0, testSample(uint64(k+1), clk.t, 2, 0.5))
					seqs[n.ID] = uint64(k + 1)
				}
				clk.t = clk.t.Add(time.Second)
			}
			if err := st.Commit(ctx, seqs); err != nil {
				t.Fatal(err)
			}
			var a int
			if err := st.DB().QueryRow(`SELECT COUNT(DISTINCT node_id) FROM ledger`).Scan(&a); err != nil {
				t.Fatal(err)
			}
			lg, err := st.LiveLedger(ctx, clk.t.Add(-2*time.Hour), clk.t)
			if err != nil {
				t.Fatal(err)
			}
			var sp cost.Exact
			for _, l := range lg.Lines {
				sp = sp.Add(l.Spend)
			}
			accrued, spend = append(accrued, a), append(spend, sp)
		}
		return accrued, spend
	}
	got, gotSpend := run(0) // the default, five minutes
	ref, refSpend := run(time.Second)
	t.Logf("nodes accrued after each minute's fold: %v (every node due at once: %v)", got, ref)
	if got[0] >= nodes || got[len(got)-1] != nodes {
		t.Errorf("accrued after each fold %v: want fewer than %d at the first, all %d after five minutes", got, nodes, nodes)
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			t.Errorf("accrued after each fold %v: not growing", got)
		}
	}
	for i := range gotSpend {
		if gotSpend[i] != refSpend[i] {
			t.Errorf("after minute %d: live spend %v, want %v as when every node is accrued at once", i+1, gotSpend[i], refSpend[i])
		}
	}
}
