package aggregator

import (
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// The aggregator's clock decides when a sample happened. A collector stamps
// its samples with its own clock, which may be off by seconds, hours or
// days; booking them as stamped bills a node an hour behind for an hour it
// was not seen, and a node ahead for nothing. So each session estimates its
// collector's offset from wire.Clock frames, NTP-style, and every applied
// record (and its events) is moved onto the aggregator's sample clock before
// anything records or observes it. Resent spool records are corrected by
// the same offset, so an outage is filled in at its true times.

// clockWindow is how many round-trip readings the estimate chooses from: the
// one of the least delay wins, and a reading older than the window is
// forgotten. A reading that contradicts the estimate by more than clockStray
// beyond its own delay means the collector's clock was stepped: it replaces
// the window, so the step is followed at once rather than after the
// readings of the old clock have aged out.
const clockWindow = 8

// A reading costs a Clock frame from the collector (a wake-up and two reads
// here), so acks do not ask for one each: the first clockFirst acks after
// the collector's first Clock frame do (with acks 15 s apart, two round
// trips within the first quarter minute; the least delay of them bounds the
// estimate's error to that delay's half, well under the samples' second),
// then one ack every clockRefresh, so the window fills over the next
// minutes. A record whose corrected time lands further than
// clockStray from its arrival (the collector's clock was stepped, or the
// estimate is stale) makes the next clockFirst acks ask again: a stepped
// clock is followed one ack after its first record.
const (
	clockFirst   = 2
	clockRefresh = time.Minute
	clockStray   = 2 * time.Second
)

// ClockObserver is implemented by Insights that alert on clock offsets: it
// is told each node's current estimate (aggregator − collector) whenever it
// changes.
type ClockObserver interface {
	ClockOffset(n *fleet.Node, offset time.Duration, t time.Time)
}

type clockReading struct {
	offset, delay time.Duration
}

// clockFilter estimates one session's offset. Owned by the session's reader.
type clockFilter struct {
	oneWay  time.Duration // T4 − T3 of the reading after Hello (offset + one-way delay)
	hasOne  bool
	ring    [clockWindow]clockReading
	n       int // readings in ring
	next    int
	offset  time.Duration
	known   bool
	changed bool // since the last report
}

// observe adds the reading of frame c received at t4 (aggregator sample
// clock) and updates the estimate.
func (f *clockFilter) observe(c *wire.Clock, t4 time.Time) {
	// A reading outside the times any node may send (wire.TimeOK) would
	// overflow the offset: ignore it, as NTP ignores a bogus packet.
	if !wire.TimeOK(c.Sent) || !c.Origin.IsZero() && (!wire.TimeOK(c.Origin) || !wire.TimeOK(c.Received)) {
		return
	}
	t3 := c.Sent
	var est time.Duration
	if c.Origin.IsZero() || c.Received.IsZero() {
		// One way: the offset plus the network's one-way delay; the best
		// there is until an ack's round trip.
		f.oneWay, f.hasOne = t4.Sub(t3), true
		if f.n > 0 {
			return
		}
		est = f.oneWay
	} else {
		t1, t2 := c.Origin, c.Received
		// offset = ((T1 − T2) + (T4 − T3)) / 2, delay = (T4 − T1) − (T3 − T2)
		delay := t4.Sub(t1) - t3.Sub(t2)
		if delay < 0 {
			delay = 0 // ms resolution
		}
		off := (t1.Sub(t2) + t4.Sub(t3)) / 2
		if f.n > 0 && abs(off-f.offset) > clockStray+delay {
			f.n, f.next = 0, 0 // stepped: the window's readings are of the old clock
		}
		f.ring[f.next] = clockReading{offset: off, delay: delay}
		f.next = (f.next + 1) % clockWindow
		f.n = min(f.n+1, clockWindow)
		best := f.ring[0]
		for _, r := range f.ring[1:f.n] {
			if r.delay < best.delay {
				best = r
			}
		}
		est = best.offset
	}
	est = est.Round(time.Millisecond) // the wire's resolution
	if !f.known || est != f.offset {
		f.offset, f.known, f.changed = est, true, true
	}
}

// correct moves a record and its events onto the aggregator's clock.
func (f *clockFilter) correct(r *fleet.Sample) {
	if !f.known || f.offset == 0 {
		return
	}
	r.Time = r.Time.Add(f.offset)
	for i := range r.Events {
		r.Events[i].Time = r.Events[i].Time.Add(f.offset)
	}
}

// wantClock reports whether the ack being sent should carry our time (ask
// the collector for a reading), and counts it as asked.
func (ss *session) wantClock() bool {
	if !ss.clockAware.Load() {
		return false
	}
	now := ss.s.clock().UnixNano()
	for {
		k := ss.clockAsk.Load()
		if k <= 0 {
			break
		}
		if ss.clockAsk.CompareAndSwap(k, k-1) {
			ss.clockNext.Store(now + int64(clockRefresh))
			return true
		}
	}
	if next := ss.clockNext.Load(); now >= next && ss.clockNext.CompareAndSwap(next, now+int64(clockRefresh)) {
		return true
	}
	return false
}

// checkStray asks for clockWindow readings when record r, corrected onto the
// sample clock, lands further than clockStray from t, its arrival.
func (ss *session) checkStray(r *fleet.Sample, t time.Time) {
	if !ss.clk.known {
		return
	}
	if d := t.Sub(r.Time); d > clockStray || d < -clockStray {
		ss.clockAsk.Store(clockFirst)
	}
}

// onClock handles a Clock frame received at t4 on the sample clock.
func (ss *session) onClock(c *wire.Clock, t4 time.Time) {
	if !ss.clockAware.Swap(true) {
		ss.clockAsk.Store(clockFirst)
	}
	ss.clk.observe(c, t4)
	if !ss.clk.changed {
		return
	}
	ss.clk.changed = false
	n := ss.node.Load()
	off := ss.clk.offset
	n.offset.Store(int64(off))
	n.offsetKnown.Store(true)
	if abs(off) >= time.Second {
		ss.s.log.Debug("collector clock offset", "node", n.id, "offset", off)
	}
	if co, ok := ss.s.cfg.Insights.(ClockObserver); ok {
		n.mu.Lock()
		co.ClockOffset(&n.node, off, t4)
		n.mu.Unlock()
	}
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Connector is implemented by Recorders that bound booking by a node's
// connections (the store): Connected is called at every Hello with the
// aggregator's sample clock, before any of the session's records.
type Connector interface {
	Connected(id string, at time.Time)
}
