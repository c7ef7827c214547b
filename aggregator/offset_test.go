package aggregator

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/store"
	"github.com/fleettop/fleettop/wire"
)

// clockInsights records the clock offsets the server reports.
type clockInsights struct {
	fakeInsights
	cmu     sync.Mutex
	offsets map[string]time.Duration
}

var _ ClockObserver = (*clockInsights)(nil)

func (c *clockInsights) ClockOffset(n *fleet.Node, off time.Duration, _ time.Time) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.offsets == nil {
		c.offsets = map[string]time.Duration{}
	}
	c.offsets[n.ID] = off
}

func (c *clockInsights) offset(id string) (time.Duration, bool) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	o, ok := c.offsets[id]
	return o, ok
}

// storeServer is an aggregator on a fake clock over a real store.
func storeServer(t *testing.T) (*testServer, *store.Store, *fakeClock, *clockInsights) {
	t.Helper()
	clk := newFakeClock()
	st, err := store.Open(filepath.Join(t.TempDir(), "fleettop.db"), store.Options{SyncNormal: true, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the server's cleanup, which runs first
	ins := &clockInsights{}
	ts := startServer(t, nil, func(c *Config) {
		c.Recorder, c.Insights, c.Clock = st, ins, clk.Now
		c.OfflineAfter = 365 * 24 * time.Hour // the test moves the clock by hours
	})
	return ts, st, clk, ins
}

// skewed is a collector whose clock is off the aggregator's by skew.
type skewed struct {
	*collector
	tt   *testing.T
	clk  *fakeClock
	ins  *clockInsights
	skew time.Duration
	node fleet.Node
	seq  uint64
}

func (c *skewed) now() time.Time { return c.clk.Now().Add(c.skew) }

// connect says Hello and the Clock reading after it, and returns the resume point.
func (c *skewed) connect(ts *testServer) uint64 {
	c.collector = dialCollector(c.tt, ts, secretGPU)
	c.send(&wire.Hello{Proto: wire.Version, Node: c.node})
	c.send(&wire.Clock{Sent: c.now()})
	w, ok := c.mustRecv().(*wire.Welcome)
	if !ok {
		c.tt.Fatal("want welcome")
	}
	// The aggregator reads the reading after sending Welcome; the test's
	// clock must not move before it has.
	testutil.WaitFor(c.tt, "clock reading", func() bool {
		off, ok := c.ins.offset(c.node.ID)
		return ok && off == -c.skew
	})
	return w.ResumeFrom
}

// record makes the next record, stamped with the collector's clock.
func (c *skewed) record() fleet.Sample {
	c.seq++
	s := testSample(c.node, c.seq)
	s.Time = c.now()
	for i := range s.Devices {
		s.Devices[i].Set(fleet.MetricUtil, 0.9)
	}
	return s
}

func waitApplied(t *testing.T, ts *testServer, id string, seq uint64) {
	t.Helper()
	testutil.WaitFor(t, "records applied", func() bool { return nodeView(t, ts.Server, id).Seq >= seq })
}

func nodeUsage(t *testing.T, st *store.Store, clk *fakeClock) []store.Usage {
	t.Helper()
	ctx := context.Background()
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := st.Usage(ctx, "node", clk.Now().Add(-60*24*time.Hour), clk.Now().Add(60*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A node's clock decides nothing: whatever its skew, the node is billed for
// exactly the time it was connected, at its lease price, and every second of
// it is reported (none dark, none in the future).
func TestSkewedClockBillsTheLease(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{
		{"in time", 0},
		{"1h behind", -time.Hour},
		{"40 days behind", -40 * 24 * time.Hour},
		{"1h ahead", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, st, clk, ins := storeServer(t)
			c := &skewed{clk: clk, ins: ins, skew: tc.skew, node: testNode("gpu-1", 2)}
			c.tt = t
			c.connect(ts)
			start := clk.Now()
			for range 75 {
				clk.Advance(time.Second)
				c.send(&wire.Samples{Samples: []fleet.Sample{c.record()}})
			}
			waitApplied(t, ts, "gpu-1", c.seq)
			if off, ok := ins.offset("gpu-1"); !ok || off != -tc.skew {
				t.Fatalf("offset %v (reported %v), want %v", off, ok, -tc.skew)
			}
			u := nodeUsage(t, st, clk)
			if len(u) != 1 {
				t.Fatalf("usage rows %+v, want one", u)
			}
			// The first connection starts the lease: 75 s × 2 GPUs at 2.5 USD
			// per GPU-hour.
			wantMs := int64(2 * clk.Now().Sub(start).Milliseconds())
			want := 2_500_000 * wantMs / 3_600_000
			// Only the second between Hello and the first record is dark.
			if u[0].LeasedGPUms != wantMs || u[0].Spend.Micros != want || u[0].DarkGPUms != 2000 || u[0].ReportedGPUms != wantMs-2000 {
				t.Fatalf("refused %d; billed %d GPU-ms (reported %d, dark %d) for %d micro-USD; want %d GPU-ms, the first second dark, for %d", st.Refused(),
					u[0].LeasedGPUms, u[0].ReportedGPUms, u[0].DarkGPUms, u[0].Spend.Micros, wantMs, want)
			}
			if st.Refused() != 0 {
				t.Fatalf("refused %d corrected samples", st.Refused())
			}
		})
	}
}

// A 2-hour outage of a node an hour behind is filled in exactly: the
// resent spool records land at their true times, so nothing is dark.
func TestResentSpoolKeepsTrueTimes(t *testing.T) {
	ts, st, clk, ins := storeServer(t)
	c := &skewed{clk: clk, ins: ins, skew: -time.Hour, node: testNode("gpu-1", 2)}
	c.tt = t
	c.connect(ts)
	start := clk.Now()
	for range 10 {
		clk.Advance(time.Second)
		c.send(&wire.Samples{Samples: []fleet.Sample{c.record()}})
	}
	waitApplied(t, ts, "gpu-1", c.seq)
	// The aggregator resumes a collector from what is durable: wait for the
	// commit, so the collector resumes after its tenth record.
	testutil.WaitFor(t, "first ten records committed", func() bool {
		seqs, err := st.LastSeqs(context.Background())
		return err == nil && seqs["gpu-1"] == c.seq
	})
	c.conn.CloseNow()
	// Two hours without a connection: the collector spools a record a second.
	var spool []fleet.Sample
	for range 7200 {
		clk.Advance(time.Second)
		spool = append(spool, c.record())
	}
	resume := c.connect(ts)
	if resume != spool[0].Seq {
		t.Fatalf("resume from %d, want %d", resume, spool[0].Seq)
	}
	for i := 0; i < len(spool); i += wire.MaxSamples {
		c.send(&wire.Samples{Samples: spool[i:min(i+wire.MaxSamples, len(spool))]})
	}
	waitApplied(t, ts, "gpu-1", c.seq)
	u := nodeUsage(t, st, clk)
	if len(u) != 1 {
		t.Fatalf("usage rows %+v, want one", u)
	}
	wantMs := 2 * clk.Now().Sub(start).Milliseconds()
	want := 2_500_000 * wantMs / 3_600_000
	// Dark: only the second between the first Hello and the first record.
	if u[0].LeasedGPUms != wantMs || u[0].DarkGPUms != 2000 || u[0].Spend.Micros != want || st.Refused() != 0 {
		t.Fatalf("leased %d GPU-ms, dark %d, reported %d, %d micro-USD, %d refused; want %d leased, the outage not dark, %d micro-USD",
			u[0].LeasedGPUms, u[0].DarkGPUms, u[0].ReportedGPUms, u[0].Spend.Micros, st.Refused(), wantMs, want)
	}
}

// Acks carry the aggregator's time to collectors that speak Clock, and their
// answers refine the estimate: the reading with the least round-trip delay
// wins.
func TestClockRoundTrips(t *testing.T) {
	ts, _, clk, ins := storeServer(t)
	c := &skewed{clk: clk, ins: ins, skew: -90 * time.Second, node: testNode("gpu-1", 1)}
	c.tt = t
	c.connect(ts)
	// The Hello reading took 400 ms to arrive: the one-way estimate is off.
	c.send(&wire.Clock{Sent: c.now().Add(-400 * time.Millisecond)})
	c.send(&wire.Samples{Samples: []fleet.Sample{c.record()}})
	var a *wire.Ack
	for a == nil {
		f := c.mustRecv()
		a, _ = f.(*wire.Ack)
	}
	if a.Time.IsZero() {
		t.Fatal("ack to a Clock-speaking collector carries no time")
	}
	if off, _ := ins.offset("gpu-1"); off != 90*time.Second+400*time.Millisecond {
		t.Fatalf("one-way estimate %v, want 90.4s", off)
	}
	// 200 ms each way around a collector that answers at once: symmetric,
	// so the estimate is exact.
	t2 := a.Time.Add(c.skew + 200*time.Millisecond)
	clk.Advance(400 * time.Millisecond)
	c.send(&wire.Clock{Origin: a.Time, Received: t2, Sent: t2})
	testutil.WaitFor(t, "round-trip estimate", func() bool {
		off, _ := ins.offset("gpu-1")
		return off == 90*time.Second
	})
}

// The store refuses to book what the aggregator could not correct: samples
// before the node's first connection or beyond now.
func TestStoreBookingBounds(t *testing.T) {
	clk := newFakeClock()
	st, err := store.Open(filepath.Join(t.TempDir(), "fleettop.db"), store.Options{SyncNormal: true, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := testNode("gpu-1", 1)
	st.Connected(n.ID, clk.Now())
	for i, at := range []time.Time{
		clk.Now().Add(-40 * 24 * time.Hour), // before the first connection
		clk.Now().Add(time.Hour),            // in the future
		clk.Now().Add(500 * time.Millisecond),
		clk.Now(),
	} {
		s := testSample(n, uint64(i+1))
		s.Time = at
		st.Record(&n, 0, &s)
	}
	if got := st.Refused(); got != 2 {
		t.Fatalf("refused %d samples, want 2", got)
	}
	clk.Advance(time.Minute)
	u := nodeUsage(t, st, clk)
	if len(u) != 1 || u[0].LeasedGPUms != time.Minute.Milliseconds() {
		t.Fatalf("usage %+v, want one minute leased", u)
	}
}

// Acks ask for clock readings sparingly: each of the first clockFirst acks
// after the collector's first Clock frame, then one every clockRefresh of
// the server's clock, and again clockFirst in a row once a record's time
// strays from its arrival by more than clockStray (a stepped clock).
func TestAcksAskForClockReadingsSparingly(t *testing.T) {
	clk := newFakeClock()
	ins := &clockInsights{}
	ts := startServer(t, nil, func(c *Config) {
		c.Insights, c.Clock = ins, clk.Now
		c.OfflineAfter = 365 * 24 * time.Hour // the test moves the clock by minutes
	})
	c := &skewed{tt: t, clk: clk, ins: ins, skew: 30 * time.Second, node: testNode("gpu-1", 1)}
	c.connect(ts)
	// step sends one record stamped stray from now and reports whether its
	// ack carries the aggregator's time.
	step := func(stray time.Duration) bool {
		t.Helper()
		r := c.record()
		r.Time = r.Time.Add(stray)
		c.send(&wire.Samples{Samples: []fleet.Sample{r}})
		for {
			a, ok := c.mustRecv().(*wire.Ack)
			if !ok {
				t.Fatal("want ack")
			}
			if a.Seq == r.Seq {
				return !a.Time.IsZero()
			}
		}
	}
	want := func(what string, n int, asks bool, stray time.Duration) {
		t.Helper()
		for i := range n {
			if got := step(stray); got != asks {
				t.Fatalf("%s: ack %d asks for a reading: %v, want %v", what, i+1, got, asks)
			}
		}
	}
	want("warm-up", clockFirst, true, 0)
	want("settled", 3, false, 0)
	clk.Advance(clockRefresh)
	want("after clockRefresh", 1, true, 0)
	want("settled again", 2, false, 0)
	want("stray by less than clockStray", 1, false, clockStray/2)
	want("stray record", 1, true, 10*clockStray)
	want("after a stray record", clockFirst-1, true, 0)
	want("settled after the stray record", 2, false, 0)
}

// The estimate keeps the reading of the least delay among the window's, and
// follows a stepped clock at the first reading of the new clock, however
// low the delays of the old clock's readings.
func TestClockFilterFollowsAStep(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var f clockFilter
	// reading: the aggregator asks at t1 (its clock), the collector,
	// off by -off, answers at once, and the delay is split evenly.
	reading := func(t1 time.Time, off, delay time.Duration) {
		t2 := t1.Add(delay/2 - off)
		f.observe(&wire.Clock{Origin: t1, Received: t2, Sent: t2}, t1.Add(delay))
	}
	reading(t0, 5*time.Second, 2*time.Millisecond)
	reading(t0.Add(time.Minute), 5*time.Second+40*time.Millisecond, 90*time.Millisecond) // jittery, so it loses
	if f.offset != 5*time.Second {
		t.Fatalf("estimate %v, want 5s (the least-delay reading)", f.offset)
	}
	reading(t0.Add(2*time.Minute), 5*time.Second+clockStray, 100*time.Millisecond) // within stray + delay: no step
	if f.offset != 5*time.Second || f.n != 3 {
		t.Fatalf("estimate %v from %d readings, want 5s from 3", f.offset, f.n)
	}
	reading(t0.Add(3*time.Minute), -time.Hour, 300*time.Millisecond) // stepped an hour ahead
	if f.offset != -time.Hour || f.n != 1 {
		t.Fatalf("after a step: estimate %v from %d readings, want -1h from 1", f.offset, f.n)
	}
}
