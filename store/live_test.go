package store

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleettop/fleettop/cost"
)

// liveTotal sums a ledger's spend (one currency).
func liveTotal(lg Ledger) cost.Exact {
	var e cost.Exact
	for _, l := range lg.Lines {
		e = e.Add(l.Spend)
	}
	return e
}

// A per-second lease costs exactly price × GPUs × time since first sight,
// whatever part of it the ledger holds and whatever part is the tail: the
// live ledger says so after every commit (folds, ledger refreshes, across
// midnight), and reads racing the commits never count anything twice; a
// report (Usage) says so up to the last commit.
func TestLiveLedgerIsExactAcrossCommits(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC) // crosses midnight: closed days and today
	var clk atomic.Int64
	clk.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clk.Load()).UTC() }
	st, err := Open(filepath.Join(t.TempDir(), "fleettop.db"), Options{SyncNormal: true, Clock: now,
		FoldEvery: 10 * time.Second, LedgerEvery: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := testNode("n1", 2) // 2 GPUs at 2.50 USD per GPU-hour
	want := func(to time.Time) cost.Exact { return cost.PriceTimes(2_500_000, 2*to.Sub(start).Milliseconds()) }
	st.Record(n, 0, testSample(1, start, 2, 0.5))
	if err := st.Commit(ctx, map[string]uint64{"n1": 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	from := start.Add(-24 * time.Hour)

	var wg sync.WaitGroup
	done := make(chan struct{})
	var reads atomic.Int64
	wg.Add(1)
	go func() { // the live view, reading while commits run
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			// A commit may accrue the ledger past the instant asked for
			// while the read runs: never less than then, never more than
			// the clock after the read, never counted twice.
			at := now()
			lg, err := st.LiveLedger(ctx, from, at)
			after := now()
			if err != nil {
				t.Error(err)
				return
			}
			if got := liveTotal(lg); got.Rat().Cmp(want(at).Rat()) < 0 || got.Rat().Cmp(want(after).Rat()) > 0 {
				t.Errorf("live ledger at %s: %v, want %v (up to %v at %s)", at.Format(time.TimeOnly), got, want(at), want(after), after.Format(time.TimeOnly))
				return
			}
			reads.Add(1)
		}
	}()
	seq := uint64(1)
	for i := range 2 * 3600 / 5 { // two hours, a sample and a commit every 5 s
		at := start.Add(time.Duration(i+1) * 5 * time.Second)
		clk.Store(at.UnixNano())
		seq++
		st.Record(n, 0, testSample(seq, at, 2, 0.5))
		if err := st.Commit(ctx, map[string]uint64{"n1": seq}); err != nil {
			t.Fatal(err)
		}
		if lg, err := st.LiveLedger(ctx, from, at); err != nil || liveTotal(lg) != want(at) {
			t.Fatalf("live ledger at %s after a commit: %v (%v), want %v", at.Format(time.TimeOnly), liveTotal(lg), err, want(at))
		}
		if i%100 == 0 {
			us, err := st.Usage(ctx, "node", from, at.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(us) != 1 || us[0].Spend != want(at) {
				t.Fatalf("report at %s: %+v, want %v (up to the last commit)", at.Format(time.TimeOnly), us, want(at))
			}
		}
	}
	close(done)
	wg.Wait()
	t.Logf("%d live reads while committing", reads.Load())
	if reads.Load() == 0 {
		t.Error("no live read ran")
	}
}

// mergeSorted keeps the order and adds up equal keys, across its parts and
// within one (a lease's tail may hold two lines of one key), and leaves its
// inputs (the cached ledger rows) as they were.
func TestMergeSortedAddsUpEqualKeys(t *testing.T) {
	line := func(node, cur, job string, ms int64) NodeLine {
		return NodeLine{Node: node, Team: "ml", Job: job, Usage: Usage{Group: node, Currency: cur, LeasedGPUms: ms}}
	}
	closed := []NodeLine{line("a", "USD", "train", 100), line("c", "USD", "", 200)}
	rows := []NodeLine{line("a", "USD", "", 1), line("a", "USD", "train", 2), line("b", "SGD", "", 4)}
	tail := []NodeLine{line("a", "USD", "", 10), line("a", "USD", "", 20), line("ab", "USD", "", 40), line("b", "SGD", "", 80)}
	got := mergeSorted(nil, closed, rows, tail)
	want := []NodeLine{line("a", "USD", "", 31), line("a", "USD", "train", 102), line("ab", "USD", "", 40), line("b", "SGD", "", 84),
		line("c", "USD", "", 200)}
	if len(got) != len(want) {
		t.Fatalf("%d lines %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i].Node != want[i].Node || got[i].Job != want[i].Job || got[i].LeasedGPUms != want[i].LeasedGPUms {
			t.Errorf("line %d = %s/%s %d ms, want %s/%s %d ms", i, got[i].Node, got[i].Job, got[i].LeasedGPUms,
				want[i].Node, want[i].Job, want[i].LeasedGPUms)
		}
	}
	if rows[0].LeasedGPUms != 1 || tail[0].LeasedGPUms != 10 {
		t.Errorf("inputs changed: rows[0] %d ms, tail[0] %d ms", rows[0].LeasedGPUms, tail[0].LeasedGPUms)
	}
}

// The live ledger's lines come one per key, in compareLines order, however
// the nodes' tails are held (a map): the merge with the ledger's rows
// relies on it.
func TestLiveLedgerLinesSortedAndUnique(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := start
	st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{SyncNormal: true, Clock: func() time.Time { return now }})
	defer st.Close()
	seqs := map[string]uint64{}
	for i, id := range []string{"n5", "n1", "n4", "n2", "n3", "n10"} {
		st.Record(testNode(id, 1+i%3), 0, testSample(1, start, 1+i%3, 0.5))
		seqs[id] = 1
	}
	now = start.Add(time.Minute)
	if err := st.Commit(ctx, seqs); err != nil {
		t.Fatal(err)
	}
	lg, err := st.LiveLedger(ctx, start.Add(-time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(lg.Lines) != len(seqs) {
		t.Fatalf("%d lines, want one for each of %d nodes: %+v", len(lg.Lines), len(seqs), lg.Lines)
	}
	for i := 1; i < len(lg.Lines); i++ {
		if compareLines(&lg.Lines[i-1], &lg.Lines[i]) >= 0 {
			t.Errorf("line %d (%s) does not come after line %d (%s)", i, lg.Lines[i].Node, i-1, lg.Lines[i-1].Node)
		}
	}
}

// A store whose clock runs months behind the wall clock (a demo replaying
// its past) says so to readers: ClockAt maps the wall clock onto it.
func TestClockAtFollowsTheStoresClock(t *testing.T) {
	ctx := context.Background()
	sim := time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "fleettop.db")
	st := openT(t, path, Options{SyncNormal: true, Clock: func() time.Time { return sim }})
	defer st.Close()
	if got, err := st.ClockAt(ctx, sim.Add(time.Hour)); err != nil || !got.Equal(sim.Add(time.Hour)) {
		t.Fatalf("before any commit: %v (%v), want the wall clock itself", got, err)
	}
	st.Record(testNode("n1", 1), 0, testSample(1, sim, 1, 0.5))
	if err := st.Commit(ctx, map[string]uint64{"n1": 1}); err != nil {
		t.Fatal(err)
	}
	ro := openT(t, path, Options{ReadOnly: true})
	defer ro.Close()
	got, err := ro.ClockAt(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Off by the wall time since the commit, not by the months between.
	if d := got.Sub(sim); d < 0 || d > time.Hour {
		t.Errorf("ClockAt(now) = %v, want the store's clock %v (plus the wall time since its commit)", got, sim)
	}
}

// A commit publishes the tails in id order, reusing the sorted ids while no
// node joins and sorting again when one does (a live read walks them in
// order: a node left out of the ids would be left out of the tail).
func TestPublishKeepsTailIdsSorted(t *testing.T) {
	s := &Store{nodes: map[string]*ledgerNode{"b": {id: "b"}, "a": {id: "a"}}}
	s.publish(s.nodes)
	first := s.tails.Load()
	if got := first.ids; len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("ids %v, want [a b]", got)
	}
	s.publish(map[string]*ledgerNode{"b": {id: "b", team: "vision"}})
	if got := s.tails.Load(); &got.ids[0] != &first.ids[0] || got.nodes["b"].team != "vision" {
		t.Errorf("a commit of known nodes: ids %v re-sorted or tail not updated (%+v)", got.ids, got.nodes["b"])
	}
	if first.nodes["b"].team != "" {
		t.Error("a published set changed after it was published")
	}
	s.publish(map[string]*ledgerNode{"0": {id: "0"}})
	if got := s.tails.Load().ids; len(got) != 3 || got[0] != "0" || got[1] != "a" || got[2] != "b" {
		t.Errorf("after a node joined: ids %v, want [0 a b]", got)
	}
}

// A Commit that changes no node's ledger state (samples only, between
// folds) publishes nothing: republishing every node's tail each second was
// most of the aggregator's garbage at 10,000 GPUs.
func TestCommitOfSamplesKeepsTheTails(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{SyncNormal: true, Clock: func() time.Time { return at }})
	defer st.Close()
	n := testNode("n-1", 2)
	st.Record(n, 0, testSample(1, at, 2, 0.5))
	if err := st.Commit(ctx, map[string]uint64{"n-1": 1}); err != nil {
		t.Fatal(err)
	}
	first := st.tails.Load()
	if first == nil || len(first.ids) != 1 {
		t.Fatalf("after the node's first commit: tails %+v", first)
	}
	at = at.Add(time.Second)
	st.Record(n, 0, testSample(2, at, 2, 0.5))
	if err := st.Commit(ctx, map[string]uint64{"n-1": 2}); err != nil {
		t.Fatal(err)
	}
	if got := st.tails.Load(); got != first {
		t.Error("a commit of samples only published the tails again")
	}
}
