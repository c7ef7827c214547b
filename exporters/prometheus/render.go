package prometheus

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// NodeReader is what the exporter reads of one live node; the aggregator's
// *LiveNode implements it. Everything it returns is valid only during the
// walk's callback.
type NodeReader interface {
	ID() string
	Identity() *fleet.Node
	Generation() uint64 // changes whenever Identity does
	State() string
	Burn() fleet.Money
	NumDevices() int
	Device(i int) (*fleet.Device, *fleet.DeviceSample) // sample nil: none yet
	EachEvent(fn func(*fleet.Event))
}

// Fleet walks the live fleet, calling fn once per node.
type Fleet func(fn func(NodeReader))

// Filter limits an exposition to some regions and/or nodes (empty: all).
// A filtered exposition carries the per-device and per-node series of the
// matching nodes, and the per-placement series of the matching regions when
// only regions are given; the aggregator's own series only come unfiltered.
type Filter struct {
	Regions []string
	Nodes   []string
}

func (f Filter) empty() bool { return len(f.Regions) == 0 && len(f.Nodes) == 0 }

func (f Filter) matchNode(region, id string) bool {
	return (len(f.Regions) == 0 || slices.Contains(f.Regions, region)) &&
		(len(f.Nodes) == 0 || slices.Contains(f.Nodes, id))
}

// Exporter renders the fleet's series from live state. Label sets are built
// once per device when its node's identity changes (on Hello) and reused by
// every scrape and every remote_write. A render notes which devices it
// exports (take), then reads the device series' values a few series at a
// time in walks of the live fleet (one lock per node) and writes bytes,
// allocating almost nothing.
type Exporter struct {
	fleet Fleet
	ins   Summarizer
	now   func() time.Time

	mu    sync.Mutex // one render at a time; guards everything below
	cache map[string]*nodeCache
	walk  uint64 // walks so far: a cache entry not seen in the last walk is a node gone
	snap  snapshot
	// A few device series' values, seriesPerWalk a device (by snap.devs
	// position, then series); NaN: not emitted.
	col []float64
}

// seriesPerWalk is how many device series one walk of the live fleet reads.
// One series a walk kept a float a device but made a scrape at 10,000 GPUs
// a third dearer (each walk reads every node's samples afresh from memory);
// eight keep 64 B a device and cost about what the copies did.
const seriesPerWalk = 8

// NewExporter returns an exporter over the live fleet. ins may be nil: then
// burn comes from each node's lease, in the lease currency, and there are no
// spend, residency or alert series. Any aggregator.Insights is a Summarizer.
func NewExporter(f Fleet, ins Summarizer) *Exporter {
	return &Exporter{fleet: f, ins: ins, now: time.Now, cache: map[string]*nodeCache{}}
}

// nodeCache holds a node's label sets, valid for one generation.
type nodeCache struct {
	gen   uint64
	walk  uint64 // the last walk that saw the node
	built bool
	devs  []labelSet  // by inventory position; no text for an unknown vendor
	lease *labelSet   // fleettop_lease_price_per_gpu_hour
	price float64     // lease price per GPU-hour, 0: none
	srcs  []*labelSet // fleettop_collector_source_up, per source
	srcUp []float64
	place place
	gpus  int    // physical GPUs (MIG instances are part of theirs)
	inst  []bool // by inventory position: a MIG instance
	// The node's devices in the render under way: snap.devs[first:first+n]
	// (n 0: none, as when it is offline or filtered out).
	first, n int
}

type place struct{ region, provider, jurisdiction string }

// devSnap is one device as a render found it. Its latest sample is read
// from the live node by each series' walk: s is that sample during the
// walk (nil: none yet) and nil otherwise.
type devSnap struct {
	ls      *labelSet
	slot    int // its position in the node's inventory (NodeReader.Device)
	vendor  fleet.Vendor
	index   int
	seen    bool // a sample arrived since Hello
	any     bool // it carries at least one finite metric
	inst    bool // a MIG instance (its GPU carries the XIDs)
	xidSeen bool
	xid     int64
	s       *fleet.DeviceSample
}

type nodeSnap struct {
	c     *nodeCache
	state string
	burn  fleet.Money
	gpus  int
}

// snapshot is what a render exports, reused across renders. It holds no
// samples: a copy of every device's (about 300 B a device, kept between
// scrapes so as not to make 3 MB of garbage each at 10,000 GPUs) was 0.4
// KiB of the aggregator's RSS per GPU once /metrics had been read. The
// series read their values from the live nodes instead, seriesPerWalk at a
// time (a walk: 1,250 locks at 10,000 GPUs); the values of one device's
// series may then come from two consecutive samples, as a scrape of
// node_exporter's collectors reads each at its own moment.
type snapshot struct {
	nodes   []nodeSnap
	devs    []devSnap
	vendors map[fleet.Vendor]bool // the vendors of devs
}

// take notes, through e.fleet, what the render exports: the nodes and
// their devices, with their label sets (rebuilt when a node's generation
// moved), states, burn and last XIDs. Caller holds e.mu.
func (e *Exporter) take(flt Filter) {
	e.snap.nodes = e.snap.nodes[:0]
	e.snap.devs = e.snap.devs[:0]
	if e.snap.vendors == nil {
		e.snap.vendors = map[fleet.Vendor]bool{}
	}
	clear(e.snap.vendors)
	e.walk++
	seen := 0
	defer func() {
		if seen == len(e.cache) {
			return
		}
		for id, c := range e.cache { // nodes the aggregator forgot
			if c.walk != e.walk {
				delete(e.cache, id)
			}
		}
	}()
	e.fleet(func(n NodeReader) {
		id := n.ID()
		c := e.cache[id]
		if c == nil {
			c = &nodeCache{}
			e.cache[id] = c
		}
		if c.walk != e.walk {
			c.walk = e.walk
			seen++
		}
		if !c.built || c.gen != n.Generation() {
			c.build(n)
		}
		c.first, c.n = len(e.snap.devs), 0
		if !flt.empty() && !flt.matchNode(c.place.region, id) {
			return
		}
		state := n.State()
		nd := n.NumDevices()
		e.snap.nodes = append(e.snap.nodes, nodeSnap{c: c, state: state, burn: n.Burn(), gpus: c.gpus})
		if state == wire.StateOffline {
			return // its last values are history, not the present
		}
		first := len(e.snap.devs)
		for i := 0; i < nd && i < len(c.devs); i++ {
			d, s := n.Device(i)
			if c.devs[i].empty() {
				continue
			}
			e.snap.devs = append(e.snap.devs, devSnap{ls: &c.devs[i], slot: i, vendor: d.Vendor, index: d.Index, inst: c.inst[i]})
			e.snap.vendors[d.Vendor] = true
			ds := &e.snap.devs[len(e.snap.devs)-1]
			if s != nil {
				ds.seen = true
				for m := fleet.Metric(0); m < fleet.NumMetrics; m++ {
					if v, ok := s.Get(m); ok && finite(v) {
						ds.any = true
						break
					}
				}
			}
		}
		devs := e.snap.devs[first:]
		c.n = len(devs)
		n.EachEvent(func(ev *fleet.Event) {
			if ev.Kind != fleet.EventXID {
				return
			}
			for k := range devs {
				if devs[k].index == ev.Device {
					devs[k].xid, devs[k].xidSeen = ev.Code, true
				}
			}
		})
	})
}

// build renders a node's label sets from its identity (once per Hello).
func (c *nodeCache) build(n NodeReader) {
	nd := n.Identity()
	id := n.ID()
	c.gen, c.built = n.Generation(), true
	c.place = place{nd.Region, nd.Provider, nd.Jurisdiction}
	c.devs = make([]labelSet, n.NumDevices())
	c.inst = make([]bool, len(c.devs))
	c.gpus = 0
	bases := map[fleet.Vendor]*labelSet{} // the node's labels, one set a vendor
	for i := range c.devs {
		d, _ := n.Device(i)
		c.inst[i] = d.IsInstance()
		if !c.inst[i] {
			c.gpus++
		}
		own := deviceLabels(nd, d)
		if own == nil {
			continue // a vendor the exporter has no names for
		}
		if bases[d.Vendor] == nil {
			bases[d.Vendor] = newLabelSet(nodeLabels(nd, id, d.Vendor))
		}
		c.devs[i].set(bases[d.Vendor], own)
	}
	c.srcs, c.srcUp = c.srcs[:0], c.srcUp[:0]
	for _, s := range nd.Sources {
		c.srcs = append(c.srcs, newLabelSet([]label{{"node", id}, {"hostname", nd.Hostname}, {"region", nd.Region},
			{"provider", nd.Provider}, {"jurisdiction", nd.Jurisdiction}, {"source", s.Name}}))
		up := 0.0
		if s.Up {
			up = 1
		}
		c.srcUp = append(c.srcUp, up)
	}
	c.price, c.lease = 0, nil
	if p := nd.Lease.PricePerGPUHour; p.Micros > 0 {
		c.price = units(p.Micros)
		c.lease = newLabelSet([]label{{"node", id}, {"hostname", nd.Hostname}, {"lease", nd.Lease.ID},
			{"region", nd.Region}, {"provider", nd.Provider}, {"jurisdiction", nd.Jurisdiction}, {"currency", p.Currency}})
	}
}

// sink receives the exposition, one family after another.
type sink interface {
	sample(f *Family, ls *labelSet, v float64)
}

// render writes the fleet's series (as filtered) to s. It holds e.mu.
func (e *Exporter) render(s sink, flt Filter) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	e.take(flt)
	devs := e.snap.devs
	for _, t := range [][]DeviceSeries{dcgmSeries, npuSeries} {
		for len(t) > 0 {
			rows := t[:min(seriesPerWalk, len(t))]
			t = t[len(rows):]
			e.columns(rows)
			for r, row := range rows {
				for i := range devs {
					if v := e.col[i*seriesPerWalk+r]; !math.IsNaN(v) {
						s.sample(row.Family, devs[i].ls, v)
					}
				}
			}
		}
	}
	nodes := e.snap.nodes
	for i := range nodes {
		if c := nodes[i].c; c.lease != nil {
			s.sample(famLeasePrice, c.lease, c.price)
		}
	}
	for i := range nodes {
		c := nodes[i].c
		for k, ls := range c.srcs {
			s.sample(famSourceUp, ls, c.srcUp[k])
		}
	}
	e.placements(s, flt, now)
}

// columns reads rows' values of every device in the snapshot into e.col,
// in one walk of the live fleet; nothing is written while a node is locked.
// A node whose inventory changed since take is left out of these series.
// Caller holds e.mu.
func (e *Exporter) columns(rows []DeviceSeries) {
	devs := e.snap.devs
	e.col = slices.Grow(e.col[:0], len(devs)*seriesPerWalk)[:len(devs)*seriesPerWalk]
	for i := range e.col {
		e.col[i] = math.NaN()
	}
	if !slices.ContainsFunc(rows, func(r DeviceSeries) bool { return e.snap.vendors[r.Vendor] }) {
		return
	}
	e.fleet(func(n NodeReader) {
		c := e.cache[n.ID()]
		if c == nil || c.walk != e.walk || c.n == 0 || c.gen != n.Generation() {
			return
		}
		for j := c.first; j < c.first+c.n; j++ {
			d := &devs[j]
			_, d.s = n.Device(d.slot)
			for r := range rows {
				if d.vendor != rows[r].Vendor {
					continue
				}
				// Every Value is finite when it holds (metric checks): NaN
				// is free to mark "not emitted".
				if v, ok := rows[r].Value(d); ok {
					e.col[j*seriesPerWalk+r] = v
				}
			}
			d.s = nil
		}
	})
}

type stateKey struct {
	p     place
	state string
}

// placements writes the series grouped by placement. Caller holds e.mu.
func (e *Exporter) placements(s sink, flt Filter, now time.Time) {
	nodes := e.snap.nodes
	states := map[stateKey]int{}
	var keys []stateKey
	places := map[place]bool{}
	for i := range nodes {
		k := stateKey{nodes[i].c.place, nodes[i].state}
		if _, ok := states[k]; !ok {
			keys = append(keys, k)
		}
		states[k] += nodes[i].gpus
		places[k.p] = true
	}
	slices.SortFunc(keys, func(a, b stateKey) int {
		return strings.Compare(a.p.region+"\xff"+a.p.provider+"\xff"+a.p.jurisdiction+"\xff"+a.state,
			b.p.region+"\xff"+b.p.provider+"\xff"+b.p.jurisdiction+"\xff"+b.state)
	})
	for _, k := range keys {
		s.sample(famGPUs, placeLabels(k.p, label{"state", k.state}), float64(states[k]))
	}
	if len(flt.Nodes) > 0 {
		return // placement figures are not per node
	}
	if pl, ok := e.ins.(placer); ok && e.ins != nil {
		ps := pl.Placements(now)
		var keep []int
		for i, p := range ps {
			if len(flt.Regions) == 0 || slices.Contains(flt.Regions, p.Region) {
				keep = append(keep, i)
			}
		}
		money := make([]*labelSet, len(ps))
		plain := make([]*labelSet, len(ps))
		for _, i := range keep {
			p := &ps[i]
			money[i] = placeLabels(place{p.Region, p.Provider, p.Jurisdiction}, label{"currency", p.BurnPerHour.Currency})
			plain[i] = placeLabels(place{p.Region, p.Provider, p.Jurisdiction})
		}
		for _, i := range keep {
			s.sample(famBurn, money[i], units(ps[i].BurnPerHour.Micros))
		}
		for _, i := range keep {
			s.sample(famSpend, money[i], units(ps[i].SpendMonth.Micros))
		}
		for _, i := range keep {
			s.sample(famIdleSpend, money[i], units(ps[i].IdleSpendMonth.Micros))
		}
		for _, i := range keep {
			s.sample(famViolations, plain[i], float64(ps[i].Violations))
		}
		for _, i := range keep {
			p := &ps[i]
			for _, sev := range []fleet.Severity{fleet.SevCritical, fleet.SevInfo, fleet.SevWarning} {
				s.sample(famAlertsOpen, placeLabels(place{p.Region, p.Provider, p.Jurisdiction}, label{"severity", string(sev)}),
					float64(p.AlertsOpen[sev]))
			}
		}
		if flt.empty() {
			e.costSeries(s, now)
		}
		return
	}
	// Without the engine: burn per lease currency from the nodes themselves.
	type burnKey struct {
		p        place
		currency string
	}
	burn := map[burnKey]int64{}
	var bkeys []burnKey
	for i := range nodes {
		b := nodes[i].burn
		if b.Currency == "" {
			continue
		}
		k := burnKey{nodes[i].c.place, b.Currency}
		if _, ok := burn[k]; !ok {
			bkeys = append(bkeys, k)
		}
		burn[k] += b.Micros
	}
	for _, k := range bkeys {
		s.sample(famBurn, placeLabels(k.p, label{"currency", k.currency}), units(burn[k]))
	}
	if e.ins == nil {
		return
	}
	e.alertSeries(s, places, now)
}

// alertSeries derives open alerts and residency violations per placement
// from the Summarizer's alerts (when it does not group by placement itself).
func (e *Exporter) alertSeries(s sink, places map[place]bool, now time.Time) {
	byNode := map[string]place{}
	for id, c := range e.cache {
		byNode[id] = c.place
	}
	type sevKey struct {
		p   place
		sev fleet.Severity
	}
	open := map[sevKey]int{}
	viol := map[place]int{}
	for p := range places {
		viol[p] = 0
	}
	_, _, alerts := e.ins.Summarize(now)
	for _, a := range alerts {
		p, ok := byNode[a.Node]
		if !a.Open() || !ok || !places[p] {
			continue
		}
		open[sevKey{p, a.Severity}]++
		if a.Kind == fleet.EventResidency {
			viol[p]++
		}
	}
	for k, n := range open {
		s.sample(famAlertsOpen, placeLabels(k.p, label{"severity", string(k.sev)}), float64(n))
	}
	for p, n := range viol {
		s.sample(famViolations, placeLabels(p), float64(n))
	}
}

func placeLabels(p place, extra ...label) *labelSet {
	pairs := make([]label, 0, 3+len(extra))
	pairs = append(pairs, label{"region", p.region}, label{"provider", p.provider}, label{"jurisdiction", p.jurisdiction})
	return newLabelSet(append(pairs, extra...))
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// units turns micro-units into currency units for export (the only place
// money becomes a float: Prometheus samples are floats).
func units(micros int64) float64 { return float64(micros) / fleet.MicrosPerUnit }
