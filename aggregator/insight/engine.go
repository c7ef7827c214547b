// Package insight is the aggregator's cost and policy engine: it reads the
// aggregator's config file (display currency, rates, price table, budgets,
// residency and alert rules, webhook), turns the live fleet into money
// (burn, idle burn, spend today and this month, projection, budgets), jobs
// with their residency verdict, and alerts, and implements
// aggregator.Insights.
package insight

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/policy"
	"github.com/fleettop/fleettop/store"
	"github.com/fleettop/fleettop/wire"
)

const (
	numShards = 64
	// maxSampleGap caps the time one sample accounts for in sampled figures
	// (idle spend, team and job spend): a longer gap is dark time, which the
	// lease accrual counts on its own.
	maxSampleGap = time.Minute
	// endedAlertsKept is how long an ended alert stays in the list viewers
	// and /api/v1/alerts see: an outage of a few minutes is still there
	// when someone looks an hour later.
	endedAlertsKept = time.Hour
	// noGroup names the group of GPUs without a team.
	noGroup = "(none)"
)

// Engine implements aggregator.Insights. Observe takes only its node's shard
// lock and does no I/O; alert transitions go to the store's buffer and the
// webhook's queue.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	seed   maphash.Seed
	shards [numShards]shard
	book   *policy.Book
	hook   *Webhook     // nil without a webhook URL
	st     *store.Store // nil in tests; alerts are stored with their start and end

	clock func() time.Time       // the ledger's clock for money periods; nil: Summarize's now
	cal   atomic.Pointer[calDay] // the newest calendar day met (see day)

	mu     sync.Mutex                      // serialises additions to warned
	warned atomic.Pointer[map[string]bool] // currencies without a rate, logged once; replaced, never modified

	roomMu sync.Mutex // guards room
	room   *sumRoom   // what the last Summarize worked in, for the next; nil while one runs
}

type shard struct {
	mu    sync.Mutex
	nodes map[string]*costNode
}

// New builds the engine. When st is not nil, the display currency and rates
// are recorded in it so that reports convert as the live view does. st may
// be nil (tests); log nil discards logs.
//
// With a store, spend (fleet, breakdowns, teams, jobs) is the store's
// ledger plus the leases' accrual since it was last accrued
// (store.LiveLedger), so it survives restarts and agrees with reports.
// Without one (tests), it counts from when this engine first sees each
// node, and teams and jobs are shared out by sampled GPU-time.
func New(cfg Config, st *store.Store, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Currency == "" {
		d := DefaultConfig()
		d.Path = cfg.Path
		cfg = d
	}
	e := &Engine{
		cfg:  cfg,
		log:  log,
		seed: maphash.MakeSeed(),
		book: policy.NewBook(endedAlertsKept, 500),
		st:   st,
	}
	e.book.SetHysteresis(e.cfg.Rules.Hysteresis) // policy.Rules: no flapping alerts
	for i := range e.shards {
		e.shards[i].nodes = make(map[string]*costNode)
	}
	if cfg.Webhook.URL != "" {
		e.hook = NewWebhook(cfg.Webhook, log)
	}
	if st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.SetDisplay(ctx, store.Display{Currency: cfg.Currency, Rates: cfg.RateTable, TimeZone: cfg.loc().String()}); err != nil {
			return nil, fmt.Errorf("record display currency: %w", err)
		}
		e.clock = st.Now
	}
	return e, nil
}

// Close stops the webhook sender, delivering what it can until ctx ends.
func (e *Engine) Close(ctx context.Context) error {
	if e.hook != nil {
		return e.hook.Close(ctx)
	}
	return nil
}

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.cfg }

func (e *Engine) shard(id string) *shard {
	return &e.shards[maphash.String(e.seed, id)%numShards]
}

// eachNode calls f for every node under its shard's lock, one node at a
// time: a walk of the fleet (Summarize, Placements) holds a shard only for
// one node's figures, never for its ~200 nodes at 100,000 GPUs, during
// which every collector session of that shard queued in Observe holding its
// node's lock (and the watch hub behind them): a convoy that stalled ingest
// and viewers for seconds on a busy machine.
func (e *Engine) eachNode(f func(id string, ns *costNode)) {
	type entry struct {
		id string
		ns *costNode
	}
	var batch []entry
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		batch = batch[:0]
		for id, ns := range sh.nodes { // never deleted: the pointers stay valid
			batch = append(batch, entry{id, ns})
		}
		sh.mu.Unlock()
		for _, x := range batch {
			sh.mu.Lock()
			f(x.id, x.ns)
			sh.mu.Unlock()
		}
	}
}

// addTime adds price per GPU-hour × d of one GPU to e, exactly.
func addTime(e *cost.Exact, perHour int64, d time.Duration) {
	if perHour > 0 && d > 0 {
		*e = e.Add(cost.PriceTimes(perHour, d.Milliseconds()))
	}
}

// period holds sampled figures of one node for a day or a month.
type period struct {
	key   int // yyyymmdd or yyyymm
	idle  cost.Exact
	teams []teamSpend // in order of first use
}

// teamSpend is one team's sampled spend in a period. A node's GPUs serve a
// team or two a day: a short slice, scanned, touches fewer cache lines per
// sample than a map (each node's state is cold again by its next sample).
type teamSpend struct {
	team string
	amt  cost.Exact
}

func (p *period) roll(key int) {
	if p.key != key {
		*p = period{key: key}
	}
}

// maxPeriodTeams bounds the teams a node's day or month keeps sampled
// spend for. Team names come from the node's processes; one that made up a
// name every sample grew the slice (scanned every sample) all month. Past
// the bound, a new team's time counts as nobody's (noGroup): the teams
// still add up to the node's figure.
const maxPeriodTeams = 64

// team returns team t's spend, adding it; the pointer is good until the
// next call.
func (p *period) team(t string) *cost.Exact {
	for i := range p.teams {
		if p.teams[i].team == t {
			return &p.teams[i].amt
		}
	}
	if len(p.teams) >= maxPeriodTeams && t != noGroup {
		return p.team(noGroup)
	}
	p.teams = append(p.teams, teamSpend{team: t})
	return &p.teams[len(p.teams)-1].amt
}

type devLive struct {
	index   int
	model   string
	util    float64
	hasUtil bool
	lost    bool // fell off the bus or left the inventory (fleet.DeviceLost)
}

// idle reports whether the device counts as idle: lost, silent or under thr.
func (d *devLive) idle(thr float64) bool { return d.lost || !d.hasUtil || d.util < thr }

// costNode is everything the cost engine keeps about one node, under its
// shard lock.
type costNode struct {
	info      policy.NodeInfo
	provider  string
	model     string // model of the first device, for the by-model lines
	leaseID   string
	versions  []cost.Version // the lease terms seen, oldest first
	perSecond []cost.Version // versions billed per second (prepaid), as long as versions
	origin    time.Time      // when this engine started accounting for the node
	devs      []devLive
	state     string
	tracker   policy.NodeTracker
	active    []policy.Condition
	gen       uint64    // the node generation identify last read (Observe)
	last      time.Time // newest sample time
	day       period
	month     period
	jobs      map[string]*jobSpend // job id → its sampled spend this month (jobsMonth), see accrueJob
	jobsMonth int                  // yyyymm
	lastJob   *jobSpend            // the job accrued last: a node mostly runs the same one sample after sample
}

// jobSpend is a job's sampled spend on one node this month.
type jobSpend struct {
	id   string
	amt  cost.Exact
	last time.Time // the last sample that accrued to it
}

// maxNodeJobs bounds the jobs whose sampled spend a node keeps. Job ids come
// from the node: a batch node runs a new job every few minutes, and one
// could make up an id every sample; kept for the aggregator's whole run,
// their entries grew without end. Once there are more, the job that ran
// least recently goes. A sample holds at most one job a device
// (wire.MaxDevices devices), so twice that keeps the jobs that run now
// unless more than that many others ran since they last did.
const maxNodeJobs = 2 * wire.MaxDevices

// accrueJob returns job id's spend on the node in month mk, making it; t is
// the sample's time. A new month starts every job's spend afresh, as the
// ledger's job lines do.
func (ns *costNode) accrueJob(id string, mk int, t time.Time) *cost.Exact {
	if ns.jobsMonth != mk {
		clear(ns.jobs)
		ns.jobsMonth, ns.lastJob = mk, nil
	}
	j := ns.lastJob
	if j == nil || j.id != id {
		if j = ns.jobs[id]; j == nil {
			if len(ns.jobs) >= maxNodeJobs {
				ns.dropStalestJob()
			}
			if ns.jobs == nil {
				ns.jobs = make(map[string]*jobSpend)
			}
			j = &jobSpend{id: id}
			ns.jobs[id] = j
		}
		ns.lastJob = j
	}
	j.last = t
	return &j.amt
}

// dropStalestJob forgets the job that ran least recently.
func (ns *costNode) dropStalestJob() {
	var stalest *jobSpend
	for _, j := range ns.jobs {
		if stalest == nil || j.last.Before(stalest.last) {
			stalest = j
		}
	}
	delete(ns.jobs, stalest.id)
	if ns.lastJob == stalest {
		ns.lastJob = nil
	}
}

// Periods: "today" and "this month" are the calendar day and month in the
// configured time zone (Config.Location, UTC by default).

// calDay is one calendar day in the engine's zone: its keys and starts.
type calDay struct {
	start, end time.Time // the day is [start, end)
	monthStart time.Time
	dk, mk     int // day and month keys (20261203, 202612)
}

// day returns t's calendar day. Every sample asks for today's and this
// month's keys and starts, and each of time.Time's calendar fields works
// the date out anew (a tenth of Observe's time): the newest day met is kept
// while samples fall in it.
func (e *Engine) day(t time.Time) *calDay {
	c := e.cal.Load()
	if c != nil && !t.Before(c.start) && t.Before(c.end) {
		return c
	}
	lt := t.In(e.cfg.loc())
	y, m, d := lt.Date()
	loc := lt.Location()
	nc := &calDay{start: time.Date(y, m, d, 0, 0, 0, 0, loc), end: time.Date(y, m, d+1, 0, 0, 0, 0, loc),
		monthStart: time.Date(y, m, 1, 0, 0, 0, 0, loc), dk: y*10000 + int(m)*100 + d, mk: y*100 + int(m)}
	if c == nil || nc.start.After(c.start) { // a replayed old sample leaves today's
		e.cal.CompareAndSwap(c, nc)
	}
	return nc
}

// resolve returns the lease's price per GPU-hour and billing: the lease
// label's when it has one, else the price table's.
func (e *Engine) resolve(n *fleet.Node) (fleet.Money, fleet.Billing, bool) {
	b := n.Lease.Billing
	if n.Lease.PricePerGPUHour.Micros > 0 && n.Lease.PricePerGPUHour.Currency != "" {
		if b == "" {
			b = fleet.BillPerSecond
		}
		return n.Lease.PricePerGPUHour, b, false
	}
	model := ""
	if len(n.Devices) > 0 {
		model = n.Devices[0].Model
	}
	p, ok := e.cfg.price(n.Provider, n.Region, model)
	if !ok {
		return fleet.Money{}, b, false
	}
	if b == "" {
		b = p.Billing
	}
	return p.PerGPU, b, true
}

// identify updates the node's identity and lease from n at time t.
func (e *Engine) identify(ns *costNode, n *fleet.Node, t time.Time) {
	ns.info.ID, ns.info.Hostname, ns.info.Region, ns.info.Jurisdiction = n.ID, n.Hostname, n.Region, n.Jurisdiction
	ns.info.Billed, ns.info.Visible = n.BilledGPUs(), n.VisibleGPUs()
	ns.info.SourcesDown = ns.info.SourcesDown[:0]
	for _, s := range n.Sources {
		if !s.Up {
			ns.info.SourcesDown = append(ns.info.SourcesDown, s)
		}
	}
	ns.provider = n.Provider
	if len(n.Devices) > 0 {
		ns.model = n.Devices[0].Model
	}
	// MIG instances are carved from the leased GPUs: not billed, not idle.
	gpus := n.PhysicalGPUs()
	if len(ns.devs) != gpus {
		ns.devs = make([]devLive, gpus)
	}
	i := 0
	for _, d := range n.Devices {
		if d.IsInstance() {
			continue
		}
		ns.devs[i].index, ns.devs[i].model = d.Index, d.Model
		ns.devs[i].lost = d.State == fleet.DeviceLost
		if ns.devs[i].lost {
			ns.devs[i].hasUtil = false
		}
		i++
	}
	price, billing, _ := e.resolve(n)
	v := cost.Version{From: t, Price: price, GPUs: n.BilledGPUs(), Billing: billing, Start: n.Lease.Start, End: n.Lease.End}
	if k := len(ns.versions); k > 0 {
		last := ns.versions[k-1]
		if last.Price == v.Price && last.GPUs == v.GPUs && last.Billing == v.Billing &&
			last.Start.Equal(v.Start) && last.End.Equal(v.End) && ns.leaseID == n.Lease.ID {
			return
		}
	}
	ns.leaseID = n.Lease.ID
	ns.versions = append(ns.versions, v)
}

// terms returns the lease terms in effect at t, if the node is leased then.
func (ns *costNode) terms(t time.Time) (cost.Version, bool) {
	k := len(ns.versions)
	if k == 0 {
		return cost.Version{}, false
	}
	v := ns.versions[k-1]
	if v.Price.Micros <= 0 || t.Before(ns.origin) || !v.Start.IsZero() && t.Before(v.Start) || !v.End.IsZero() && !t.Before(v.End) {
		return v, false
	}
	return v, true
}

// Observe implements aggregator.Insights. The node's identity, lease and
// inventory are read again only when its generation moved (or is unknown).
func (e *Engine) Observe(n *fleet.Node, gen uint64, s *fleet.Sample) {
	sh := e.shard(n.ID)
	sh.mu.Lock()
	ns := sh.nodes[n.ID]
	if ns == nil {
		ns = &costNode{origin: s.Time, state: wire.StateOnline}
		sh.nodes[n.ID] = ns
	}
	if gen == 0 || gen != ns.gen {
		e.identify(ns, n, s.Time)
		ns.gen = gen
	}
	e.cfg.Rules.Observe(&ns.tracker, s)
	prev := ns.last
	if s.Time.After(ns.last) {
		ns.last = s.Time
	}
	for i := range s.Devices {
		d := &s.Devices[i]
		for j := range ns.devs {
			if ns.devs[j].index == d.Index && !ns.devs[j].lost {
				ns.devs[j].util, ns.devs[j].hasUtil = d.Get(fleet.MetricUtil)
			}
		}
	}
	e.accountSample(ns, prev, s.Time)
	ns.info.Leased = ns.leasedAt(s.Time)
	conds := e.cfg.Rules.Conditions(&ns.tracker, ns.info, s.Time, nil)
	var trs []policy.Transition
	if !sameConds(ns.active, conds) {
		ns.active = conds
		trs = e.book.Sync("node/"+n.ID, conds, s.Time)
	}
	sh.mu.Unlock()
	e.emit(trs)
}

// accountSample adds the time since the previous sample to the sampled
// figures: idle spend, and spend per team and per job.
func (e *Engine) accountSample(ns *costNode, prev, t time.Time) {
	cal := e.day(t)
	ns.day.roll(cal.dk)
	ns.month.roll(cal.mk)
	if prev.IsZero() || !t.After(prev) {
		return
	}
	dt := t.Sub(prev)
	if dt > maxSampleGap {
		return
	}
	v, ok := ns.terms(t)
	if !ok {
		return
	}
	per := v.Price.Micros
	// The time since the previous sample counts in today and this month
	// only from their start: the minutes before midnight are yesterday's.
	dd, dm := t.Sub(later(prev, cal.start)), t.Sub(later(prev, cal.monthStart))
	if blind := int64(v.GPUs - len(ns.devs)); blind > 0 {
		// Paid but never enumerated: idle, and nobody's.
		addTime(&ns.day.idle, per*blind, dd)
		addTime(&ns.month.idle, per*blind, dm)
		addTime(ns.day.team(noGroup), per*blind, dd)
		addTime(ns.month.team(noGroup), per*blind, dm)
	}
	// The GPUs counted per team and job first: a node's GPUs mostly run
	// one job or none, and exact sums add up the same either way.
	procs := ns.tracker.Procs()
	var idle int64
	var buf [8]gpuShare
	shares := buf[:0]
	for _, d := range ns.devs {
		if d.idle(e.cfg.Rules.IdleThreshold) {
			idle++
		}
		team, job := noGroup, ""
		for _, p := range procs {
			if p.Device == d.index && p.Job.ID != "" {
				job = p.Job.ID
				if p.Job.Team != "" {
					team = p.Job.Team
				}
				break
			}
		}
		shares = addShare(shares, team, job)
	}
	addTime(&ns.day.idle, per*idle, dd)
	addTime(&ns.month.idle, per*idle, dm)
	for _, sh := range shares {
		addTime(ns.day.team(sh.team), per*sh.gpus, dd)
		addTime(ns.month.team(sh.team), per*sh.gpus, dm)
		if sh.job != "" {
			addTime(ns.accrueJob(sh.job, cal.mk, t), per*sh.gpus, dm)
		}
	}
}

// gpuShare counts a node's GPUs held by one job of one team ("" no job).
type gpuShare struct {
	team, job string
	gpus      int64
}

func addShare(shares []gpuShare, team, job string) []gpuShare {
	for i := range shares {
		if shares[i].team == team && shares[i].job == job {
			shares[i].gpus++
			return shares
		}
	}
	return append(shares, gpuShare{team, job, 1})
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (ns *costNode) leasedAt(t time.Time) bool {
	_, ok := ns.terms(t)
	return ok
}

// NodeState implements aggregator.Insights.
func (e *Engine) NodeState(n *fleet.Node, state string, t time.Time) {
	sh := e.shard(n.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ns := sh.nodes[n.ID]
	if ns == nil {
		ns = &costNode{origin: t}
		sh.nodes[n.ID] = ns
		e.identify(ns, n, t)
	}
	ns.state = state
	e.cfg.Rules.SetState(&ns.tracker, state, t)
}

// Tick judges the time-driven rules (a node offline for long enough) at now,
// so that their alerts open and end on time whether or not anyone watches.
// The aggregator calls it after every state check.
func (e *Engine) Tick(now time.Time) {
	var trs []policy.Transition
	var conds []policy.Condition
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for id, ns := range sh.nodes {
			if ns.state != wire.StateOffline && len(ns.active) == 0 {
				continue
			}
			ns.info.Leased = ns.leasedAt(now)
			conds = e.cfg.Rules.Conditions(&ns.tracker, ns.info, now, conds[:0])
			if !sameConds(ns.active, conds) {
				ns.active = slices.Clone(conds)
				trs = append(trs, e.book.Sync("node/"+id, conds, now)...)
			}
		}
		sh.mu.Unlock()
	}
	// Alerts held back or clearing (policy.Book's hysteresis) move on with time.
	trs = append(trs, e.book.Settle(now)...)
	e.emit(trs)
}

// NodeBurn implements aggregator.Insights: price per GPU-hour × GPUs billed
// (the lease's contracted count, else the devices enumerated),
// converted into the display currency (rounded once, half to even); in the
// lease currency when it has no rate. Zero when the lease has ended or no
// price is known.
func (e *Engine) NodeBurn(n *fleet.Node) fleet.Money {
	price, _, _ := e.resolve(n)
	end := n.Lease.End
	if !end.IsZero() {
		sh := e.shard(n.ID)
		sh.mu.Lock()
		var last time.Time
		if ns := sh.nodes[n.ID]; ns != nil {
			last = ns.last
		}
		sh.mu.Unlock()
		if !last.IsZero() && !last.Before(end) {
			return fleet.Money{Currency: e.cfg.Currency}
		}
	}
	b := fleet.Money{Micros: price.Micros * int64(n.BilledGPUs()), Currency: price.Currency}
	if b.Currency == "" {
		return fleet.Money{Currency: e.cfg.Currency}
	}
	// Asked first: Convert's error is an allocation, and NodeBurn runs for
	// every watched sample of every node whose lease currency has no rate.
	if b.Currency != e.cfg.Rates.Display {
		if _, ok := e.cfg.Rates.Rate(b.Currency); !ok {
			e.warnRate(b.Currency)
			return b
		}
	}
	if c, err := e.cfg.Rates.Convert(b); err == nil {
		return c
	}
	return b
}

// ClockOffset implements aggregator.ClockObserver: a node whose clock is off
// the aggregator's by more than ClockOffsetMax raises a clock alert, which
// ends when the estimate is back within it. Its samples are booked on the
// aggregator's clock meanwhile; the alert says the node's clock needs NTP.
func (e *Engine) ClockOffset(n *fleet.Node, offset time.Duration, t time.Time) {
	scope := "clock/" + n.ID
	var conds []policy.Condition
	if lim := e.cfg.ClockOffsetMax; lim > 0 && (offset > lim || offset < -lim) {
		dir, d := "behind", offset
		if offset < 0 {
			dir, d = "ahead of", -offset
		}
		conds = []policy.Condition{{ID: scope, Kind: fleet.EventClock, Severity: fleet.SevWarning, Node: n.ID,
			Region: n.Region, Device: -1,
			Message: fmt.Sprintf("%s's clock is %s %s the aggregator's (limit %s); its samples are booked on the aggregator's clock", cmp.Or(n.Hostname, n.ID), d, dir, lim)}}
	}
	if e.book.Unchanged(scope, conds) {
		return
	}
	e.emit(e.book.Sync(scope, conds, t))
}

func (e *Engine) emit(trs []policy.Transition) {
	if len(trs) == 0 {
		return
	}
	for _, tr := range trs {
		if tr.Opened {
			e.log.Info("alert opened", "id", tr.Alert.ID, "severity", tr.Alert.Severity, "message", tr.Alert.Message)
		} else {
			e.log.Info("alert ended", "id", tr.Alert.ID)
		}
		if e.st != nil {
			e.st.RecordAlert(tr.Alert) // buffered; written by the next Commit
		}
		if e.hook != nil {
			e.hook.Enqueue(tr)
		}
	}
}

func sameConds(a, b []policy.Condition) bool {
	return slices.EqualFunc(a, b, func(x, y policy.Condition) bool { return x.ID == y.ID })
}
