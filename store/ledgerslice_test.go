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

// A fold whose ledger work exceeds LedgerSlice accrues part of the nodes
// (at least one) and leaves the rest due: the next Commits fold again and go
// on until every node is accrued. Live spend is the same at every step (a
// node not yet accrued counts through the ledger's tail), and the ledger
// ends as a Flush of everything at once would leave it.
func TestLedgerSliceSpreadsAccrual(t *testing.T) {
	const nodes = 5
	run := func(slice time.Duration, stepwise bool) (spend []cost.Exact, perStep []int) {
		clk := newClock()
		st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now, SyncNormal: true,
			FoldEvery: time.Second, LedgerSlice: slice})
		defer st.Close()
		var ns []*fleet.Node
		for i := range nodes {
			ns = append(ns, testNode(fmt.Sprintf("n%d", i), 2))
		}
		for k := range 90 {
			for _, n := range ns {
				st.Record(n, testSample(uint64(k+1), clk.t, 2, 0.5))
			}
			clk.t = clk.t.Add(time.Second)
		}
		ctx := context.Background()
		seqs := map[string]uint64{}
		for _, n := range ns {
			seqs[n.ID] = 90
		}
		for step := 0; step < nodes+2; step++ {
			if err := st.Commit(ctx, seqs); err != nil {
				t.Fatal(err)
			}
			lg, err := st.LiveLedger(ctx, clk.t.Add(-2*time.Hour), clk.t)
			if err != nil {
				t.Fatal(err)
			}
			var total cost.Exact
			for _, l := range lg.Lines {
				total = total.Add(l.Spend)
			}
			spend = append(spend, total)
			var accrued int
			if err := st.DB().QueryRow(`SELECT COUNT(DISTINCT node_id) FROM ledger`).Scan(&accrued); err != nil {
				t.Fatal(err)
			}
			perStep = append(perStep, accrued)
			if !stepwise {
				break
			}
		}
		return spend, perStep
	}
	want, all := run(time.Hour, false)
	if all[0] != nodes {
		t.Fatalf("with a generous slice one fold accrued %d of %d nodes", all[0], nodes)
	}
	spend, perStep := run(time.Nanosecond, true)
	for i, n := range perStep {
		if wantN := min(i+1, nodes); n != wantN {
			t.Errorf("after commit %d: %d nodes accrued, want %d (one a commit with a 1 ns slice); steps %v", i+1, n, wantN, perStep)
		}
	}
	for i, s := range spend {
		if s != want[0] {
			t.Errorf("after commit %d: live spend %v, want %v whatever has been accrued", i+1, s, want[0])
		}
	}
}
