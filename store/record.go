package store

import (
	"maps"
	"math"
	"sync"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

const minuteMs = int64(time.Minute / time.Millisecond)
const hourMs = int64(time.Hour / time.Millisecond)

// floorTo returns t rounded down to a multiple of step (t ≥ 0 in practice).
func floorTo(t, step int64) int64 {
	r := t % step
	if r < 0 {
		r += step
	}
	return t - r
}

// ident is the copy of a node's identity the store keeps; Record compares
// the live node with it and snapshots a new one only when it changed.
type ident struct {
	node    fleet.Node // Labels and Devices: private copies, or the caller's, never modified (snapshot)
	price   fleet.Money
	billing fleet.Billing
}

func (id *ident) matchesScalars(n *fleet.Node) bool {
	o := &id.node
	return o.Hostname == n.Hostname && o.Region == n.Region && o.Site == n.Site &&
		o.Provider == n.Provider && o.Jurisdiction == n.Jurisdiction && o.Lease.ID == n.Lease.ID &&
		o.Lease.PricePerGPUHour == n.Lease.PricePerGPUHour && o.Lease.Billing == n.Lease.Billing &&
		o.Lease.Reserved == n.Lease.Reserved && o.Lease.GPUs == n.Lease.GPUs && o.Lease.Start.Equal(n.Lease.Start) &&
		o.Lease.End.Equal(n.Lease.End) && len(o.Labels) == len(n.Labels) && len(o.Devices) == len(n.Devices)
}

func (id *ident) matches(n *fleet.Node) bool {
	if !id.matchesScalars(n) {
		return false
	}
	o := &id.node
	for k, v := range n.Labels {
		if w, ok := o.Labels[k]; !ok || w != v {
			return false
		}
	}
	for i := range n.Devices {
		if o.Devices[i] != n.Devices[i] {
			return false
		}
	}
	return true
}

// snapshot returns n's identity to keep. shared: n's Labels and Devices are
// never modified in place (the caller tracks generations, see Record), and
// are kept by reference; a copy of every node's inventory was 1.5 MB at
// 9,400 GPUs, beside the aggregator's own.
func (s *Store) snapshot(n *fleet.Node, shared bool) ident {
	c := *n
	if !shared {
		c.Labels = maps.Clone(n.Labels)
		c.Devices = append([]fleet.Device(nil), n.Devices...)
	}
	id := ident{node: c, price: n.Lease.PricePerGPUHour, billing: n.Lease.Billing}
	if id.price.Micros == 0 && s.opts.Price != nil {
		if p, ok := s.opts.Price(n); ok {
			id.price = p
		}
	}
	if id.billing != fleet.BillPerStartedHour {
		id.billing = fleet.BillPerSecond
	}
	return id
}

// bucket accumulates one GPU's samples of one minute: what arrived since
// the last Commit (Commit adds it to the stored row and resets it).
type bucket struct {
	idx        int
	minute     int64 // Unix ms
	samples    int64
	utilN      int64
	utilSum    float64
	utilMax    float64
	memN       int64
	memSum     float64
	powerN     int64
	powerSum   float64
	energy     float64
	tempMax    float64
	tempSet    bool
	reportedMs int64
	job, team  string
}

func (b *bucket) reset(minute int64) {
	*b = bucket{idx: b.idx, minute: minute, job: b.job, team: b.team}
}

func (b *bucket) add(d *fleet.DeviceSample, coveredMs int64) {
	b.samples++
	b.reportedMs += coveredMs
	if v, ok := d.Get(fleet.MetricUtil); ok && finite(v) {
		b.utilN++
		b.utilSum += v
		if b.utilN == 1 || v > b.utilMax {
			b.utilMax = v
		}
	}
	if v, ok := d.Get(fleet.MetricMemUsed); ok && finite(v) {
		b.memN++
		b.memSum += v
	}
	if v, ok := d.Get(fleet.MetricPower); ok && finite(v) {
		b.powerN++
		b.powerSum += v
		b.energy += v * float64(coveredMs) / 1000
	}
	if v, ok := d.Get(fleet.MetricTemp); ok && finite(v) {
		if !b.tempSet || v > b.tempMax {
			b.tempMax = v
			b.tempSet = true
		}
	}
}

// finite: NaN and ±Inf are not measurements. SQLite stores NaN as NULL,
// which a NOT NULL rollup column refuses: one node's NaN would fail the
// fold of the whole fleet. They count as absent.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

type bkey struct {
	idx    int
	minute int64
}

type jobRef struct{ job, team string }

// devJob is the job that runs on device dev.
type devJob struct {
	dev int
	jobRef
}

// nodeAcc is one node's in-memory accumulator, filled by Record and drained
// by Commit.
type nodeAcc struct {
	id         string
	pend       *pendNode // its record in Store.pend; used by Commit only
	drained    uint64    // Store.drains when its samples were last journaled
	checks     uint64
	gen        uint64 // the node generation whose identity was compared last
	mu         sync.Mutex
	ident      ident
	identDirty bool
	identAt    int64 // sample time (ms) the current identity was first seen
	firstMs    int64
	lastMs     int64
	floorMs    int64 // the node's first connection: nothing is booked before it (0: unknown)
	refused    uint64
	jobs       []devJob         // the last sample's jobs, the first process's per device
	cur        []bucket         // open bucket per device
	old        map[bkey]*bucket // buckets of earlier minutes not yet written
	events     []fleet.Event
	// maxSeq is the highest sequence recorded; Commit persists at least it,
	// so records that reach the database are never applied again on resume.
	maxSeq uint64
}

func (s *Store) acc(id string) *nodeAcc {
	s.accMu.RLock()
	a := s.accs[id]
	s.accMu.RUnlock()
	if a != nil {
		return a
	}
	s.accMu.Lock()
	defer s.accMu.Unlock()
	if a = s.accs[id]; a == nil {
		a = &nodeAcc{id: id, old: map[bkey]*bucket{}}
		s.accs[id] = a
	}
	return a
}

// Record folds one applied sample of node n into the in-memory minute
// buckets. It never blocks on I/O and keeps nothing of smp, nor of n but,
// when gen is nonzero, its Labels and Devices (which the caller then never
// modifies in place, see aggregator.Recorder). gen is n's generation: an
// identity of a generation already recorded is not compared again; 0
// compares every time.
func (s *Store) Record(n *fleet.Node, gen uint64, smp *fleet.Sample) {
	if n == nil || smp == nil || s.opts.ReadOnly {
		return
	}
	a := s.acc(n.ID)
	t := smp.Time.UnixMilli()
	now := s.opts.Clock().UnixMilli()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.maxSeq = max(a.maxSeq, smp.Seq)
	// Booking bounds: no time before the node's first connection, none after
	// now. The aggregator corrects sample times onto this clock, so a sample
	// a little ahead (up to 5 intervals or 15 s, the longest gap a sample
	// covers) is its estimate's error (the one-way delay before the first
	// round trip) and is booked now; anything further out, or before the
	// first connection, comes from a clock the aggregator could not correct
	// and is refused.
	if t > now {
		if t-now > max(5*s.opts.Interval.Milliseconds(), 15_000) {
			a.refuse(n.ID, t, now, s)
			return
		}
		t = now
	}
	if a.floorMs > 0 && t < a.floorMs {
		a.refuse(n.ID, t, now, s)
		return
	}
	// The identity changes only when a collector reconnects. A new (or
	// unknown) generation is compared: whole when the caller tracks
	// generations; without them, the scalar fields (placement, lease,
	// counts) every sample and the labels and devices every 16th.
	if gen == 0 || gen != a.gen {
		a.checks++
		full := a.checks%16 == 1 || gen != 0
		if a.identAt == 0 || (full && !a.ident.matches(n)) || (!full && !a.ident.matchesScalars(n)) {
			a.ident = s.snapshot(n, gen != 0)
			a.identDirty = true
			a.identAt = t
		}
		a.gen = gen
	}
	interval := s.opts.Interval.Milliseconds()
	covered := interval
	if a.lastMs > 0 && t > a.lastMs && t-a.lastMs <= max(5*interval, 15_000) {
		covered = t - a.lastMs
	}
	if t > a.lastMs {
		a.lastMs = t
	}
	if a.firstMs == 0 || t < a.firstMs {
		a.firstMs = t
	}
	if smp.ProcsSet {
		// A slice, not a map: a node runs a handful of jobs, and a map
		// cleared every sample cost more than the searches (2 % of ingest
		// at 100,000 GPUs).
		a.jobs = a.jobs[:0]
		for i := range smp.Procs {
			p := &smp.Procs[i]
			if p.Job.ID != "" && a.jobOn(p.Device) == (jobRef{}) {
				a.jobs = append(a.jobs, devJob{p.Device, jobRef{job: p.Job.ID, team: p.Job.Team}})
			}
		}
	}
	minute := floorTo(t, minuteMs)
	for i := range smp.Devices {
		d := &smp.Devices[i]
		b := a.bucketFor(d.Index, minute)
		jr := a.jobOn(d.Index)
		b.job = jr.job
		b.team = jr.team
		if b.team == "" {
			b.team = a.ident.node.Labels["team"]
		}
		b.add(d, covered)
	}
	a.events = append(a.events, smp.Events...)
}

// jobOn is the job the last sample ran on device dev; none: zero.
func (a *nodeAcc) jobOn(dev int) jobRef {
	for i := range a.jobs {
		if a.jobs[i].dev == dev {
			return a.jobs[i].jobRef
		}
	}
	return jobRef{}
}

// refuse counts a sample outside the booking bounds, and logs the first.
// Caller holds a.mu.
func (a *nodeAcc) refuse(id string, t, now int64, s *Store) {
	a.refused++
	s.refused.Add(1)
	if a.refused == 1 {
		s.opts.Logger.Warn("refusing to book samples outside the node's time (before its first connection or after now)",
			"node", id, "sample_time", time.UnixMilli(t).UTC(), "now", time.UnixMilli(now).UTC(), "first_connection", time.UnixMilli(a.floorMs).UTC())
	}
}

// Connected bounds node id's booking by its first connection (at, on the
// store's clock, for a node the store has not seen, which is then its first
// sight; else its first sight): no sample before it is booked. The
// aggregator calls it at every Hello.
func (s *Store) Connected(id string, at time.Time) {
	if s.opts.ReadOnly {
		return
	}
	a := s.acc(id)
	s.accMu.RLock()
	first := s.firstSeen[id]
	s.accMu.RUnlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.floorMs > 0 {
		return
	}
	switch {
	case a.firstMs > 0:
		a.floorMs = a.firstMs
	case first > 0:
		a.floorMs = first
	default:
		// A new node: its first sight, where its lease starts accruing, is
		// this first connection (the live figures start there too).
		a.floorMs = at.UnixMilli()
		a.firstMs = a.floorMs
	}
}

// Refused returns how many samples were refused for booking since Open.
func (s *Store) Refused() uint64 { return s.refused.Load() }

// bucketFor returns the bucket collecting device idx's samples of minute.
func (a *nodeAcc) bucketFor(idx int, minute int64) *bucket {
	var b *bucket
	for i := range a.cur {
		if a.cur[i].idx == idx {
			b = &a.cur[i]
			break
		}
	}
	if b == nil {
		a.cur = append(a.cur, bucket{idx: idx, minute: minute})
		return &a.cur[len(a.cur)-1]
	}
	switch {
	case b.minute == minute:
		return b
	case minute > b.minute:
		if b.samples > 0 {
			old := *b
			a.park(&old)
		}
		b.reset(minute)
		return b
	default: // a late sample of an earlier minute
		k := bkey{idx, minute}
		o := a.old[k]
		if o == nil {
			o = &bucket{idx: idx, minute: minute, job: b.job, team: b.team}
			a.old[k] = o
		}
		return o
	}
}

func (a *nodeAcc) park(b *bucket) {
	k := bkey{b.idx, b.minute}
	if o := a.old[k]; o != nil {
		o.merge(b)
		return
	}
	a.old[k] = b
}

// merge adds c's deltas to b.
func (b *bucket) merge(c *bucket) {
	b.samples += c.samples
	b.utilSum += c.utilSum
	if c.utilN > 0 && (b.utilN == 0 || c.utilMax > b.utilMax) {
		b.utilMax = c.utilMax
	}
	b.utilN += c.utilN
	b.memN += c.memN
	b.memSum += c.memSum
	b.powerN += c.powerN
	b.powerSum += c.powerSum
	b.energy += c.energy
	if c.tempSet && (!b.tempSet || c.tempMax > b.tempMax) {
		b.tempMax, b.tempSet = c.tempMax, true
	}
	b.reportedMs += c.reportedMs
	b.job, b.team = c.job, c.team
}
