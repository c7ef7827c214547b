package aggregator

import (
	"cmp"
	"encoding/json"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// rowEntry is one node's list row, rebuilt only when the node changed (or
// its state aged), and encoded only when a page shows it. The hub goroutine
// owns it. js is never modified once set (published messages share it).
type rowEntry struct {
	n      *nodeState
	ver    uint64 // node version the row was built from
	gen    uint64 // bumped whenever row changes; pages compare it
	row    wire.NodeRow
	util   float64 // NaN: unknown
	hot    float64 // NaN: unknown
	burn   int64
	idle   int64
	seen   time.Time // last heard (the row carries it only when not online)
	jur    string    // jurisdiction
	search string    // lower case
	js     []byte    // nil until encoded for this gen
	// The node generation (nodeState.gen) row.Models and search were built
	// from: identity and inventory change only with it, so a row rebuilt
	// for new values keeps them unless its jobs changed too.
	sgen uint64
}

// rowValues are the live figures of a node's list row. apply takes them
// after each frame, while the node's samples are in the cache: taken by the
// hub instead, up to 20 times a second, each node's devices and processes
// are read cold (2–3 µs a node at 1,250 nodes, the largest part of a
// publication). Guarded by the node's lock.
type rowValues struct {
	ver                      uint64 // the node version they were taken at; 0: never
	idleGPUs                 int
	memUsed, memTotal, power float64
	util, hot                float64     // NaN: unknown
	jobs                     []string    // sorted; never modified once set (rows share it)
	burn                     fleet.Money // per hour
}

// takeRowValues fills rv from n's latest samples, processes and lease at
// node version ver. Caller holds n.mu.
func (s *Server) takeRowValues(n *nodeState, rv *rowValues, ver uint64) {
	rv.ver = ver
	rv.idleGPUs, rv.memUsed, rv.memTotal, rv.power = 0, 0, 0, 0
	rv.util, rv.hot = math.NaN(), math.NaN()
	var usum float64
	var un int
	idleT := s.cfg.IdleThreshold
	for i := range n.devs {
		ds := &n.devs[i]
		total := ds.memTotal
		if ds.seen {
			if u, ok := ds.latest.Get(fleet.MetricUtil); ok && finite(u) {
				usum += u
				un++
				if u < idleT {
					rv.idleGPUs++
				}
			}
			if v, ok := ds.latest.Get(fleet.MetricMemUsed); ok && finite(v) {
				rv.memUsed += v
			}
			if v, ok := ds.latest.Get(fleet.MetricMemTotal); ok && finite(v) && v > 0 {
				total = v
			}
			if v, ok := ds.latest.Get(fleet.MetricPower); ok && finite(v) {
				rv.power += v
			}
			if v, ok := ds.latest.Get(fleet.MetricTemp); ok && finite(v) && (math.IsNaN(rv.hot) || v > rv.hot) {
				rv.hot = v
			}
		}
		rv.memTotal += total
	}
	if un > 0 {
		rv.util = usum / float64(un)
	}
	var buf [8]string
	jobs := buf[:0]
	for i := range n.procs {
		if id := n.procs[i].Job.ID; id != "" && !slices.Contains(jobs, id) {
			jobs = append(jobs, id)
		}
	}
	slices.Sort(jobs)
	if !slices.Equal(jobs, rv.jobs) {
		rv.jobs = slices.Clip(slices.Clone(jobs))
	}
	rv.burn = s.burn(n)
}

// buildRow fills e from n, whose version is ver. Caller holds n.mu.
func (s *Server) buildRow(e *rowEntry, n *nodeState, ver uint64, now time.Time) {
	rv := &n.row
	if rv.ver != ver || ver == e.ver {
		// Not taken by apply (Hello, a status, a restart), or the row is
		// rebuilt only because its state aged: the burn may have moved.
		s.takeRowValues(n, rv, ver)
	}
	nd := &n.node
	r := wire.NodeRow{ID: n.id, Hostname: nd.Hostname, Region: nd.Region, Provider: nd.Provider, State: s.stateAt(n, now), GPUs: len(n.devs),
		IdleGPUs: rv.idleGPUs, MemUsed: rv.memUsed, MemTotal: rv.memTotal, Power: rv.power, Jobs: rv.jobs}
	e.seen = n.lastSeen
	e.jur = nd.Jurisdiction
	if r.State != wire.StateOnline {
		r.LastSeen = n.lastSeen
	}
	e.util, e.hot = rv.util, rv.hot
	if !math.IsNaN(e.util) {
		u := e.util
		r.Util = &u
	}
	if !math.IsNaN(e.hot) {
		h := e.hot
		r.Hottest = &h
	}
	r.BurnPerHour = rv.burn
	if r.GPUs > 0 {
		r.IdleBurn = fleet.Money{Micros: r.BurnPerHour.Micros * int64(r.IdleGPUs) / int64(r.GPUs), Currency: r.BurnPerHour.Currency}
	}
	e.burn, e.idle = r.BurnPerHour.Micros, r.IdleBurn.Micros
	if e.sgen != 0 && e.sgen == n.gen && slices.Equal(r.Jobs, e.row.Jobs) {
		// Same identity, inventory and jobs: the model counts (never
		// modified once built, so rows may share them) and the search text
		// stand.
		r.Models = e.row.Models
		e.row = r
		e.gen++
		e.js = nil
		return
	}
	for i := range n.devs {
		if r.Models == nil {
			r.Models = map[string]int{}
		}
		r.Models[n.node.Devices[i].Model]++
	}
	e.sgen = n.gen
	var sb strings.Builder
	for _, x := range []string{r.ID, r.Hostname, r.Region, nd.Site, nd.Jurisdiction, r.Provider, nd.Lease.ID} {
		sb.WriteString(x)
		sb.WriteByte(' ')
	}
	for m := range r.Models {
		sb.WriteString(m)
		sb.WriteByte(' ')
	}
	for _, j := range r.Jobs {
		sb.WriteString(j)
		sb.WriteByte(' ')
	}
	e.search = strings.ToLower(sb.String())
	e.row = r
	e.gen++
	e.js = nil
}

// matches reports whether the row passes filter q (lower case).
func (e *rowEntry) matches(q string) bool {
	return q == "" || strings.Contains(e.search, q) || strings.Contains(e.row.State, q)
}

// encoded returns the row's JSON, encoding it once per change.
func (e *rowEntry) encoded() []byte {
	if e.js == nil {
		b, err := json.Marshal(&e.row)
		if err != nil { // cannot happen: finite figures only
			b = []byte(`{"id":` + string(appendString(nil, e.row.ID)) + `}`)
		}
		e.js = b
	}
	return e.js
}

// normNodeQuery bounds a query and lower-cases its filter.
func normNodeQuery(q wire.NodeQuery) wire.NodeQuery {
	if !wire.KnownNodeSort(q.Sort) {
		q.Sort = wire.SortDefault
	}
	q.Filter = strings.ToLower(strings.TrimSpace(q.Filter))
	q.Offset = max(q.Offset, 0)
	q.Limit = min(max(q.Limit, 0), wire.MaxPageRows)
	return q
}

func normJobQuery(q wire.JobQuery) wire.JobQuery {
	switch q.Sort {
	case wire.JobSortID, wire.JobSortBurn, wire.JobSortUtil, wire.JobSortGPUs, wire.JobSortTeam, wire.JobSortResidency:
	default:
		q.Sort = wire.JobSortID
	}
	q.Filter = strings.ToLower(strings.TrimSpace(q.Filter))
	q.Offset = max(q.Offset, 0)
	q.Limit = min(max(q.Limit, 0), wire.MaxPageRows)
	return q
}

// key is what the node sorts read of e.
func (e *rowEntry) key() wire.NodeKey {
	r := &e.row
	return wire.NodeKey{Region: r.Region, Hostname: r.Hostname, ID: r.ID, State: r.State, Provider: r.Provider,
		Util: e.util, Hottest: e.hot, Burn: e.burn, Power: r.Power, MemUsed: r.MemUsed, Jobs: r.Jobs}
}

// pageRows returns how many rows pass q's filter and the rows of its page,
// in order. It sorts only the page: selecting the rows of ranks
// [Offset, Offset+Limit) takes about 3 comparisons a row on average where
// a full sort takes ~14 at 12,500 rows (100,000 GPUs), up to ten times a
// second. The order is total (ties end on the node id), so the page does
// not depend on how the selection pivots.
func pageRows(rows []*rowEntry, q wire.NodeQuery) (total int, page []*rowEntry) {
	if q.Filter == "" {
		total = len(rows)
	} else {
		for _, e := range rows {
			if e.matches(q.Filter) {
				total++
			}
		}
	}
	if q.Limit <= 0 || q.Offset >= total {
		return total, nil
	}
	out := make([]*rowEntry, 0, total)
	for _, e := range rows {
		if e.matches(q.Filter) {
			out = append(out, e)
		}
	}
	hi := min(total, q.Offset+q.Limit)
	selectRange(out, q.Offset, hi, wire.NodeOrder(q, (*rowEntry).key))
	return total, out[q.Offset:hi]
}

// defaultOrder keeps the rows sorted in the default order (region,
// hostname, id), which changes only when nodes come or go or one's placement
// or hostname changes: the viewers that page in it (every viewer until it
// sorts, and the default subscription) get their page without a selection
// over every row at each publication, which read each row's cold strings
// (2 % of the aggregator's CPU with 10 viewers at 10,000 GPUs).
type defaultOrder struct {
	rows  []*rowEntry
	stale bool // rows must be sorted again from the hub's list
}

// defaultSort reports whether q pages in the default order.
func defaultSort(q wire.NodeQuery) bool {
	return q.Sort == wire.SortDefault || !wire.KnownNodeSort(q.Sort)
}

// page is pageRows(all, q) for a q in the default order (defaultSort), all
// being every row.
func (d *defaultOrder) page(all []*rowEntry, q wire.NodeQuery) (total int, page []*rowEntry) {
	if d.stale || len(d.rows) != len(all) {
		d.rows = append(d.rows[:0], all...)
		slices.SortFunc(d.rows, wire.NodeOrder(wire.NodeQuery{}, (*rowEntry).key))
		d.stale = false
	}
	at := func(i int) *rowEntry { // the i-th row in q's direction
		if q.Desc {
			return d.rows[len(d.rows)-1-i]
		}
		return d.rows[i]
	}
	hi := q.Offset + max(q.Limit, 0)
	if q.Filter == "" {
		for i := max(q.Offset, 0); i < min(hi, len(d.rows)); i++ {
			page = append(page, at(i))
		}
		return len(d.rows), page
	}
	for i := range d.rows {
		if e := at(i); e.matches(q.Filter) {
			if total >= q.Offset && total < hi {
				page = append(page, e)
			}
			total++
		}
	}
	return total, page
}

// selectRange reorders a so that a[lo:hi] holds, sorted, the elements that
// a full sort by cmp would put there: quickselect towards the range (median
// of three; sorted or reversed input partitions evenly), then a sort of
// what is left around it. Like introselect, it falls back to sorting when
// partitions keep coming out lopsided, so no input costs more than a sort.
// cmp must be a total order.
func selectRange[T any](a []T, lo, hi int, cmp func(a, b T) int) {
	budget := 2 * bits.Len(uint(len(a)))
	for len(a) > 16 && lo < hi {
		if budget--; budget < 0 {
			slices.SortFunc(a, cmp)
			return
		}
		m, last := len(a)/2, len(a)-1
		if cmp(a[m], a[0]) < 0 {
			a[m], a[0] = a[0], a[m]
		}
		if cmp(a[last], a[0]) < 0 {
			a[last], a[0] = a[0], a[last]
		}
		if cmp(a[last], a[m]) < 0 {
			a[last], a[m] = a[m], a[last]
		}
		// Partition around the median, moved to the end.
		a[m], a[last] = a[last], a[m]
		p := 0
		for i := range last {
			if cmp(a[i], a[last]) < 0 {
				a[i], a[p] = a[p], a[i]
				p++
			}
		}
		a[p], a[last] = a[last], a[p]
		// a[:p] < a[p] < a[p+1:]
		switch {
		case hi <= p:
			a = a[:p]
		case lo > p:
			a, lo, hi = a[p+1:], lo-p-1, hi-p-1
		default: // the range spans the pivot: the left part's tail, the right part's head
			if lo < p {
				selectRange(a[:p], lo, p, cmp)
			}
			a, lo, hi = a[p+1:], 0, hi-p-1
		}
	}
	if lo < hi { // at most 16 left
		slices.SortFunc(a, cmp)
	}
}

// jobPage filters, sorts and pages jobs for q.
func jobPage(jobs []wire.JobView, q wire.JobQuery) wire.JobPage {
	p := wire.JobPage{Query: q, Offset: q.Offset, Jobs: []wire.JobView{}}
	idx := make([]int, 0, len(jobs))
	for i := range jobs {
		if q.Filter == "" || strings.Contains(jobSearch(&jobs[i]), q.Filter) {
			idx = append(idx, i)
		}
	}
	byID := func(a, b *wire.JobView) int { return strings.Compare(a.ID, b.ID) }
	var key func(a, b *wire.JobView) int
	switch q.Sort {
	case wire.JobSortBurn:
		key = func(a, b *wire.JobView) int { return cmp.Compare(b.BurnPerHour.Micros, a.BurnPerHour.Micros) }
	case wire.JobSortUtil:
		key = func(a, b *wire.JobView) int { return cmp.Compare(b.Util, a.Util) }
	case wire.JobSortGPUs:
		key = func(a, b *wire.JobView) int { return cmp.Compare(b.GPUs, a.GPUs) }
	case wire.JobSortTeam:
		key = func(a, b *wire.JobView) int { return strings.Compare(a.Team, b.Team) }
	case wire.JobSortResidency:
		key = func(a, b *wire.JobView) int { return cmp.Compare(boolRank(a.Allowed), boolRank(b.Allowed)) }
	}
	order := func(a, b int) int {
		c := 0
		if key != nil {
			c = key(&jobs[a], &jobs[b])
		}
		if c == 0 {
			c = byID(&jobs[a], &jobs[b])
		}
		if q.Desc {
			c = -c
		}
		return c
	}
	slices.SortFunc(idx, order)
	p.Total = len(idx)
	for i := q.Offset; i < len(idx) && i < q.Offset+q.Limit; i++ {
		p.Jobs = append(p.Jobs, jobs[idx[i]])
	}
	return p
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func jobSearch(j *wire.JobView) string {
	s := strings.ToLower(strings.Join([]string{j.ID, j.Team, j.DataClass,
		strings.Join(j.Regions, " "), strings.Join(j.Jurisdictions, " "), strings.Join(j.Nodes, " "), j.Violation}, " "))
	if !j.Allowed {
		s += " violation"
	}
	return s
}

// fleetView adds the rows up into the fleet aggregates.
func fleetView(rows []*rowEntry, sum wire.Summary, jobs int, alerts []fleet.Alert) wire.FleetView {
	fv := wire.FleetView{Summary: sum, Jobs: jobs, AlertsTotal: len(alerts), Regions: []wire.RegionRow{}, LeasesEnding: len(sum.LeasesEnding)}
	if len(sum.LeasesEnding) > wire.MaxFleetLeases { // one per node: keep the soonest
		ls := slices.Clone(sum.LeasesEnding)
		slices.SortStableFunc(ls, func(a, b wire.LeaseEnding) int { return a.End.Compare(b.End) })
		fv.Summary.LeasesEnding = ls[:wire.MaxFleetLeases]
	}
	type acc struct {
		row       wire.RegionRow
		tot       wire.RegionTotals
		providers map[string]bool
	}
	byRegion := map[string]*acc{}
	var idle, dark []*rowEntry
	for _, e := range rows {
		r := &e.row
		a := byRegion[r.Region]
		if a == nil {
			a = &acc{row: wire.RegionRow{Region: r.Region, Jurisdiction: e.jur, Models: map[string]int{}}, providers: map[string]bool{}}
			byRegion[r.Region] = a
		}
		rr := &a.row
		a.tot.AddNode(r.State, r.GPUs, e.util, r.MemUsed, r.MemTotal, r.Power)
		a.providers[r.Provider] = true
		for m, k := range r.Models {
			rr.Models[m] += k
		}
		addMoney(&rr.BurnPerHour, r.BurnPerHour)
		addMoney(&rr.IdleBurn, r.IdleBurn)
		if e.idle > 0 {
			idle = append(idle, e)
		}
		if e.burn > 0 && r.State == wire.StateOffline {
			dark = append(dark, e)
		}
	}
	for i := range alerts {
		al := &alerts[i]
		if !al.Open() {
			continue
		}
		if a := byRegion[al.Region]; a != nil {
			a.row.AlertsOpen++
		}
	}
	// The cost engine's per-region figures, when present, are authoritative.
	for _, c := range sum.Costs {
		if a := byRegion[c.Group]; a != nil && c.By == "region" {
			a.row.Burn = c.Burn
		}
	}
	for _, a := range byRegion {
		a.tot.Fill(&a.row)
		for p := range a.providers {
			a.row.Providers = append(a.row.Providers, p)
		}
		slices.Sort(a.row.Providers)
		fv.Regions = append(fv.Regions, a.row)
	}
	slices.SortFunc(fv.Regions, func(a, b wire.RegionRow) int { return strings.Compare(a.Region, b.Region) })
	fv.Alerts = slices.Clone(alerts)
	slices.SortFunc(fv.Alerts, fleet.CompareAlerts)
	if len(fv.Alerts) > wire.MaxFleetAlerts {
		fv.Alerts = fv.Alerts[:wire.MaxFleetAlerts]
	}
	fv.IdleNodes, fv.IdleTop = len(idle), topRows(idle, func(e *rowEntry) int64 { return e.idle })
	fv.DarkNodes, fv.DarkTop = len(dark), topRows(dark, func(e *rowEntry) int64 { return e.burn })
	return fv
}

// addMoney adds m to dst when the currencies agree (the first one wins).
func addMoney(dst *fleet.Money, m fleet.Money) {
	if m.Micros == 0 {
		return
	}
	if dst.Currency == "" {
		dst.Currency = m.Currency
	}
	if dst.Currency == m.Currency {
		dst.Micros += m.Micros
	}
}

// topRows returns the rows of the first wire.FleetIdleTop of es by by,
// largest first (ties by node id); it reorders es.
func topRows(es []*rowEntry, by func(*rowEntry) int64) []wire.NodeRow {
	k := min(len(es), wire.FleetIdleTop)
	selectRange(es, 0, k, func(a, b *rowEntry) int {
		if c := cmp.Compare(by(b), by(a)); c != 0 {
			return c
		}
		return strings.Compare(a.row.ID, b.row.ID)
	})
	var out []wire.NodeRow
	for _, e := range es[:k] {
		out = append(out, e.row)
	}
	return out
}
