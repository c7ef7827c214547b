package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleettop/fleettop/aggregator"
	"github.com/fleettop/fleettop/fleet"
)

var _ aggregator.Recorder = (*Store)(nil)
var _ interface{ IsolatedRows() uint64 } = (*Store)(nil) // served as fleettop_commit_isolated_nodes_total

// fakeClock is a settable clock for tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// newClock starts a fake clock at the store tests' usual start,
// 2026-03-01 10:00 UTC.
func newClock() *fakeClock { return &fakeClock{time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)} }

// recordTick records sample seq of n (gpus GPUs at util) at the clock's
// time, then moves the clock on a second.
func (c *fakeClock) recordTick(st *Store, n *fleet.Node, seq, gpus int, util float64) {
	st.Record(n, 0, testSample(uint64(seq), c.t, gpus, util))
	c.t = c.t.Add(time.Second)
}

func testNode(id string, gpus int) *fleet.Node {
	n := &fleet.Node{ID: id, Hostname: id, Region: "Singapore", Provider: "acme", Jurisdiction: "SG",
		Labels: map[string]string{"team": "vision"},
		Lease: fleet.Lease{ID: "l-" + id, PricePerGPUHour: fleet.Money{Micros: 2_500_000, Currency: "USD"},
			Billing: fleet.BillPerSecond}}
	for i := range gpus {
		n.Devices = append(n.Devices, fleet.Device{Index: i, UUID: id + "-gpu" + string(rune('0'+i)),
			Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", MemoryTotal: 80 << 30})
	}
	return n
}

// openT opens the store at path, failing the test if it cannot.
func openT(t testing.TB, path string, o Options) *Store {
	t.Helper()
	st, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func testSample(seq uint64, t time.Time, gpus int, util float64) *fleet.Sample {
	s := &fleet.Sample{Seq: seq, Time: t}
	for i := range gpus {
		var d fleet.DeviceSample
		d.Index = i
		d.Set(fleet.MetricUtil, util)
		d.Set(fleet.MetricPower, 300)
		d.Set(fleet.MetricTemp, 60+float64(i))
		d.Set(fleet.MetricMemUsed, 1<<30)
		s.Devices = append(s.Devices, d)
	}
	return s
}

func TestCommitLastSeqsReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleettop.db")
	clk := newClock()
	st := openT(t, path, Options{Clock: clk.Now})
	n := testNode("n1", 2)
	for i := 1; i <= 90; i++ {
		clk.recordTick(st, n, i, 2, 0.5)
		if i%10 == 0 {
			if err := st.Commit(ctx, map[string]uint64{"n1": uint64(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := Open(path, Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mode string
	var pageSize int
	if err := st.DB().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	if err := st.DB().QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil || pageSize != 16384 {
		t.Fatalf("page_size = %d, %v; want 16384", pageSize, err)
	}
	seqs, err := st.LastSeqs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if seqs["n1"] != 90 {
		t.Fatalf("LastSeqs = %v, want n1:90", seqs)
	}
	var samples, reported int64
	if err := st.DB().QueryRow(`SELECT SUM(samples), SUM(reported_ms) FROM rollup_minute WHERE node_id = 'n1'`).Scan(&samples, &reported); err != nil {
		t.Fatal(err)
	}
	if samples != 180 || reported != 180_000 {
		t.Fatalf("rollups: %d samples, %d ms reported; want 180, 180000", samples, reported)
	}
	var leased, spend int64
	if err := st.DB().QueryRow(`SELECT SUM(leased_gpu_ms), SUM(spend_micros) FROM ledger WHERE node_id = 'n1'`).Scan(&leased, &spend); err != nil {
		t.Fatal(err)
	}
	// 90 s of 2 GPUs at 2.5 USD per GPU-hour = 0.125 USD
	if leased != 180_000 || spend != 125_000 {
		t.Fatalf("ledger: %d GPU-ms, %d micros; want 180000, 125000", leased, spend)
	}
}

// TestConcurrentRecord records from many goroutines while commits run, as the
// aggregator's sessions do; nothing may be lost or counted twice.
func TestConcurrentRecord(t *testing.T) {
	ctx := context.Background()
	clk := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	const nodes, samples = 8, 150
	// The store's clock stands after the last sample: it books nothing in its future.
	st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: func() time.Time { return clk.Add(samples * time.Second) }, SyncNormal: true})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := testNode(fmt.Sprintf("n%d", i), 2)
			for s := 1; s <= samples; s++ {
				st.Record(n, 0, testSample(uint64(s), clk.Add(time.Duration(s)*time.Second), 2, 0.3))
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		default:
		}
		if err := st.Commit(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	st.RecordAlert(fleet.Alert{ID: "idle/n1", Kind: fleet.EventIdle, Severity: fleet.SevWarning, Node: "n1", Device: -1,
		Message: "idle", Start: clk})
	if err := st.Commit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	st.RecordAlert(fleet.Alert{ID: "idle/n1", Kind: fleet.EventIdle, Severity: fleet.SevWarning, Node: "n1", Device: -1,
		Message: "idle", Start: clk, End: clk.Add(time.Hour)})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openT(t, st.Path(), Options{ReadOnly: true})
	defer ro.Close()
	var total int64
	if err := ro.DB().QueryRow(`SELECT SUM(samples) FROM rollup_minute`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != nodes*samples*2 {
		t.Fatalf("%d GPU-samples stored, want %d", total, nodes*samples*2)
	}
	as, err := ro.Alerts(ctx, clk, clk.Add(2*time.Hour))
	if err != nil || len(as) != 1 || !as[0].End.Equal(clk.Add(time.Hour)) {
		t.Fatalf("alerts = %+v, %v; want one, ended after an hour", as, err)
	}
}

// TestReadOnlyWhileWriting opens the database read-only (as fleettop report
// does) while a writer holds it open and keeps committing.
func TestReadOnlyWhileWriting(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "fleettop.db")
	st := openT(t, path, Options{Clock: clk.Now, SyncNormal: true})
	defer st.Close()
	n := testNode("n1", 1)
	for i := 1; i <= 120; i++ {
		clk.recordTick(st, n, i, 1, 0.9)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ro := openT(t, path, Options{ReadOnly: true})
	defer ro.Close()
	us, err := ro.Usage(ctx, "region", clk.t.Add(-time.Hour), clk.t.Add(time.Hour))
	if err != nil || len(us) != 1 || us[0].LeasedGPUms != 120_000 {
		t.Fatalf("usage = %+v, %v; want 120 s leased", us, err)
	}
	for i := 121; i <= 180; i++ {
		clk.recordTick(st, n, i, 1, 0.9)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	us, err = ro.Usage(ctx, "region", clk.t.Add(-time.Hour), clk.t.Add(time.Hour))
	if err != nil || len(us) != 1 || us[0].LeasedGPUms != 180_000 {
		t.Fatalf("usage after more commits = %+v, %v; want 180 s leased", us, err)
	}
	if err := ro.Commit(ctx, nil); err == nil {
		t.Fatal("a read-only store committed")
	}
}

// TestBackfill: a lease that started before fleettop first saw the node
// accrues from first sight by default, and from its start within MaxBackfill.
func TestBackfill(t *testing.T) {
	for _, c := range []struct {
		backfill time.Duration
		wantMs   int64
	}{
		{0, 60_000},                   // the observed minute only
		{30 * time.Minute, 1_860_000}, // 30 minutes before first sight, plus the minute
		{48 * time.Hour, 3_660_000},   // back to the lease's start, an hour before
	} {
		clk := newClock()
		st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now, SyncNormal: true, MaxBackfill: c.backfill})
		n := testNode("n1", 1)
		n.Lease.Start = clk.t.Add(-time.Hour)
		for i := range 60 {
			st.Record(n, 0, testSample(uint64(i+1), clk.t, 1, 0.9))
			clk.t = clk.t.Add(time.Second)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		var leased int64
		ro := openT(t, st.Path(), Options{ReadOnly: true})
		if err := ro.DB().QueryRow(`SELECT SUM(leased_gpu_ms) FROM ledger`).Scan(&leased); err != nil {
			t.Fatal(err)
		}
		ro.Close()
		if leased != c.wantMs {
			t.Errorf("MaxBackfill %v: %d ms leased, want %d", c.backfill, leased, c.wantMs)
		}
	}
}

// The aggregator reads a node's applied sequence and then commits; samples
// recorded in between are written by that commit too. The durable sequence
// must cover them, or a restart would have them applied a second time.
func TestCommitPersistsHighestRecordedSeq(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fleettop.db")
	clk := newClock()
	st := openT(t, path, Options{Clock: clk.Now, SyncNormal: true})
	n := testNode("n1", 2)
	for i := 1; i <= 5; i++ {
		clk.recordTick(st, n, i, 2, 0.5)
	}
	asked := map[string]uint64{"n1": 3} // read before samples 4 and 5 were recorded
	if err := st.Commit(ctx, asked); err != nil {
		t.Fatal(err)
	}
	if asked["n1"] != 3 {
		t.Errorf("Commit changed the caller's map: %v", asked)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := Open(path, Options{Clock: clk.Now, SyncNormal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seqs, err := st.LastSeqs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if seqs["n1"] != 5 {
		t.Fatalf("LastSeqs = %v, want n1:5 (every recorded sample is in the commit)", seqs)
	}
}
