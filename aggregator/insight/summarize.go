package insight

import (
	"cmp"
	"context"
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/policy"
	"github.com/fleettop/fleettop/store"
	"github.com/fleettop/fleettop/wire"
)

// accrue returns what the node's lease charges over [from, to).
func (ns *costNode) accrue(from, to time.Time) cost.Sums {
	var m cost.Sums
	if len(ns.versions) == 0 || !to.After(from) {
		return m
	}
	var buf [2]cost.Accrual
	for _, a := range cost.AccrueInto(buf[:0], ns.versions, ns.origin, from, to) {
		m.Add(a.Charge, a.Currency)
	}
	return m
}

// prepaid returns what the node's hourly-billed lease charged ahead over
// [from, to): its accrual less the same lease billed per second.
func (ns *costNode) prepaid(from, to time.Time) cost.Sums {
	hourly := false
	for _, v := range ns.versions {
		hourly = hourly || v.Billing == fleet.BillPerStartedHour
	}
	var m cost.Sums
	if !hourly || !to.After(from) {
		return m
	}
	if len(ns.perSecond) != len(ns.versions) { // versions are only appended
		ns.perSecond = slices.Clone(ns.versions)
		for i := range ns.perSecond {
			ns.perSecond[i].Billing = fleet.BillPerSecond
		}
	}
	per := ns.perSecond
	var buf [2]cost.Accrual
	for _, a := range cost.AccrueInto(buf[:0], ns.versions, ns.origin, from, to) {
		m.Add(a.Charge, a.Currency)
	}
	for _, a := range cost.AccrueInto(buf[:0], per, ns.origin, from, to) {
		m.Add(cost.MakeExact(0, 0).Sub(a.Charge), a.Currency)
	}
	return m
}

// line accumulates one CostLine.
type line struct {
	gpus                                  int
	burn, idleBurn, today, month, idleMon cost.Sums
	proj                                  cost.Sums // month so far plus the lease's accrual to month end
}

type jobAgg struct {
	job     fleet.Job
	regions []string // each once, in the order met
	jurs    []string
	nodes   []string
	gpus    int
	utilSum float64
	utilN   int
	burn    cost.Sums
	spend   cost.Sums
	viol    string
	node    string // the node whose GPUs are being added
	run     uint64 // the Summarize (sumRoom.run) that last counted the job
}

// Summarize implements aggregator.Insights. It runs in named steps over one
// sumRun: each node is counted (countState), priced (nodeMoney), added to
// the region, provider and model lines (addPlaces), to the teams (addTeams)
// and jobs (addJobs) and judged by the time-driven rules (judge); then the
// fleet totals, the cost lines with their budgets, the leases ending and the
// job views are built from the sums.
func (e *Engine) Summarize(now time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	r := e.newRun(now)
	e.eachNode(r.addNode)
	r.ledgerOnly()
	r.totals()
	r.costLines()
	r.leasesEnding()
	views := r.jobViews()
	r.release()
	e.emit(r.trs)
	r.sum.AlertsOpen = e.book.OpenCount()
	return r.sum, views, e.book.Alerts(now)
}

// sumRun is one Summarize call's periods and sums.
type sumRun struct {
	e *Engine
	// now is the aggregator's clock (alerts); mnow the ledger's (money),
	// simulated in the demo, so that "today" is the day the store books
	// samples and leases in.
	now, mnow  time.Time
	ds, ms, me time.Time // day start, month start, month end (in mnow's zone)
	dk, mk     int       // day and month keys of mnow
	thr        float64   // idle threshold

	sum                                                    wire.Summary
	burn, idleBurn, today, month, proj, blindBurn, prepaid cost.Sums
	lines                                                  [numBy]map[string]*line // by group
	jobs                                                   map[string]*jobAgg
	ending                                                 []wire.LeaseEnding
	utilSum                                                float64
	utilN                                                  int
	trs                                                    []policy.Transition
	conds                                                  []policy.Condition

	// The ledger (with a store): today's and this month's lines per node,
	// where each node is, this month's spend per job, the nodes summed.
	led            bool
	room           *sumRoom // ledDay, ledMon, places and jobs point into it
	ledDay, ledMon map[string][]store.NodeLine
	places         map[string]store.NodePlace
	jobMonth       map[string]*cost.Sums
	seen           map[string]bool
}

func (e *Engine) newRun(now time.Time) *sumRun {
	mnow := now
	if e.clock != nil {
		mnow = e.clock()
	}
	r := &sumRun{e: e, now: now, mnow: mnow, thr: e.cfg.Rules.IdleThreshold}
	r.room = e.takeRoom()
	r.jobs = r.room.jobs
	cal := e.day(mnow)
	r.ms, r.ds = cal.monthStart, cal.start
	r.me = r.ms.AddDate(0, 1, 0)
	r.dk, r.mk = cal.dk, cal.mk
	r.readLedger()
	return r
}

// readLedger reads today's and this month's ledger from the store, the
// leases' accrual since it was last accrued included. Without a store, or
// when it cannot be read, money is the engine's own accrual.
func (r *sumRun) readLedger() {
	if r.e.st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	room := r.room
	if err := r.e.st.LiveLedgerInto(ctx, r.ds, r.mnow, &room.day); err != nil {
		r.e.log.Warn("read the ledger: live spend counts this run only", "err", err)
		return
	}
	if err := r.e.st.LiveLedgerInto(ctx, r.ms, r.mnow, &room.mon); err != nil {
		r.e.log.Warn("read the ledger: live spend counts this run only", "err", err)
		return
	}
	r.led = true
	r.ledDay, r.ledMon = byNode(room.byDay, room.day.Lines), byNode(room.byMon, room.mon.Lines)
	r.places = room.mon.Places
	for id, p := range room.day.Places {
		r.places[id] = p
	}
	r.jobMonth = map[string]*cost.Sums{}
	clear(room.seen)
	r.seen = room.seen
	for _, l := range room.mon.Lines {
		m := r.jobMonth[l.Job] // "": unattributed
		if m == nil {
			m = new(cost.Sums)
			r.jobMonth[l.Job] = m
		}
		m.Add(l.Spend, l.Currency)
	}
}

// sumRoom is what one Summarize works in: the ledger's two periods (a
// megabyte each at 10,000 GPUs) and the jobs' sums, every second while
// anyone watches, so the engine keeps it for the next Summarize rather than
// make that much garbage (the aggregator runs its GC at GOGC=25, where
// garbage costs most).
type sumRoom struct {
	run          uint64 // Summarize calls that used the room
	day, mon     store.Ledger
	byDay, byMon map[string][]store.NodeLine
	seen         map[string]bool
	jobs         map[string]*jobAgg // this run's jobs have run == room.run
	ids          []string           // the running jobs' ids (jobViews)
}

// takeRoom returns the engine's room, or a new one while another Summarize
// (the API's, beside the hub's) holds it.
func (e *Engine) takeRoom() *sumRoom {
	e.roomMu.Lock()
	defer e.roomMu.Unlock()
	room := e.room
	e.room = nil
	if room == nil {
		room = &sumRoom{byDay: map[string][]store.NodeLine{}, byMon: map[string][]store.NodeLine{}, seen: map[string]bool{},
			jobs: map[string]*jobAgg{}}
	}
	room.run++
	return room
}

// release gives the room back to the engine; nothing this Summarize
// returns points into it (strings aside, which never change).
func (r *sumRun) release() {
	r.e.roomMu.Lock()
	r.e.room = r.room
	r.e.roomMu.Unlock()
	r.room, r.ledDay, r.ledMon, r.places, r.seen, r.jobs = nil, nil, nil, nil, nil, nil
}

// byNode groups ledger lines (sorted by node) by node, into out (emptied).
func byNode(out map[string][]store.NodeLine, lines []store.NodeLine) map[string][]store.NodeLine {
	clear(out)
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && lines[j].Node == lines[i].Node {
			j++
		}
		out[lines[i].Node] = lines[i:j:j]
		i = j
	}
	return out
}

// spendOf sums ledger lines' spend (idle spend with idle) per currency.
func spendOf(lines []store.NodeLine, idle bool) cost.Sums {
	var m cost.Sums
	for i := range lines {
		if idle {
			m.Add(lines[i].Idle, lines[i].Currency)
		} else {
			m.Add(lines[i].Spend, lines[i].Currency)
		}
	}
	return m
}

// The breakdowns of the cost lines, in their order.
const (
	byRegion = iota
	byProvider
	byModel
	byTeam
	numBy
)

var byNames = [numBy]string{"region", "provider", "model", "team"}

// group returns the line of group g of breakdown by, creating it. A
// Summarize looks lines up a dozen times a node: by a string key in a map
// per breakdown, not by [2]string in one (whose hash is not the fast one).
func (r *sumRun) group(by int, g string) *line {
	if g == "" {
		g = noGroup
	}
	l := r.lines[by][g]
	if l == nil {
		l = new(line)
		if r.lines[by] == nil {
			r.lines[by] = map[string]*line{}
		}
		r.lines[by][g] = l
	}
	return l
}

// nodeMoney is one node's money in one Summarize: its spend (in lease
// currencies, exact) and what its lease bills now.
type nodeMoney struct {
	today, month, rest cost.Sums    // spend today, this month, and the accrual to month end
	per                cost.Version // the lease terms now; Price.Micros 0 when not leased
	billed             int          // GPUs billed: the contract, else the devices enumerated
	blind              int          // billed GPUs not visible (never enumerated, or lost)
	idleGPUs           int          // billed GPUs idle now (blind ones included)
	online             bool
	idleMonth          cost.Sums        // idle spend this month (the ledger's, else sampled)
	dayLines, monLines []store.NodeLine // the ledger's lines today and this month, with a store
}

func (m *nodeMoney) cur() string { return m.per.Price.Currency }

func (r *sumRun) addNode(id string, ns *costNode) {
	if r.seen != nil {
		r.seen[id] = true
	}
	r.countState(ns)
	m := r.nodeMoney(id, ns)
	r.addPlaces(ns, &m)
	r.addTeams(ns, &m)
	r.addJobs(id, ns, &m)
	r.judge(id, ns)
}

// countState counts the node and its GPUs by state.
func (r *sumRun) countState(ns *costNode) {
	sum := &r.sum
	gpus, lost := len(ns.devs), 0
	for i := range ns.devs {
		if ns.devs[i].lost {
			lost++
		}
	}
	sum.GPUsLost += lost
	switch ns.state {
	case wire.StateOffline:
		sum.NodesOffline++
		sum.GPUsOffline += gpus - lost
	case wire.StateStale:
		sum.NodesStale++
		sum.GPUsStale += gpus - lost
	case wire.StateDegraded:
		sum.NodesDegraded++
		sum.GPUsOnline += gpus - lost
	default:
		sum.NodesOnline++
		sum.GPUsOnline += gpus - lost
	}
}

// nodeMoney prices the node: its spend today and this month (from the
// ledger when there is a store), the lease's accrual to month end, its burn
// and idle burn now; it adds them to the fleet totals.
func (r *sumRun) nodeMoney(id string, ns *costNode) nodeMoney {
	e := r.e
	var m nodeMoney
	if r.led {
		m.dayLines, m.monLines = r.ledDay[id], r.ledMon[id]
		m.today, m.month = spendOf(m.dayLines, false), spendOf(m.monLines, false)
	} else {
		m.today, m.month = ns.accrue(r.ds, r.mnow), ns.accrue(r.ms, r.mnow)
	}
	m.online = ns.state == "" || ns.state == wire.StateOnline || ns.state == wire.StateDegraded
	r.today.Merge(m.today)
	r.prepaid.Merge(ns.prepaid(r.ds, r.mnow))
	r.month.Merge(m.month)
	m.rest = ns.accrue(r.mnow, r.me)
	r.proj.Merge(m.month)
	r.proj.Merge(m.rest)
	per, leased := ns.terms(r.mnow)
	if !leased {
		per.Price.Micros = 0
	} else if end := per.End; !end.IsZero() && end.Sub(r.mnow) <= e.cfg.LeasesEndingWithin {
		r.ending = append(r.ending, wire.LeaseEnding{Node: id, Lease: ns.leaseID, GPUs: max(per.GPUs, len(ns.devs)), End: end})
	}
	m.per = per
	// The lease bills per.GPUs whatever the sensors see: GPUs it pays for
	// beyond the devices enumerated are idle and nobody's (paid but blind,
	// with the lost ones).
	m.billed = per.GPUs
	if m.billed <= 0 {
		m.billed = len(ns.devs)
	}
	m.blind = max(0, m.billed-len(ns.devs))
	m.idleGPUs = m.blind
	for k := range ns.devs {
		d := &ns.devs[k]
		if m.online && !d.lost && d.hasUtil {
			r.utilSum += d.util
			r.utilN++
		}
		if k < m.billed && (!m.online || d.idle(r.thr)) {
			m.idleGPUs++
		}
		if k < m.billed && d.lost {
			m.blind++
		}
	}
	r.burn.AddMicros(per.Price.Micros*int64(m.billed), m.cur())
	r.idleBurn.AddMicros(per.Price.Micros*int64(m.idleGPUs), m.cur())
	if m.blind > 0 {
		r.sum.GPUsBlind += m.blind
		r.blindBurn.AddMicros(per.Price.Micros*int64(m.blind), m.cur())
	}
	switch {
	case r.led:
		m.idleMonth = spendOf(m.monLines, true)
	case ns.month.key == r.mk:
		m.idleMonth.Add(ns.month.idle, m.cur())
	}
	return m
}

// addPlaces adds the node to its region, provider and model lines.
func (r *sumRun) addPlaces(ns *costNode, m *nodeMoney) {
	price := m.per.Price.Micros
	for _, l := range [3]*line{r.group(byRegion, ns.info.Region), r.group(byProvider, ns.provider), r.group(byModel, ns.model)} {
		l.gpus += m.billed
		l.burn.AddMicros(price*int64(m.billed), m.cur())
		l.idleBurn.AddMicros(price*int64(m.idleGPUs), m.cur())
		l.today.Merge(m.today)
		l.month.Merge(m.month)
		l.proj.Merge(m.month)
		l.proj.Merge(m.rest)
		l.idleMon.Merge(m.idleMonth)
	}
}

// jobOn returns the job on device index (and its team, noGroup without one).
func jobOn(procs []fleet.Process, index int) (string, fleet.Job) {
	for _, p := range procs {
		if p.Device == index && p.Job.ID != "" {
			return cmp.Or(p.Job.Team, noGroup), p.Job
		}
	}
	return noGroup, fleet.Job{}
}

// addTeams adds the node to its teams. Spend: with a store, the ledger's
// (each job's GPU-time to its team, the rest to the node's own team or
// noGroup); without one, split by the teams whose jobs held its GPUs
// (sampled), the rest unattributed. Either way the teams are a partition of
// the fleet figure. Burn: the GPUs their jobs hold now.
func (r *sumRun) addTeams(ns *costNode, m *nodeMoney) {
	if r.led {
		r.ledgerTeams(m.dayLines, m.monLines)
	} else {
		var dayTeams, monthTeams []teamSpend
		if ns.day.key == r.dk {
			dayTeams = ns.day.teams
		}
		if ns.month.key == r.mk {
			monthTeams = ns.month.teams
		}
		splitTeams(m.today, dayTeams, m.cur(), func(t string) *cost.Sums { return &r.group(byTeam, t).today })
		splitTeams(m.month, monthTeams, m.cur(), func(t string) *cost.Sums { return &r.group(byTeam, t).month })
	}
	price := m.per.Price.Micros
	if extra := m.billed - len(ns.devs); extra > 0 {
		l := r.group(byTeam, noGroup)
		l.gpus += extra
		l.burn.AddMicros(price*int64(extra), m.cur())
		l.idleBurn.AddMicros(price*int64(extra), m.cur())
	}
	procs := ns.tracker.Procs()
	var team string
	var l *line
	for k, d := range ns.devs {
		if k >= m.billed {
			break // seen but not billed
		}
		if t, _ := jobOn(procs, d.index); l == nil || t != team {
			team, l = t, r.group(byTeam, t) // a node's GPUs mostly serve one team
		}
		l.gpus++
		l.burn.AddMicros(price, m.cur())
		if !m.online || d.idle(r.thr) {
			l.idleBurn.AddMicros(price, m.cur())
		}
	}
}

// ledgerTeams adds a node's ledger lines today and this month to their
// teams' spend.
func (r *sumRun) ledgerTeams(day, month []store.NodeLine) {
	for i := range day {
		r.group(byTeam, day[i].Team).today.Add(day[i].Spend, day[i].Currency)
	}
	for i := range month {
		r.group(byTeam, month[i].Team).month.Add(month[i].Spend, month[i].Currency)
	}
}

// ledgerOnly adds the nodes the ledger bills today or this month that this
// engine has not seen since it started (dark since a restart, gone, or not
// yet reconnected): their spend counts in every figure, by the place and
// team the store last knew.
func (r *sumRun) ledgerOnly() {
	if !r.led {
		return
	}
	for id := range r.ledMon {
		if !r.seen[id] {
			r.addUnseen(id)
		}
	}
	for id := range r.ledDay {
		if _, inMonth := r.ledMon[id]; !inMonth && !r.seen[id] {
			r.addUnseen(id)
		}
	}
}

// addUnseen adds the spend of node id, billed by the ledger but not seen
// since the engine started, by the place and team the store last knew.
func (r *sumRun) addUnseen(id string) {
	today, month, idle := spendOf(r.ledDay[id], false), spendOf(r.ledMon[id], false), spendOf(r.ledMon[id], true)
	r.today.Merge(today)
	r.month.Merge(month)
	r.proj.Merge(month)
	p := r.places[id]
	for _, l := range [3]*line{r.group(byRegion, p.Region), r.group(byProvider, p.Provider), r.group(byModel, p.Model)} {
		l.today.Merge(today)
		l.month.Merge(month)
		l.proj.Merge(month)
		l.idleMon.Merge(idle)
	}
	r.ledgerTeams(r.ledDay[id], r.ledMon[id])
}

// addJobs adds the node's billed GPUs to the jobs that hold them now: where
// they run, their burn, utilisation and residency verdict, and each job's
// spend on this node.
func (r *sumRun) addJobs(id string, ns *costNode, m *nodeMoney) {
	procs := ns.tracker.Procs()
	var ja *jobAgg
	for k, d := range ns.devs {
		if k >= m.billed {
			break
		}
		_, job := jobOn(procs, d.index)
		if job.ID == "" {
			continue
		}
		if ja == nil || ja.job.ID != job.ID {
			ja = r.job(job)
		}
		if ja.node != id { // the job's first GPU on this node
			ja.node = id
			ja.regions = appendNew(ja.regions, ns.info.Region)
			ja.jurs = appendNew(ja.jurs, ns.info.Jurisdiction)
			ja.nodes = append(ja.nodes, id) // each node is added once
			if j := ns.jobs[job.ID]; j != nil && ns.jobsMonth == r.mk && !r.led {
				ja.spend.Add(j.amt, m.cur())
			}
			if ja.viol == "" {
				ja.viol = r.e.cfg.Rules.Violation(job.DataClass, ns.info.Jurisdiction)
			}
		}
		ja.gpus++
		if d.hasUtil {
			ja.utilSum += d.util
			ja.utilN++
		}
		ja.burn.AddMicros(m.per.Price.Micros, m.cur())
	}
}

// appendNew appends s to set unless it holds it already (a job runs in a
// region or two: a scan beats a map).
func appendNew(set []string, s string) []string {
	if slices.Contains(set, s) {
		return set
	}
	return append(set, s)
}

// job returns the sums of job in this run, creating them (or emptying the
// last run's, keeping their room).
func (r *sumRun) job(job fleet.Job) *jobAgg {
	ja := r.jobs[job.ID]
	if ja == nil {
		ja = new(jobAgg)
		r.jobs[job.ID] = ja
	}
	if ja.run != r.room.run {
		*ja = jobAgg{job: job, run: r.room.run, regions: ja.regions[:0], jurs: ja.jurs[:0], nodes: ja.nodes[:0]}
	}
	return ja
}

// judge runs the time-driven rules (offline) on the aggregator's clock.
func (r *sumRun) judge(id string, ns *costNode) {
	ns.info.Leased = ns.leasedAt(r.now)
	r.conds = r.e.cfg.Rules.Conditions(&ns.tracker, ns.info, r.now, r.conds[:0])
	if !sameConds(ns.active, r.conds) {
		ns.active = slices.Clone(r.conds)
		r.trs = append(r.trs, r.e.book.Sync("node/"+id, r.conds, r.now)...)
	}
}

// totals converts the fleet sums into the display currency, rounding once.
func (r *sumRun) totals() {
	e, sum := r.e, &r.sum
	sum.Currency = e.cfg.Currency
	if r.utilN > 0 {
		sum.Util = r.utilSum / float64(r.utilN)
	}
	sum.BurnPerHour = e.conv(&r.burn)
	sum.IdleBurn = e.conv(&r.idleBurn)
	sum.BlindBurnPerHour = e.conv(&r.blindBurn)
	sum.SpendToday = e.conv(&r.today)
	sum.PrepaidToday = e.conv(&r.prepaid)
	sum.SpendMonth = e.conv(&r.month)
	sum.ProjectedMonth = e.conv(&r.proj)
}

// costLines builds the cost lines in order, judges the budgets and
// apportions the fleet figures among each breakdown's lines.
func (r *sumRun) costLines() {
	e, cur := r.e, r.e.cfg.Currency
	var budget []policy.Condition
	groups := map[[2]string]*line{}
	var keys [][2]string
	for by, m := range r.lines {
		start := len(keys)
		for g, l := range m {
			k := [2]string{byNames[by], g}
			keys = append(keys, k)
			groups[k] = l
		}
		slices.SortFunc(keys[start:], func(a, b [2]string) int { return strings.Compare(a[1], b[1]) })
	}
	for _, k := range keys {
		l := groups[k]
		cl := wire.CostLine{By: k[0], Group: k[1], GPUs: l.gpus, Burn: wire.Burn{BurnPerHour: e.conv(&l.burn), IdleBurn: e.conv(&l.idleBurn)},
			SpendToday: e.conv(&l.today), SpendMonth: e.conv(&l.month), IdleSpend: e.conv(&l.idleMon), ProjectedMonth: e.conv(&l.proj)}
		var b int64
		switch k[0] {
		case "region":
			b = e.cfg.RegionBudgets[k[1]]
		case "team":
			b = e.cfg.TeamBudgets[k[1]]
		}
		if b > 0 {
			cl.Budget = fleet.Money{Micros: b, Currency: cur}
			budget = e.cfg.Rules.Budget(k[0], k[1], cl.SpendMonth.Micros, b, cur, budget)
		}
		r.sum.Costs = append(r.sum.Costs, cl)
	}
	r.trs = append(r.trs, e.book.Sync("budget", budget, r.now)...)
	e.apportion(&r.sum, keys, groups, map[string]*cost.Sums{"burn": &r.burn, "idle": &r.idleBurn, "today": &r.today, "month": &r.month, "proj": &r.proj})
}

// leasesEnding sorts the leases that end soon by end, then node.
func (r *sumRun) leasesEnding() {
	slices.SortFunc(r.ending, func(a, b wire.LeaseEnding) int {
		if c := a.End.Compare(b.End); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	r.sum.LeasesEnding = r.ending
}

// jobViews returns the jobs running now, sorted by id.
func (r *sumRun) jobViews() []wire.JobView {
	e := r.e
	jobSpend := r.jobSpend()
	// The ids sorted, not the views: a view is 30 words to swap.
	ids := r.room.ids[:0]
	for id, ja := range r.jobs {
		if ja.run != r.room.run {
			delete(r.jobs, id) // not running now
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	r.room.ids = ids
	views := make([]wire.JobView, 0, len(ids))
	for _, id := range ids {
		ja := r.jobs[id]
		// The view's lists outlive the room: one array each view.
		names := make([]string, 0, len(ja.regions)+len(ja.jurs)+len(ja.nodes))
		regions, jurs, nodes := sortedPart(&names, ja.regions), sortedPart(&names, ja.jurs), sortedPart(&names, ja.nodes)
		v := wire.JobView{Job: ja.job, Regions: regions, Jurisdictions: jurs,
			Nodes: nodes, GPUs: ja.gpus, BurnPerHour: e.conv(&ja.burn), Spend: e.conv(&ja.spend),
			Allowed: ja.viol == "", Violation: ja.viol}
		if r.led {
			v.Spend = fleet.Money{Micros: jobSpend[ja.job.ID], Currency: e.cfg.Currency}
		}
		if ja.utilN > 0 {
			v.Util = ja.utilSum / float64(ja.utilN)
		}
		views = append(views, v)
	}
	return views
}

// sortedPart appends part to *names, sorted, and returns what it appended.
func sortedPart(names *[]string, part []string) []string {
	k := len(*names)
	*names = append(*names, part...)
	out := (*names)[k:len(*names):len(*names)]
	slices.Sort(out)
	return out
}

// jobSpend is the ledger's spend this month per job, the unattributed
// ("") included, apportioned to the fleet figure as the report by job
// apportions its lines (groups in order, largest remainder), so that each
// job's live spend is its report line to the micro-unit.
func (r *sumRun) jobSpend() map[string]int64 {
	if !r.led {
		return nil
	}
	ids := make([]string, 0, len(r.jobMonth))
	for id := range r.jobMonth {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]*cost.Sums, len(ids))
	for i, id := range ids {
		parts[i] = r.jobMonth[id]
	}
	out := make(map[string]int64, len(ids))
	for i, v := range r.e.splitExact(r.sum.SpendMonth.Micros, parts) {
		out[ids[i]] = v
	}
	return out
}

// splitTeams adds a node's spend (all of it) to its teams: each team its
// sampled share, and what is left unattributed. The sampled shares count
// from the previous sample and the accrual from the node's origin, so they
// can exceed the spend by a sample's worth: then, in team order, each team
// gets at most what is left, so the teams are always an exact partition of
// the node's spend and every breakdown adds up to the fleet figure.
func splitTeams(spend cost.Sums, teams []teamSpend, cur string, to func(team string) *cost.Sums) {
	rest := spend.Get(cur)
	teams = slices.SortedFunc(slices.Values(teams), func(a, b teamSpend) int { return strings.Compare(a.team, b.team) })
	for _, ts := range teams {
		t, a := ts.team, ts.amt
		if a.Rat().Cmp(rest.Rat()) > 0 {
			a = rest
			if a.Rat().Sign() < 0 {
				a = cost.Exact{}
			}
		}
		to(t).Add(a, cur)
		rest = rest.Sub(a)
	}
	if rest.Rat().Sign() > 0 {
		to(noGroup).Add(rest, cur)
	}
	for c, e := range spend.All() {
		if c != cur {
			to(noGroup).Add(e, c)
		}
	}
}

// apportion makes every breakdown add up to the fleet figure to the
// micro-unit: where a breakdown's groups are an exact partition of the fleet
// figure, the rounded fleet figure is split among them by largest remainder
// (cost.Apportion) instead of rounding each group on its own.
func (e *Engine) apportion(sum *wire.Summary, keys [][2]string, groups map[[2]string]*line, fleetFig map[string]*cost.Sums) {
	figs := []struct {
		name  string
		total int64
		part  func(l *line) *cost.Sums
		field func(c *wire.CostLine) *fleet.Money
	}{
		{"burn", sum.BurnPerHour.Micros, func(l *line) *cost.Sums { return &l.burn }, func(c *wire.CostLine) *fleet.Money { return &c.BurnPerHour }},
		{"idle", sum.IdleBurn.Micros, func(l *line) *cost.Sums { return &l.idleBurn }, func(c *wire.CostLine) *fleet.Money { return &c.IdleBurn }},
		{"today", sum.SpendToday.Micros, func(l *line) *cost.Sums { return &l.today }, func(c *wire.CostLine) *fleet.Money { return &c.SpendToday }},
		{"month", sum.SpendMonth.Micros, func(l *line) *cost.Sums { return &l.month }, func(c *wire.CostLine) *fleet.Money { return &c.SpendMonth }},
		{"proj", sum.ProjectedMonth.Micros, func(l *line) *cost.Sums { return &l.proj }, func(c *wire.CostLine) *fleet.Money { return &c.ProjectedMonth }},
	}
	byIdx := map[string][]int{}
	for i, k := range keys {
		byIdx[k[0]] = append(byIdx[k[0]], i)
	}
	for _, f := range figs {
		exact := e.rat(fleetFig[f.name])
		for _, idx := range byIdx {
			parts := make([]*big.Rat, len(idx))
			acc := new(big.Rat)
			for j, i := range idx {
				parts[j] = e.rat(f.part(groups[keys[i]]))
				acc.Add(acc, parts[j])
			}
			if acc.Cmp(exact) != 0 {
				continue // not a partition of the fleet figure (e.g. sampled team spend)
			}
			for j, v := range cost.Apportion(f.total, parts) {
				f.field(&sum.Costs[idx[j]]).Micros = v
			}
		}
	}
}

// splitExact splits total (micro-units of the display currency) over parts
// in proportion to their exact values, largest remainder first
// (cost.Apportion): the shares add up to total exactly.
func (e *Engine) splitExact(total int64, parts []*cost.Sums) []int64 {
	rats := make([]*big.Rat, len(parts))
	for i, p := range parts {
		rats[i] = e.rat(p)
	}
	return cost.Apportion(total, rats)
}

// rat is m's exact value in the display currency; currencies without a rate
// are left out, as conv leaves them out.
func (e *Engine) rat(m *cost.Sums) *big.Rat {
	out := new(big.Rat)
	for c, x := range m.All() {
		if v, err := e.cfg.Rates.ConvertRat(x, c); err == nil {
			out.Add(out, v)
		}
	}
	return out
}

// conv converts a cost.Sums-currency sum to the display currency, rounding once.
// A currency without a rate is left out and logged once.
func (e *Engine) conv(m *cost.Sums) fleet.Money {
	out, missing := e.cfg.Rates.Sum(m)
	for _, c := range missing {
		e.warnRate(c)
	}
	return out
}

// warnRate logs currency c's missing rate the first time it is met. Met
// again (every sample of such a node, on the ingest path), it is one map
// lookup without a lock.
func (e *Engine) warnRate(c string) {
	if m := e.warned.Load(); m != nil && (*m)[c] {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.warned.Load()
	if old != nil && (*old)[c] {
		return
	}
	m := make(map[string]bool, 1)
	if old != nil {
		maps.Copy(m, *old)
	}
	m[c] = true
	e.warned.Store(&m)
	e.log.Warn("no exchange rate: leave it out of the totals; add it under rates: in the config", "currency", c, "display", e.cfg.Currency)
}
