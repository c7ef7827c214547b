package aggregator

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// HistoryReader sums the durable rollups for the history API (store.Store
// in production); nil serves the live ring only.
type HistoryReader interface {
	History(ctx context.Context, q fleet.HistoryQuery) ([]fleet.HistoryBucket, error)
}

// historyQuery is one parsed GET /api/v1/history.
type historyQuery struct {
	rg     fleet.HistoryRange
	node   string
	region string
	by     string // "" or "region" (fleet scope)
}

func (q historyQuery) key() string {
	return q.rg.Name + "\x00" + q.node + "\x00" + q.region + "\x00" + q.by
}

// historyCache keeps each answer for one step of its range (at least a
// second, at most a minute of the aggregator's clock), so that viewers
// polling a fleet-wide range cost one scan of the ring and one query.
type historyCache struct {
	mu      sync.Mutex
	entries map[string]historyEntry
}

type historyEntry struct {
	until time.Time
	resp  *wire.HistoryResponse
}

const maxHistoryCache = 256

func (c *historyCache) get(key string, now time.Time) *wire.HistoryResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && now.Before(e.until) {
		return e.resp
	}
	return nil
}

func (c *historyCache) put(key string, now time.Time, ttl time.Duration, r *wire.HistoryResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxHistoryCache {
		c.entries = map[string]historyEntry{}
	}
	c.entries[key] = historyEntry{until: now.Add(ttl), resp: r}
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := historyQuery{node: v.Get("node"), region: v.Get("region"), by: v.Get("by")}
	name := v.Get("range")
	if name == "" {
		name = fleet.DefaultHistoryRange
	}
	rg, ok := fleet.LookupHistoryRange(name)
	if !ok {
		http.Error(w, "range must be one of "+rangeNames(), http.StatusBadRequest)
		return
	}
	q.rg = rg
	switch {
	case q.node != "" && q.region != "":
		http.Error(w, "give node or region, not both", http.StatusBadRequest)
		return
	case q.by != "" && (q.by != "region" || q.node != "" || q.region != ""):
		http.Error(w, "by=region is the only grouping, and only for the whole fleet", http.StatusBadRequest)
		return
	case q.node != "" && s.node(q.node) == nil:
		http.Error(w, "no such node", http.StatusNotFound)
		return
	}
	now := s.clock()
	resp := s.histCache.get(q.key(), now)
	if resp == nil {
		var err error
		resp, err = s.history(r.Context(), q, now)
		if err != nil {
			s.log.Warn("history: the rollups could not be read; serving the live ring only", "err", err)
		}
		s.histCache.put(q.key(), now, min(max(rg.Step, time.Second), time.Minute), resp)
	}
	s.writeJSON(w, r, resp)
}

func rangeNames() string {
	out := ""
	for i, r := range fleet.HistoryRanges {
		if i > 0 {
			out += ", "
		}
		out += r.Name
	}
	return out
}

// history builds the answer: the steps of the range ending with the one
// now falls in, from the ring where it covers a step and from the rollups
// before (or where the ring has nothing, e.g. after a restart). A failed
// rollup query still answers, with the ring's steps, and the error.
func (s *Server) history(ctx context.Context, q historyQuery, now time.Time) (*wire.HistoryResponse, error) {
	step, n := q.rg.Step, q.rg.Points()
	last := now.Truncate(step) // steps divide a day: aligned to the Unix epoch
	from := last.Add(-time.Duration(n-1) * step)
	to := last.Add(step)
	resp := &wire.HistoryResponse{Aggregator: s.cfg.Name, Range: q.rg.Name, StepS: step.Seconds(),
		From: from, To: to, Scope: "fleet"}
	switch {
	case q.node != "":
		resp.Scope, resp.ID = "node", q.node
	case q.region != "":
		resp.Scope, resp.ID = "region", q.region
	}
	by := q.by
	if q.node != "" {
		by = "device"
	}

	g := &histGrid{from: from, step: step, n: n, groups: map[string][]fleet.HistoryBucket{}}
	var rows []fleet.HistoryBucket
	var err error
	query := func() {
		hq := fleet.HistoryQuery{Node: q.node, Region: q.region, By: by, From: from, To: to, Step: step}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rows, err = s.cfg.History.History(qctx, hq)
		cancel()
	}

	// The ring holds historyLen samples a device and places point k at
	// lastSeen − k × interval, which holds while collectors send one
	// sample an interval (not under a --speed demo's catch-up). A range
	// it spans comes from it alone; a longer one from the rollups (on
	// the samples' own times), with the ring only for the steps from the
	// newest rollup on, which the next fold has not written yet.
	interval := s.cfg.Interval
	ringSpan := time.Duration(historyLen) * interval
	long := q.rg.Span > ringSpan-interval
	cut := from
	if long {
		cut = now.Add(-ringSpan + interval)
		if c := cut.Truncate(step); c.Before(cut) {
			cut = c.Add(step)
		}
		if s.cfg.History != nil {
			query()
			for _, h := range rows {
				if t := time.UnixMilli(h.Start); t.After(cut) {
					cut = t
				}
			}
		}
	}
	s.ringHistory(q, by, ringWindow{from: from, cut: cut, to: to, step: step, interval: interval, idle: s.cfg.IdleThreshold}, g.of)
	resp.Sources = append(resp.Sources, "ring")
	if !long && len(g.groups) == 0 && s.cfg.History != nil {
		query() // an empty ring (a restart): the rollups, coarse as they are
	}
	g.merge(rows, cut)
	if len(rows) > 0 {
		src := "rollup_minute"
		if step >= time.Hour {
			src = "rollup_hour"
		}
		resp.Sources = append(resp.Sources, src)
	}
	name := "fleet"
	switch {
	case q.node != "":
		name = q.node
	case q.region != "":
		name = q.region
	}
	resp.Series = g.series(by, name)
	return resp, err
}

// histGrid is a history answer's buckets: n steps of step from from, per
// group (a region, a device index, or "" for everything asked for).
type histGrid struct {
	from   time.Time
	step   time.Duration
	n      int
	groups map[string][]fleet.HistoryBucket
}

// of returns the group's buckets, adding empty ones for a new group.
func (g *histGrid) of(group string) []fleet.HistoryBucket {
	b, ok := g.groups[group]
	if !ok {
		b = make([]fleet.HistoryBucket, g.n)
		for i := range b {
			b[i].Group, b[i].Start = group, g.from.Add(time.Duration(i)*g.step).UnixMilli()
		}
		g.groups[group] = b
	}
	return b
}

// merge puts the rollups' rows into their steps; the ring wins where it
// covers the step (from cut on) and has data.
func (g *histGrid) merge(rows []fleet.HistoryBucket, cut time.Time) {
	for _, h := range rows {
		i := int(time.UnixMilli(h.Start).Sub(g.from) / g.step)
		if i < 0 || i >= g.n {
			continue
		}
		b := g.of(h.Group)
		if !time.UnixMilli(h.Start).Before(cut) && b[i].Reported > 0 {
			continue
		}
		b[i] = h
	}
}

// series returns the served series, groups in order: by device, the
// node's own series (named name, the sum of its devices') then one a
// device by index; by region, one a region by name; otherwise one series
// named name.
func (g *histGrid) series(by, name string) []wire.HistorySeries {
	names := slices.Sorted(maps.Keys(g.groups))
	var out []wire.HistorySeries
	switch by {
	case "device":
		idx := func(s string) int { i, _ := strconv.Atoi(s); return i }
		slices.SortFunc(names, func(a, b string) int { return idx(a) - idx(b) }) // by index, not as text
		total := make([]fleet.HistoryBucket, g.n)
		for _, d := range names {
			for i, h := range g.groups[d] {
				addBucket(&total[i], &h)
			}
		}
		out = append(out, series(name, nil, total))
		for _, d := range names {
			i := idx(d)
			out = append(out, series("gpu "+d, &i, g.groups[d]))
		}
	case "region":
		for _, r := range names {
			out = append(out, series(r, nil, g.groups[r]))
		}
	default:
		out = append(out, series(name, nil, g.of("")))
	}
	return out
}

// addBucket adds the sums of h (another device or group) to dst.
func addBucket(dst, h *fleet.HistoryBucket) {
	dst.UtilN += h.UtilN
	dst.UtilSum += h.UtilSum
	dst.UtilMax = max(dst.UtilMax, h.UtilMax)
	dst.Power += h.Power
	dst.PowerN += h.PowerN
	dst.MemUsed += h.MemUsed
	dst.MemN += h.MemN
	if h.TempN > 0 && (dst.TempN == 0 || h.TempMax > dst.TempMax) {
		dst.TempMax = h.TempMax
	}
	dst.TempN += h.TempN
	dst.Reported += h.Reported
	dst.Idle += h.Idle
}

// series turns buckets into a served series: means, sums and maxima, null
// where nothing was reported.
func series(name string, dev *int, b []fleet.HistoryBucket) wire.HistorySeries {
	n := len(b)
	vals := make([]float64, 6*n) // one backing array for every point
	s := wire.HistorySeries{Name: name, Device: dev,
		Util: make([]*float64, n), UtilMax: make([]*float64, n), Power: make([]*float64, n),
		MemUsed: make([]*float64, n), TempMax: make([]*float64, n), Idle: make([]*float64, n)}
	set := func(dst []*float64, k, i int, v float64) {
		vals[6*i+k] = v
		dst[i] = &vals[6*i+k]
	}
	for i := range b {
		h := &b[i]
		if h.UtilN > 0 {
			set(s.Util, 0, i, h.UtilSum/float64(h.UtilN))
			set(s.UtilMax, 1, i, h.UtilMax)
		}
		if h.PowerN > 0 {
			set(s.Power, 2, i, h.Power)
		}
		if h.MemN > 0 {
			set(s.MemUsed, 3, i, h.MemUsed)
		}
		if h.TempN > 0 {
			set(s.TempMax, 4, i, h.TempMax)
		}
		if h.Reported > 0 {
			set(s.Idle, 5, i, float64(h.Idle)/float64(h.Reported))
		}
	}
	return s
}

// ringHistory sums the ring points of the nodes in q's scope that fall in
// [cut, to) into buckets of step, per group (a device, a region or all).
// Point k before a node's newest stands at lastSeen − k × interval.
func (s *Server) ringHistory(q historyQuery, by string, w ringWindow, bucketsOf func(string) []fleet.HistoryBucket) {
	if !w.to.After(w.cut) || w.interval <= 0 {
		return
	}
	var nodes []*nodeState
	if q.node != "" {
		if n := s.node(q.node); n != nil {
			nodes = []*nodeState{n}
		}
	} else {
		nodes = s.nodeList()
	}
	for _, n := range nodes {
		n.mu.Lock()
		if q.region != "" && n.node.Region != q.region || n.lastSeen.IsZero() {
			n.mu.Unlock()
			continue
		}
		group := ""
		if by == "region" {
			group = n.node.Region
		}
		for di := range n.devs {
			d := &n.devs[di]
			if d.hist == nil {
				continue
			}
			if by == "device" {
				group = strconv.Itoa(n.node.Devices[di].Index)
			}
			w.deviceSteps(d.hist, n.lastSeen, func(i int, b *fleet.HistoryBucket) {
				addBucket(&bucketsOf(group)[i], b)
			})
		}
		n.mu.Unlock()
	}
}

// ringWindow is the part of a history answer the ring gives: the points
// from cut up to to, one every interval, in steps of step from from.
type ringWindow struct {
	from, cut, to  time.Time
	step, interval time.Duration
	idle           float64 // the idle threshold
}

// deviceSteps sums one device's ring, its newest point at end, into the
// window's steps and hands each step that has data to emit.
func (w *ringWindow) deviceSteps(h *history, end time.Time, emit func(step int, b *fleet.HistoryBucket)) {
	ivMs := w.interval.Milliseconds()
	var acc devStep
	cur, k := -1, 0
	done := func() {
		if cur >= 0 && acc.sum.Reported > 0 {
			b := acc.bucket()
			emit(cur, &b)
		}
		acc = devStep{}
	}
	h.newestFirst(func(p point) bool {
		t := end.Add(-time.Duration(k) * w.interval)
		k++
		if t.Before(w.cut) {
			return false
		}
		if !t.Before(w.to) {
			return true
		}
		if i := int(t.Sub(w.from) / w.step); i != cur {
			done()
			cur = i
		}
		acc.add(p, w.idle, ivMs)
		return true
	})
	done()
}

// devStep sums one device's ring points within one step.
type devStep struct {
	sum    fleet.HistoryBucket
	pn, mn int // the power and memory points, for their means
}

// add adds one point that covers ivMs.
func (d *devStep) add(p point, idle float64, ivMs int64) {
	b := &d.sum
	got := false
	if p.util != absent8 {
		u := float64(p.util) / utilScale
		b.UtilN++
		b.UtilSum += u
		b.UtilMax = max(b.UtilMax, u)
		if u < idle {
			b.Idle += ivMs
		}
		got = true
	}
	if p.power != absent16 {
		b.Power += float64(p.power) / powerScale
		b.PowerN = 1
		d.pn++
		got = true
	}
	if p.mem != absent16 {
		b.MemUsed += float64(p.mem) * memUnit
		b.MemN = 1
		d.mn++
		got = true
	}
	if p.temp != absent8 {
		tc := float64(p.temp)
		if b.TempN == 0 || tc > b.TempMax {
			b.TempMax = tc
		}
		b.TempN = 1
		got = true
	}
	if got {
		b.Reported += ivMs
	}
}

// bucket is the step's sums with the device's power and memory as means:
// the device counts once in a group's sums.
func (d *devStep) bucket() fleet.HistoryBucket {
	b := d.sum
	if d.pn > 0 {
		b.Power /= float64(d.pn)
	}
	if d.mn > 0 {
		b.MemUsed /= float64(d.mn)
	}
	return b
}

// newestFirst calls fn with the history's points, newest first, one per
// sample (as points returns them), until fn returns false.
func (h *history) newestFirst(fn func(p point) bool) {
	seen := 0
	for k := 0; k < int(h.n); k++ {
		if !fn(h.fine[(int(h.next)-1-k+2*fineLen)%fineLen]) {
			return
		}
		seen++
	}
	if h.acc.k > 0 {
		p := h.acc.mean()
		for range h.acc.k {
			if seen == historyLen || !fn(p) {
				return
			}
			seen++
		}
	}
	for k := 0; k < int(h.cn); k++ {
		p := h.coarse[(int(h.cnext)-1-k+2*coarseLen)%coarseLen]
		for range coarseStep {
			if seen == historyLen || !fn(p) {
				return
			}
			seen++
		}
	}
}
