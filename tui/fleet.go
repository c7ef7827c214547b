package tui

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// ConnState is the state of the link to one aggregator.
type ConnState int

// Link states.
const (
	ConnConnecting ConnState = iota
	ConnLive
	ConnDown
)

func (c ConnState) String() string {
	switch c {
	case ConnLive:
		return "live"
	case ConnDown:
		return "down"
	default:
		return "connecting"
	}
}

// ConnStatus is what the viewer knows about one aggregator link.
type ConnStatus struct {
	Name     string // the aggregator's name once known, else its URL
	URL      string
	State    ConnState
	Err      string    // last error, "" when none
	Since    time.Time // when State was entered
	LastData time.Time // local time of the last message
}

// NodeRow is one node with the figures the tables need, derived once when
// the node's view arrives (never in View).
type NodeRow struct {
	View *wire.NodeView
	Agg  int // index of the aggregator that reports it
	GPUs int
	Util float64 // mean over devices that report it; NaN when none do
	// SMActive is the mean profiling SM activity (DCGM_FI_PROF_SM_ACTIVE)
	// over the GPUs that report it; NaN when none do (no GPM).
	SMActive float64
	MemUsed  float64
	MemTotal float64
	Power    float64
	Hottest  float64 // °C; NaN when unknown
	Models   string  // "H100×8"
	Jobs     []string
	IdleGPUs int
	Burn     int64 // display currency micros per hour (converted)
	IdleBurn int64
	search   string // lower-case text the filter matches against
}

// RegionRow is one region of the Fleet view.
type RegionRow struct {
	Region, Jurisdiction string
	Providers            string
	wire.RegionTotals    // nodes by state, GPUs, memory, power
	Models               string
	Util                 float64 // NaN when unknown
	Burn, IdleBurn       int64
	Alerts               int
	search               string
}

// JobRow is a job merged over every aggregator that sees it.
type JobRow struct {
	wire.JobView
	BurnMicros, SpendMicros int64 // display currency
	search                  string
}

// Snapshot is an immutable picture of the merged fleet, built at most once a
// second off the UI goroutine. Pages keep their own sorted indices into it.
type Snapshot struct {
	Built    time.Time // local time it was built
	Currency string    // display currency code
	// Unconverted is true when some amounts were in a currency without a
	// configured rate and were left out of the totals.
	Unconverted bool
	Summary     wire.Summary // merged; money in Currency
	Nodes       []*NodeRow   // by region, then hostname
	Regions     []RegionRow  // by region name
	Jobs        []JobRow     // by id
	Alerts      []fleet.Alert
	Costs       []wire.CostLine
	Leases      []wire.LeaseEnding
	Conns       []ConnStatus
	nodeByID    map[string]*NodeRow

	// Paged is true when the aggregators watch by subscription (version 2):
	// Nodes is then the subscribed page of the node list, in the server's
	// order, starting at NodesOffset of NodesTotal; Jobs likewise. When
	// false, Nodes and Jobs hold everything and the pages sort and filter
	// themselves.
	Paged                   bool
	NodesOffset, NodesTotal int
	JobsOffset, JobsTotal   int
	NodesKnown              int        // nodes in the fleet, whatever the filter
	JobsKnown               int        // jobs known, whatever the filter
	LeasesEnding            int        // leases ending within the horizon (Paged: Leases holds the soonest)
	IdleTop                 []*NodeRow // nodes whose idle GPUs burn most (Paged)
	IdleNodes               int        // nodes with idle burn (Paged)
	DarkTop                 []*NodeRow // offline nodes that cost most (Paged)
	DarkNodes               int        // offline nodes that cost money (Paged)
}

// Node returns the row of node id, or nil.
func (s *Snapshot) Node(id string) *NodeRow {
	if s == nil {
		return nil
	}
	return s.nodeByID[id]
}

// Job returns the row of job id, or nil.
func (s *Snapshot) Job(id string) *JobRow {
	if s == nil {
		return nil
	}
	for i := range s.Jobs {
		if s.Jobs[i].ID == id {
			return &s.Jobs[i]
		}
	}
	return nil
}

// firstNodeID and firstJobID name the first node and job in s (what the
// Node and Job pages show until one is chosen); "" when there is none.
func (s *Snapshot) firstNodeID() string {
	if len(s.Nodes) == 0 {
		return ""
	}
	return s.Nodes[0].View.ID
}

func (s *Snapshot) firstJobID() string {
	if len(s.Jobs) == 0 {
		return ""
	}
	return s.Jobs[0].ID
}

// Dark reports whether no aggregator is live (every figure is old).
func (s *Snapshot) Dark() bool {
	if len(s.Conns) == 0 {
		return false
	}
	for _, c := range s.Conns {
		if c.State == ConnLive {
			return false
		}
	}
	return true
}

// LastData is the newest local time any aggregator sent data.
func (s *Snapshot) LastData() time.Time {
	var t time.Time
	for _, c := range s.Conns {
		if c.LastData.After(t) {
			t = c.LastData
		}
	}
	return t
}

// Merger merges the watch streams of several aggregators. It is owned by one
// goroutine (the source's merger, or a test).
type Merger struct {
	display string
	idle    float64
	aggs    []*aggState
	changed bool
	query   wire.NodeQuery // the node page the viewer wants (merging pages of several aggregators)
}

// SetQuery records the node page the viewer wants.
func (f *Merger) SetQuery(q wire.NodeQuery) {
	f.query = q
	f.changed = true
}

type aggState struct {
	conn    ConnStatus
	nodes   map[string]*NodeRow // v1: every node; v2: the open node, in full
	summary wire.Summary
	jobs    []wire.JobView
	alerts  []fleet.Alert

	// Version 2 (watch by subscription).
	paged   bool
	fleet   *wire.FleetView
	page    *wire.NodePage
	rows    map[string]*NodeRow // the page's rows
	jobPage *wire.JobPage
}

// NewMerger returns an empty merged fleet for the given aggregators. display is the
// display currency ("" = the first aggregator's); every aggregator converts
// its money into its own display currency, so the TUI converts nothing:
// amounts in another currency are left out of the totals and flagged
// (Snapshot.Unconverted). idle is the utilisation below which a GPU counts
// as idle.
func NewMerger(endpoints []Endpoint, display string, idle float64) *Merger {
	f := &Merger{display: display, idle: idle}
	for _, e := range endpoints {
		f.aggs = append(f.aggs, &aggState{
			conn:  ConnStatus{Name: e.URL, URL: e.URL},
			nodes: map[string]*NodeRow{},
			rows:  map[string]*NodeRow{},
		})
	}
	f.changed = true
	return f
}

// SetConn records a link state change.
func (f *Merger) SetConn(agg int, st ConnState, err error, now time.Time) {
	c := &f.aggs[agg].conn
	if c.State != st {
		c.Since = now
	}
	c.State = st
	c.Err = ""
	if err != nil {
		c.Err = err.Error()
	}
	f.changed = true
}

// Apply merges one watch message from aggregator agg.
func (f *Merger) Apply(agg int, m *wire.WatchMsg, now time.Time) {
	a := f.aggs[agg]
	if m.Aggregator != "" {
		a.conn.Name = m.Aggregator
	}
	a.conn.LastData = now
	if m.Version >= 2 {
		f.applyPaged(a, agg, m)
		return
	}
	a.paged = false
	if m.Kind == wire.WatchSnapshot {
		clear(a.nodes)
	}
	for i := range m.Nodes {
		nv := m.Nodes[i]
		a.nodes[nv.ID] = f.nodeRow(&nv, agg)
	}
	for _, id := range m.Removed {
		delete(a.nodes, id)
	}
	a.summary = m.Summary
	a.jobs = m.Jobs
	a.alerts = m.Alerts
	f.changed = true
}

// applyPaged merges a version 2 or 3 message: a snapshot replaces
// everything, an update replaces the sections it holds.
func (f *Merger) applyPaged(a *aggState, agg int, m *wire.WatchMsg) {
	if m.Kind == wire.WatchSnapshot || !a.paged {
		a.paged = true
		clear(a.nodes)
		clear(a.rows)
		a.fleet, a.page, a.jobPage, a.jobs, a.alerts = nil, nil, nil, nil, nil
		a.summary = wire.Summary{}
	}
	if m.Fleet != nil {
		a.fleet = m.Fleet
		a.summary = m.Fleet.Summary
		if m.Version <= wire.WatchVersionAlertsInFleet {
			a.alerts = m.Fleet.Alerts
		}
	}
	if m.FleetAlerts != nil {
		a.alerts = m.FleetAlerts.Alerts
	}
	if m.Page != nil {
		a.page = m.Page
		keep := make(map[string]bool, len(m.Page.IDs))
		for _, id := range m.Page.IDs {
			keep[id] = true
		}
		for id := range a.rows {
			if !keep[id] {
				delete(a.rows, id)
			}
		}
	}
	for i := range m.Rows {
		a.rows[m.Rows[i].ID] = f.pagedRow(&m.Rows[i], agg)
	}
	if len(m.Nodes) > 0 {
		clear(a.nodes)
		for i := range m.Nodes {
			nv := m.Nodes[i]
			a.nodes[nv.ID] = f.nodeRow(&nv, agg)
		}
	}
	for _, id := range m.Removed { // the open node was forgotten
		delete(a.nodes, id)
	}
	if m.JobPage != nil {
		a.jobPage = m.JobPage
		a.jobs = m.JobPage.Jobs
	}
	f.changed = true
}

// pagedRow turns a version 2 row into the tables' NodeRow. Its View holds
// the node's identity only (no devices): the Node view gets the full view.
func (f *Merger) pagedRow(r *wire.NodeRow, agg int) *NodeRow {
	nv := &wire.NodeView{ID: r.ID, Hostname: r.Hostname, Region: r.Region, Provider: r.Provider, State: r.State,
		LastSeen: r.LastSeen, BurnPerHour: r.BurnPerHour}
	row := &NodeRow{View: nv, Agg: agg, GPUs: r.GPUs, Util: math.NaN(), Hottest: math.NaN(), MemUsed: r.MemUsed,
		MemTotal: r.MemTotal, Power: r.Power, IdleGPUs: r.IdleGPUs, Jobs: r.Jobs}
	if r.Util != nil {
		row.Util = *r.Util
	}
	if r.Hottest != nil {
		row.Hottest = *r.Hottest
	}
	models := map[string]int{}
	for m, k := range r.Models {
		models[ShortModel(m)] += k
	}
	row.Models = modelsString(models)
	row.search = strings.ToLower(strings.Join([]string{nv.ID, nv.Hostname, nv.Region, nv.Provider, nv.State,
		row.Models, strings.Join(row.Jobs, " ")}, " "))
	return row
}

// Changed reports whether anything arrived since the last Snapshot.
func (f *Merger) Changed() bool { return f.changed }

// convert returns m's micro-units when m is in display (or carries no
// currency); ok is false for any other currency: the aggregators convert,
// the TUI never does.
func (f *Merger) convert(m fleet.Money, display string) (int64, bool) {
	if m.Micros == 0 || m.Currency == "" || strings.EqualFold(m.Currency, display) {
		return m.Micros, true
	}
	return 0, false
}

func (f *Merger) displayCurrency() string {
	if f.display != "" {
		return strings.ToUpper(f.display)
	}
	for _, a := range f.aggs {
		if a.summary.Currency != "" {
			return a.summary.Currency
		}
	}
	for _, a := range f.aggs {
		for _, n := range a.nodes {
			if c := n.View.BurnPerHour.Currency; c != "" {
				return c
			}
		}
	}
	return "USD"
}

func (f *Merger) nodeRow(nv *wire.NodeView, agg int) *NodeRow {
	r := &NodeRow{View: nv, Agg: agg, Util: math.NaN(), SMActive: math.NaN(), Hottest: math.NaN()}
	var usum, smsum float64
	var un, smn int
	models := map[string]int{}
	for i := range nv.Devices {
		d := &nv.Devices[i]
		if d.Instance.Profile != "" {
			continue // a MIG instance: its GPU's figures already include it
		}
		r.GPUs++
		models[ShortModel(d.Model)]++
		u, ok := deviceUtil(d)
		if ok {
			usum += u
			un++
			if u < f.idle {
				r.IdleGPUs++
			}
		}
		if v, ok := d.Metrics["mem_used"]; ok {
			r.MemUsed += v
		}
		total := float64(d.MemoryTotal)
		if v, ok := d.Metrics["mem_total"]; ok && v > 0 {
			total = v
		}
		r.MemTotal += total
		if v, ok := d.Metrics["power"]; ok {
			r.Power += v
		}
		if v, ok := d.Metrics["temp"]; ok && (math.IsNaN(r.Hottest) || v > r.Hottest) {
			r.Hottest = v
		}
		if v, ok := d.Metrics["sm_active"]; ok {
			smsum += v
			smn++
		}
	}
	if un > 0 {
		r.Util = usum / float64(un)
	}
	if smn > 0 {
		r.SMActive = smsum / float64(smn)
	}
	r.Models = modelsString(models)
	seen := map[string]bool{}
	for _, p := range nv.Procs {
		if p.Job.ID != "" && !seen[p.Job.ID] {
			seen[p.Job.ID] = true
			r.Jobs = append(r.Jobs, p.Job.ID)
		}
	}
	slices.Sort(r.Jobs)
	r.search = strings.ToLower(strings.Join([]string{nv.ID, nv.Hostname, nv.Region, nv.Site,
		nv.Jurisdiction, nv.Provider, nv.State, r.Models, strings.Join(r.Jobs, " "), nv.Lease.ID}, " "))
	return r
}

func deviceUtil(d *wire.DeviceView) (float64, bool) {
	if d.Util != nil {
		return *d.Util, true
	}
	v, ok := d.Metrics["util"]
	return v, ok
}

// modelsString writes "H100×8 910B×16", most numerous first.
func modelsString(models map[string]int) string {
	type mc struct {
		m string
		n int
	}
	list := make([]mc, 0, len(models))
	for m, n := range models {
		list = append(list, mc{m, n})
	}
	slices.SortFunc(list, func(a, b mc) int {
		if c := cmp.Compare(b.n, a.n); c != 0 {
			return c
		}
		return strings.Compare(a.m, b.m)
	})
	parts := make([]string, len(list))
	for i, x := range list {
		parts[i] = x.m + "×" + strconv.Itoa(x.n)
	}
	return strings.Join(parts, " ")
}

// Snapshot builds the merged picture. Its cost is linear in the fleet (plus
// one sort of the nodes); the source calls it at most once a second.
func (f *Merger) Snapshot(now time.Time) *Snapshot {
	f.changed = false
	b := newSnapBuilder(f, now)
	for ai, a := range f.aggs {
		b.s.Conns = append(b.s.Conns, a.conn)
		b.addSummary(a)
		b.addJobs(a)
		b.s.Alerts = append(b.s.Alerts, a.alerts...)
		b.addNodes(ai, a)
	}
	b.finishNodes()
	b.finishCosts()
	b.finishJobs()
	s := b.s
	slices.SortFunc(s.Alerts, fleet.CompareAlerts)
	slices.SortFunc(s.Leases, func(a, b wire.LeaseEnding) int { return a.End.Compare(b.End) })
	if s.Paged {
		s.Regions = pagedRegions(f, s, b.money)
	} else {
		s.Regions = buildRegions(s)
	}
	return s
}

// snapBuilder is one Snapshot being merged from the aggregators' states.
type snapBuilder struct {
	f     *Merger
	s     *Snapshot
	cur   string                       // display currency
	utilW float64                      // utilisation × online GPUs, summed
	costs map[[2]string]*wire.CostLine // by (by, group)
	jobs  map[string]*JobRow
}

func newSnapBuilder(f *Merger, now time.Time) *snapBuilder {
	cur := f.displayCurrency()
	s := &Snapshot{Built: now, Currency: cur, nodeByID: map[string]*NodeRow{}}
	s.Summary.Currency = cur
	return &snapBuilder{f: f, s: s, cur: cur, costs: map[[2]string]*wire.CostLine{}, jobs: map[string]*JobRow{}}
}

// money is m in the display currency; an amount in another currency counts
// as zero and flags the snapshot (the aggregators convert, not the TUI).
func (b *snapBuilder) money(m fleet.Money) int64 {
	v, ok := b.f.convert(m, b.cur)
	if !ok {
		b.s.Unconverted = true
	}
	return v
}

// inCur is m with the aggregator's currency when it names none.
func inCur(m fleet.Money, cur string) fleet.Money {
	if m.Currency == "" {
		m.Currency = cur
	}
	return m
}

// addSummary adds one aggregator's fleet summary and cost lines.
func (b *snapBuilder) addSummary(a *aggState) {
	sm, dst := &a.summary, &b.s.Summary
	dst.GPUsOnline += sm.GPUsOnline
	dst.GPUsStale += sm.GPUsStale
	dst.GPUsOffline += sm.GPUsOffline
	dst.NodesOnline += sm.NodesOnline
	dst.NodesStale += sm.NodesStale
	dst.NodesOffline += sm.NodesOffline
	dst.NodesDegraded += sm.NodesDegraded
	dst.GPUsLost += sm.GPUsLost
	dst.GPUsBlind += sm.GPUsBlind
	dst.AlertsOpen += sm.AlertsOpen
	b.utilW += sm.Util * float64(sm.GPUsOnline)
	add := func(to *fleet.Money, m fleet.Money) {
		to.Micros += b.money(inCur(m, sm.Currency))
		to.Currency = b.cur
	}
	addAll := func(to, from []*fleet.Money) {
		for i, m := range from {
			add(to[i], *m)
		}
	}
	addAll(dst.MoneyFields(), sm.MoneyFields())
	for _, c := range sm.Costs {
		k := [2]string{c.By, c.Group}
		line := b.costs[k]
		if line == nil {
			line = &wire.CostLine{By: c.By, Group: c.Group}
			b.costs[k] = line
		}
		line.GPUs += c.GPUs
		addAll(line.MoneyFields(), c.MoneyFields())
	}
	b.s.Leases = append(b.s.Leases, sm.LeasesEnding...)
}

// addJobs merges one aggregator's jobs: a job seen by two aggregators
// spans jurisdictions.
func (b *snapBuilder) addJobs(a *aggState) {
	for _, j := range a.jobs {
		burn, spend := inCur(j.BurnPerHour, a.summary.Currency), inCur(j.Spend, a.summary.Currency)
		jr := b.jobs[j.ID]
		if jr == nil {
			jr = &JobRow{JobView: j}
			jr.Regions = slices.Clone(j.Regions)
			jr.Jurisdictions = slices.Clone(j.Jurisdictions)
			jr.Nodes = slices.Clone(j.Nodes)
			jr.BurnMicros, jr.SpendMicros = b.money(burn), b.money(spend)
			b.jobs[j.ID] = jr
			continue
		}
		tot := jr.GPUs + j.GPUs
		if tot > 0 {
			jr.Util = (jr.Util*float64(jr.GPUs) + j.Util*float64(j.GPUs)) / float64(tot)
		}
		jr.GPUs = tot
		jr.Regions = union(jr.Regions, j.Regions)
		jr.Jurisdictions = union(jr.Jurisdictions, j.Jurisdictions)
		jr.Nodes = union(jr.Nodes, j.Nodes)
		jr.BurnMicros += b.money(burn)
		jr.SpendMicros += b.money(spend)
		if !j.Allowed {
			jr.Allowed = false
			if jr.Violation == "" {
				jr.Violation = j.Violation
			} else if j.Violation != "" && !strings.Contains(jr.Violation, j.Violation) {
				jr.Violation += "; " + j.Violation
			}
		}
	}
}

// price sets a node row's aggregator and its burn in the display currency.
func (b *snapBuilder) price(n *NodeRow, ai int) {
	n.Agg = ai
	n.Burn = b.money(n.View.BurnPerHour)
	if n.GPUs > 0 {
		n.IdleBurn = n.Burn * int64(n.IdleGPUs) / int64(n.GPUs)
	}
}

// addNodes adds aggregator ai's nodes: the page it sent and its ranked
// idle and dark nodes (watch by subscription), or every node (version 1).
func (b *snapBuilder) addNodes(ai int, a *aggState) {
	s := b.s
	if a.paged {
		s.Paged = true
		if a.page != nil {
			s.NodesTotal += a.page.Total
			s.NodesOffset = a.page.Offset
			for _, id := range a.page.IDs {
				if n := a.rows[id]; n != nil {
					b.price(n, ai)
					s.Nodes = append(s.Nodes, n)
					s.nodeByID[id] = n
				}
			}
		}
		if a.jobPage != nil {
			s.JobsTotal += a.jobPage.Total
			s.JobsOffset = a.jobPage.Offset
		}
		if fv := a.fleet; fv != nil {
			b.addFleetView(ai, fv)
		}
	}
	for _, n := range a.nodes {
		b.price(n, ai)
		if !a.paged {
			s.Nodes = append(s.Nodes, n)
			s.NodesKnown++
		}
		s.nodeByID[n.View.ID] = n
	}
}

// addFleetView adds what a paged aggregator ranks and counts fleet-wide.
func (b *snapBuilder) addFleetView(ai int, fv *wire.FleetView) {
	s := b.s
	s.IdleNodes += fv.IdleNodes
	s.IdleTop = b.addRanked(s.IdleTop, fv.IdleTop, ai)
	s.DarkNodes += fv.DarkNodes
	s.DarkTop = b.addRanked(s.DarkTop, fv.DarkTop, ai)
	for _, r := range fv.Regions {
		s.NodesKnown += r.Nodes
	}
	s.JobsKnown += fv.Jobs
	s.LeasesEnding += fv.LeasesEnding
}

// addRanked appends aggregator ai's ranked rows, priced, to dst.
func (b *snapBuilder) addRanked(dst []*NodeRow, rows []wire.NodeRow, ai int) []*NodeRow {
	for i := range rows {
		n := b.f.pagedRow(&rows[i], ai)
		b.price(n, ai)
		dst = append(dst, n)
	}
	return dst
}

// finishNodes orders the nodes (or merges the aggregators' pages) and
// ranks the idle and dark ones, once per snapshot rather than in View.
func (b *snapBuilder) finishNodes() {
	s, f := b.s, b.f
	if s.Summary.GPUsOnline > 0 {
		s.Summary.Util = b.utilW / float64(s.Summary.GPUsOnline)
	}
	if !s.Paged {
		slices.SortFunc(s.Nodes, cmpDefaultNode)
		s.NodesTotal, s.JobsTotal, s.JobsKnown = len(s.Nodes), len(b.jobs), len(b.jobs)
	} else if len(f.aggs) > 1 {
		// Each aggregator sent the first Offset+Limit rows of the query;
		// merge them and keep the page.
		s.Nodes = mergePage(s.Nodes, f.query)
		s.NodesOffset = f.query.Offset
		s.JobsOffset = 0
	}
	if !s.Paged {
		// A full-fleet stream: rank here.
		for _, r := range s.Nodes {
			if r.IdleBurn > 0 {
				s.IdleTop = append(s.IdleTop, r)
			}
			if r.View.State == wire.StateOffline && r.Burn > 0 {
				s.DarkTop = append(s.DarkTop, r)
			}
		}
		s.DarkNodes = len(s.DarkTop)
	}
	slices.SortStableFunc(s.DarkTop, func(a, b *NodeRow) int { return cmp.Compare(b.Burn, a.Burn) })
	slices.SortFunc(s.IdleTop, cmpIdleBurn)
	if len(s.IdleTop) > wire.FleetIdleTop {
		s.IdleTop = s.IdleTop[:wire.FleetIdleTop]
	}
}

// finishCosts lists the merged cost lines by breakdown, costliest first.
func (b *snapBuilder) finishCosts() {
	s := b.s
	for _, c := range b.costs {
		s.Costs = append(s.Costs, *c)
	}
	slices.SortFunc(s.Costs, func(a, b wire.CostLine) int {
		if c := strings.Compare(a.By, b.By); c != 0 {
			return c
		}
		if c := cmp.Compare(b.BurnPerHour.Micros, a.BurnPerHour.Micros); c != 0 {
			return c
		}
		return strings.Compare(a.Group, b.Group)
	})
}

// finishJobs lists the merged jobs: by id, or in the one aggregator's page
// order.
func (b *snapBuilder) finishJobs() {
	s, f, cur := b.s, b.f, b.cur
	for _, j := range b.jobs {
		j.BurnPerHour = fleet.Money{Micros: j.BurnMicros, Currency: cur}
		j.Spend = fleet.Money{Micros: j.SpendMicros, Currency: cur}
		j.search = strings.ToLower(strings.Join([]string{j.ID, j.Team, j.DataClass,
			strings.Join(j.Regions, " "), strings.Join(j.Jurisdictions, " "), strings.Join(j.Nodes, " "), j.Violation}, " "))
		if !j.Allowed {
			j.search += " violation"
		}
		s.Jobs = append(s.Jobs, *j)
	}
	if !s.Paged || len(f.aggs) > 1 {
		slices.SortFunc(s.Jobs, func(a, b JobRow) int { return strings.Compare(a.ID, b.ID) })
	} else if a := f.aggs[0]; a.jobPage != nil {
		order := make(map[string]int, len(a.jobPage.Jobs))
		for i, j := range a.jobPage.Jobs {
			order[j.ID] = i
		}
		slices.SortFunc(s.Jobs, func(a, b JobRow) int { return cmp.Compare(order[a.ID], order[b.ID]) })
	}
}

// cmpIdleBurn ranks nodes by what their idle GPUs burn, most first, then by
// id: the order of the idle rankings.
func cmpIdleBurn(a, b *NodeRow) int {
	if c := cmp.Compare(b.IdleBurn, a.IdleBurn); c != 0 {
		return c
	}
	return strings.Compare(a.View.ID, b.View.ID)
}

// key is what the node sorts read of r.
func (r *NodeRow) key() wire.NodeKey {
	v := r.View
	return wire.NodeKey{Region: v.Region, Hostname: v.Hostname, ID: v.ID, State: v.State, Provider: v.Provider,
		Util: r.Util, Hottest: r.Hottest, Burn: r.Burn, Power: r.Power, MemUsed: r.MemUsed, Jobs: r.Jobs}
}

// cmpDefaultNode is the default node order: region, hostname, id.
var cmpDefaultNode = wire.NodeOrder(wire.NodeQuery{}, (*NodeRow).key)

// mergePage sorts the rows of several aggregators by q and keeps q's page.
func mergePage(rows []*NodeRow, q wire.NodeQuery) []*NodeRow {
	slices.SortFunc(rows, wire.NodeOrder(q, (*NodeRow).key))
	lo := min(q.Offset, len(rows))
	return rows[lo:min(len(rows), lo+q.Limit)]
}

// regionAcc sums one region's rows or nodes into a RegionRow.
type regionAcc struct {
	row       RegionRow
	providers map[string]bool
	models    map[string]int
}

// finish derives the row's mean utilisation, provider and model lists and
// filter text.
func (x *regionAcc) finish() RegionRow {
	x.row.Util = math.NaN()
	if u, ok := x.row.MeanUtil(); ok {
		x.row.Util = u
	}
	ps := make([]string, 0, len(x.providers))
	for p := range x.providers {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	x.row.Providers = strings.Join(ps, ",")
	x.row.Models = modelsString(x.models)
	x.row.search = strings.ToLower(x.row.Region + " " + x.row.Jurisdiction + " " + x.row.Providers + " " + x.row.Models)
	return x.row
}

// regionAccs holds one regionAcc per region, in the order first seen.
type regionAccs struct {
	by    map[string]*regionAcc
	order []string
}

func newRegionAccs() *regionAccs { return &regionAccs{by: map[string]*regionAcc{}} }

// acc is region's accumulator, made on first use.
func (rs *regionAccs) acc(region, jurisdiction string) *regionAcc {
	x := rs.by[region]
	if x == nil {
		x = &regionAcc{row: RegionRow{Region: region, Jurisdiction: jurisdiction}, providers: map[string]bool{}, models: map[string]int{}}
		rs.by[region] = x
		rs.order = append(rs.order, region)
	}
	return x
}

// rows finishes every region's row, sorted by region.
func (rs *regionAccs) rows() []RegionRow {
	slices.Sort(rs.order)
	out := make([]RegionRow, 0, len(rs.order))
	for _, name := range rs.order {
		out = append(out, rs.by[name].finish())
	}
	return out
}

// pagedRegions merges the aggregators' region rows.
func pagedRegions(f *Merger, s *Snapshot, money func(fleet.Money) int64) []RegionRow {
	rs := newRegionAccs()
	for _, a := range f.aggs {
		if a.fleet == nil {
			continue
		}
		for _, r := range a.fleet.Regions {
			x := rs.acc(r.Region, r.Jurisdiction)
			rr := &x.row
			rr.AddRegion(&r)
			rr.Alerts += r.AlertsOpen
			rr.Burn += money(inCur(r.BurnPerHour, a.summary.Currency))
			rr.IdleBurn += money(inCur(r.IdleBurn, a.summary.Currency))
			for _, p := range r.Providers {
				x.providers[p] = true
			}
			for m, k := range r.Models {
				x.models[ShortModel(m)] += k
			}
		}
	}
	return rs.rows()
}

func union(a, b []string) []string {
	for _, x := range b {
		if !slices.Contains(a, x) {
			a = append(a, x)
		}
	}
	slices.Sort(a)
	return a
}

func buildRegions(s *Snapshot) []RegionRow {
	rs := newRegionAccs()
	for _, n := range s.Nodes {
		v := n.View
		a := rs.acc(v.Region, v.Jurisdiction)
		r := &a.row
		r.AddNode(v.State, n.GPUs, n.Util, n.MemUsed, n.MemTotal, n.Power)
		a.providers[v.Provider] = true
		for i := range v.Devices {
			if v.Devices[i].Instance.Profile == "" {
				a.models[ShortModel(v.Devices[i].Model)]++
			}
		}
		r.Burn += n.Burn
		r.IdleBurn += n.IdleBurn
	}
	for _, al := range s.Alerts {
		if !al.Open() {
			continue
		}
		reg := al.Region
		if reg == "" {
			if n := s.nodeByID[al.Node]; n != nil {
				reg = n.View.Region
			}
		}
		if a := rs.by[reg]; a != nil {
			a.row.Alerts++
		}
	}
	// The cost engine's per-region figures, when present, are authoritative.
	for _, c := range s.Costs {
		if c.By != "region" {
			continue
		}
		if a := rs.by[c.Group]; a != nil {
			a.row.Burn = c.BurnPerHour.Micros
			a.row.IdleBurn = c.IdleBurn.Micros
		}
	}
	return rs.rows()
}
