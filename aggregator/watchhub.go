package aggregator

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// The watch hub turns the live fleet into watch messages (wire.WatchMsg,
// version 2). Viewers with the same subscription share a group; one
// goroutine publishes each group's next message, encoded once, shortly after
// ingest changes something (watchDebounce), at most every watchMinGap, and
// at least once per ViewerInterval (states age without ingest, and a quiet
// fleet still shows the link alive). Each viewer
// then sends the group's latest publication: the delta when it has sent the
// one before, else one update coalescing the publications it skipped (or a
// snapshot when it has none yet), so a slow viewer skips publications
// instead of queueing them.

const (
	// watchDebounce gathers the changes of one burst of ingest into one
	// message.
	watchDebounce = 20 * time.Millisecond
	// watchMinGap bounds the message rate of a group, from one
	// publication's start to the next. A change waits for the next
	// publication: at most the gap (or the publication in progress, when
	// one takes longer), then the publication's own work, which at
	// 100,000 GPUs is a few ms (BenchmarkWatchPublishFleet). The gap was
	// 100 ms from a publication's end; on the shared 2-core VM that alone
	// took half of a 200 ms budget whenever a wake-up was late.
	watchMinGap = 50 * time.Millisecond
)

type watchHub struct {
	s    *Server
	kick chan struct{} // ingest changed something (capacity 1)
	// kicked: a kick was sent and its publication has not begun. Ingest
	// sends on kick only when it sets kicked, so a burst of 1,250 frames
	// wakes the hub once, not once per frame; the hub clears it when the
	// debounced publication begins, so later changes kick again.
	kicked atomic.Bool
	join   chan struct{} // a new group wants its first publication (capacity 1)
	// nodeKick: a node that a group has open changed; the hub publishes
	// it to those groups at once, without the debounce, the gap or the
	// rows (capacity 64; when full, the next publication carries it).
	nodeKick chan *nodeState
	open     atomic.Pointer[map[string]bool] // ids of the nodes groups have open; replaced under mu

	mu       sync.Mutex
	groups   map[string]*watchGroup // by subscription key
	watching atomic.Bool            // len(groups) > 0, for the ingest path

	// Owned by the run goroutine.
	rows     map[*nodeState]*rowEntry
	ordered  []*rowEntry
	byDef    defaultOrder // ordered in the default order, for pages in it
	fleetAt  time.Time    // when fleet was last rebuilt
	fleetJS  []byte       // encoded wire.FleetView without its alerts (version 3)
	fleetGen uint64       // bumped when fleetJS changes
	// The alerts (version 3's FleetAlerts), and version 2's FleetView with
	// them inside while a group speaks version 2 (nil otherwise).
	alertsJS   []byte
	alertsGen  uint64
	fleetV2JS  []byte
	fleetV2Gen uint64
	sumGen     uint64 // bumped when any of the three changes
	jobs       []wire.JobView
	sum        fleetSum // the latest fleet aggregates from summaries
	haveSum    bool

	sums chan fleetSum // summaries' latest aggregates (capacity 1, latest wins)
}

// fleetSum is what summarize returned at one time.
type fleetSum struct {
	sum    wire.Summary
	jobs   []wire.JobView
	alerts []fleet.Alert
}

// watchGroup is every viewer with one subscription.
type watchGroup struct {
	key     string
	sub     wire.WatchSubscribe
	viewers int // guarded by hub.mu

	mu      sync.Mutex
	cur     *watchPub     // latest publication; nil before the first
	changed chan struct{} // closed at the next publication

	// pubMu serialises the hub's publications of the group with
	// openLoop's, and guards what the latest publication holds. Order:
	// pubMu, then a node's mu, then mu.
	pubMu     sync.Mutex
	seq       uint64
	fleetGen  uint64 // of the fleet section its version is sent
	alertsGen uint64
	sumGen    uint64
	pageJS    []byte
	rowGen    map[string]uint64 // page row id → gen published
	rowJS     [][]byte          // page rows, in page order
	nodeVer   uint64
	nodeJS    []byte
	jobsJS    []byte
}

// watchPub is one publication of a group: immutable once published.
type watchPub struct {
	seq   uint64
	delta []byte // the update from seq-1; nil for the first publication

	// The whole state at seq, for viewers that need a snapshot.
	version   int
	at        time.Time
	agg       string
	fleetGen  uint64
	fleetJS   []byte
	alertsGen uint64
	alertsJS  []byte // nil for version 2
	pageJS    []byte
	rowIDs    []string
	rowGen    map[string]uint64
	rowJS     [][]byte
	nodeVer   uint64
	nodeJS    []byte
	jobsJS    []byte
	snapOnce  sync.Once
	snap      []byte

	catchMu sync.Mutex
	catchup map[uint64][]byte // coalesced updates from an older seq, by that seq
}

// hub returns the server's watch hub, starting it on first use.
func (s *Server) hub() *watchHub {
	if h := s.watchHub.Load(); h != nil {
		return h
	}
	s.watchOnce.Do(func() {
		h := newWatchHub(s)
		s.loops.Add(3)
		go func() {
			defer s.loops.Done()
			h.run(s.ctx)
		}()
		go func() {
			defer s.loops.Done()
			h.openLoop(s.ctx)
		}()
		go func() {
			defer s.loops.Done()
			h.summaries(s.ctx)
		}()
		s.watchHub.Store(h)
	})
	return s.watchHub.Load()
}

func newWatchHub(s *Server) *watchHub {
	return &watchHub{s: s, kick: make(chan struct{}, 1), join: make(chan struct{}, 1),
		groups: map[string]*watchGroup{}, rows: map[*nodeState]*rowEntry{}, sums: make(chan fleetSum, 1),
		nodeKick: make(chan *nodeState, 64)}
}

// summaries keeps the fleet aggregates fresh for the hub without holding up
// its publications: summarize walks every node (exact money, the ledger's
// lines) and took 250 ms of CPU at 100,000 GPUs; on the hub's goroutine,
// every node row and open node waited for it, which put a viewer's p99
// above a second. It asks once per ViewerInterval while anyone watches
// (summarize's cache spaces the walks further at fleet scale); the hub
// takes the latest result at its next publication.
func (h *watchHub) summaries(ctx context.Context) {
	s := h.s
	tick := time.NewTicker(max(s.cfg.ViewerInterval*9/10, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		h.mu.Lock()
		watched := len(h.groups) > 0
		h.mu.Unlock()
		if !watched {
			continue
		}
		var fs fleetSum
		fs.sum, fs.jobs, fs.alerts = s.summarize(s.clock())
		select { // latest wins; this goroutine is the only sender
		case <-h.sums:
		default:
		}
		h.sums <- fs
	}
}

// kickWatch tells the hub, if any, that node n changed (one map lookup
// more when n is open in some viewer). Cheap: called on the ingest path.
func (s *Server) kickWatch(n *nodeState) {
	h := s.watchHub.Load()
	if h == nil {
		return
	}
	if m := h.open.Load(); n != nil && m != nil && (*m)[n.id] {
		select {
		case h.nodeKick <- n:
		default:
		}
	}
	if h.kicked.Load() || !h.kicked.CompareAndSwap(false, true) {
		return // the publication to come reads this change
	}
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func subKey(sub wire.WatchSubscribe) string {
	b, _ := json.Marshal(sub)
	return string(b)
}

// normSub bounds a subscription.
func normSub(sub wire.WatchSubscribe) wire.WatchSubscribe {
	if sub.Version != wire.WatchVersionAlertsInFleet {
		sub.Version = wire.WatchVersion
	}
	sub.Nodes = normNodeQuery(sub.Nodes)
	if sub.Jobs != nil {
		q := normJobQuery(*sub.Jobs)
		sub.Jobs = &q
	}
	return sub
}

// enter adds a viewer to the group of sub, creating it.
func (h *watchHub) enter(sub wire.WatchSubscribe) *watchGroup {
	sub = normSub(sub)
	k := subKey(sub)
	h.mu.Lock()
	g := h.groups[k]
	if g == nil {
		g = &watchGroup{key: k, sub: sub, changed: make(chan struct{}), rowGen: map[string]uint64{}}
		h.groups[k] = g
		h.watching.Store(true)
	}
	g.viewers++
	first := g.viewers == 1
	if first {
		h.openChanged()
	}
	h.mu.Unlock()
	if first {
		select {
		case h.join <- struct{}{}:
		default:
		}
	}
	return g
}

// leave removes a viewer; the last one out deletes the group.
func (h *watchHub) leave(g *watchGroup) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g.viewers--
	if g.viewers == 0 && h.groups[g.key] == g {
		delete(h.groups, g.key)
		h.watching.Store(len(h.groups) > 0)
		h.openChanged()
	}
}

// openChanged republishes the set of open nodes. Caller holds h.mu.
func (h *watchHub) openChanged() {
	m := map[string]bool{}
	for _, g := range h.groups {
		if g.sub.Node != "" {
			m[g.sub.Node] = true
		}
	}
	h.open.Store(&m)
}

// latest returns the group's latest publication (nil before the first) and
// a channel closed at the next one.
func (g *watchGroup) latest() (*watchPub, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur, g.changed
}

func (h *watchHub) run(ctx context.Context) {
	s := h.s
	tick := time.NewTicker(s.cfg.ViewerInterval)
	defer tick.Stop()
	var last time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.join:
			// A new subscription gets its first message at once.
			last = time.Now() // the gap runs from a publication's start
			h.publish(true, false)
			continue
		case <-tick.C:
			// Every group hears at least once per interval, changed or
			// not: viewers tell a quiet fleet from a dead link.
			last = time.Now() // the gap runs from a publication's start
			h.publish(false, true)
			continue
		case <-h.kick:
			if !armed {
				armed = true
				timer.Reset(max(watchDebounce, time.Until(last.Add(watchMinGap))))
			}
			continue
		case <-timer.C:
			armed = false
			// Before publishing: a change made after this reads kicked
			// false and kicks again; one made before it is published now.
			h.kicked.Store(false)
			last = time.Now() // the gap runs from a publication's start
			h.publish(false, false)
		}
	}
}

// publish refreshes the rows and, once per ViewerInterval, the fleet
// aggregates, then publishes every group whose state changed (and every
// group without a publication yet; every group when heartbeat).
func (h *watchHub) publish(onlyNew, heartbeat bool) {
	s := h.s
	h.mu.Lock()
	groups := make([]*watchGroup, 0, len(h.groups))
	v2 := false // a group speaks version 2
	for _, g := range h.groups {
		groups = append(groups, g)
		v2 = v2 || g.sub.Version == wire.WatchVersionAlertsInFleet
	}
	h.mu.Unlock()
	if len(groups) == 0 {
		return
	}
	now := s.clock()
	h.refreshRows(now)
	fresh := false
	select {
	case h.sum = <-h.sums:
		h.haveSum, fresh = true, true
	default:
	}
	if !h.haveSum { // the first publication cannot wait for summaries
		h.sum.sum, h.sum.jobs, h.sum.alerts = s.summarize(now)
		h.haveSum = true
	}
	if h.fleetJS == nil || fresh || time.Since(h.fleetAt) >= s.cfg.ViewerInterval*9/10 || v2 && h.fleetV2JS == nil {
		h.refreshFleet(now, v2)
	}
	type page struct {
		total int
		rows  []*rowEntry
	}
	pages := map[wire.NodeQuery]page{} // one selection per distinct query
	for _, g := range groups {
		g.pubMu.Lock()
		if onlyNew && g.seq != 0 {
			g.pubMu.Unlock()
			continue
		}
		pg, ok := pages[g.sub.Nodes]
		if !ok {
			if q := g.sub.Nodes; defaultSort(q) {
				pg.total, pg.rows = h.byDef.page(h.ordered, q)
			} else {
				pg.total, pg.rows = pageRows(h.ordered, q)
			}
			pages[g.sub.Nodes] = pg
		}
		h.publishGroup(g, pg.total, pg.rows, now, heartbeat)
		g.pubMu.Unlock()
	}
}

// openLoop publishes open nodes as they change, on a goroutine of its own:
// at 100,000 GPUs on a busy machine a regular publication could take a
// second of wall time (each time the hub yields, thousands of collector
// sessions woken by the same second's frames run first), and an open node
// waiting for it did too. Woken by ingest's kick, this goroutine runs next
// on that processor, and the viewer it wakes runs after it.
func (h *watchHub) openLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-h.nodeKick:
			h.publishOpen(n)
		}
	}
}

// publishOpen publishes node n to every group that has it open and was
// published before, as an update holding n alone: a viewer's open node
// follows ingest without waiting for the debounce, the gap or the fleet's
// rows (the next regular publication carries the rest).
func (h *watchHub) publishOpen(n *nodeState) {
	s := h.s
	h.mu.Lock()
	var gs []*watchGroup
	for _, g := range h.groups {
		if g.sub.Node == n.id {
			gs = append(gs, g)
		}
	}
	h.mu.Unlock()
	if len(gs) == 0 || s.node(n.id) != n { // forgotten: the regular publication says so
		return
	}
	now := s.clock()
	v := n.version.Load()
	var b []byte
	for _, g := range gs {
		h.publishOpenGroup(g, n, v, &b, now)
	}
}

func (h *watchHub) publishOpenGroup(g *watchGroup, n *nodeState, v uint64, b *[]byte, now time.Time) {
	s := h.s
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	if g.seq == 0 || v == g.nodeVer && g.nodeJS != nil {
		return
	}
	g.mu.Lock()
	prev := g.cur
	g.mu.Unlock()
	if prev == nil {
		return
	}
	{
		if *b == nil {
			n.mu.Lock()
			var err error
			*b, err = s.appendNodeJSON(nil, n, now)
			n.mu.Unlock()
			if err != nil { // the regular publication counts and logs it
				*b = nil
				return
			}
		}
		var d deltaWriter
		d.begin(g.sub.Version, wire.WatchUpdate, now, s.cfg.Name, g.seq+1)
		d.key("nodes")
		d.b = append(d.b, '[')
		d.b = append(d.b, *b...)
		d.b = append(d.b, ']')
		g.seq++
		g.nodeJS, g.nodeVer = *b, v
		pub := &watchPub{seq: g.seq, delta: d.end(), version: prev.version, at: now, agg: s.cfg.Name, fleetGen: prev.fleetGen, fleetJS: prev.fleetJS,
			alertsGen: prev.alertsGen, alertsJS: prev.alertsJS, pageJS: prev.pageJS, rowIDs: prev.rowIDs, rowGen: prev.rowGen, rowJS: prev.rowJS, nodeVer: v, nodeJS: *b, jobsJS: prev.jobsJS}
		g.mu.Lock()
		g.cur = pub
		close(g.changed)
		g.changed = make(chan struct{})
		g.mu.Unlock()
	}
}

// refreshRows rebuilds the rows of nodes that changed or whose state aged.
func (h *watchHub) refreshRows(now time.Time) {
	s := h.s
	list := s.nodeList()
	same := len(list) >= len(h.ordered)
	for i := 0; same && i < len(h.ordered); i++ {
		same = list[i] == h.ordered[i].n
	}
	if !same { // nodes were forgotten (evictIdle): follow the list
		ordered := make([]*rowEntry, 0, len(list))
		rows := make(map[*nodeState]*rowEntry, len(list))
		for _, n := range list {
			if e := h.rows[n]; e != nil {
				ordered = append(ordered, e)
				rows[n] = e
			}
		}
		h.ordered, h.rows = ordered, rows
		h.byDef.stale = true
	}
	for _, n := range list[len(h.ordered):] {
		e := &rowEntry{n: n}
		h.rows[n] = e
		h.ordered = append(h.ordered, e)
		h.byDef.stale = true
	}
	for _, e := range h.ordered {
		n := e.n
		v := n.version.Load()
		if v == e.ver && e.gen > 0 && s.stateSince(e.seen, now) == e.row.State {
			continue
		}
		if e.gen == 0 {
			n.mu.Lock() // a row the page may show must exist
		} else if !n.mu.TryLock() {
			// Its session is applying a record (and kicks the hub when
			// done): the next publication rebuilds the row. The hub never
			// queues behind ingest, which may itself wait on the cost
			// engine, so one slow node never delays every viewer.
			continue
		}
		v = n.version.Load() // under the lock: what the row is built from
		region, host := e.row.Region, e.row.Hostname
		s.buildRow(e, n, v, now)
		n.mu.Unlock()
		if e.row.Region != region || e.row.Hostname != host {
			h.byDef.stale = true
		}
		e.ver = v
	}
}

// refreshFleet rebuilds the fleet aggregates from the rows and the latest
// summary: the aggregates and the alerts apart (version 3) and, when v2,
// together as version 2 sends them.
func (h *watchHub) refreshFleet(now time.Time, v2 bool) {
	h.jobs = h.sum.jobs
	fv := fleetView(h.ordered, h.sum.sum, len(h.sum.jobs), h.sum.alerts)
	alerts := wire.FleetAlerts{Alerts: fv.Alerts}
	fv.Alerts = nil
	b, err := json.Marshal(&fv)
	var ab, b2 []byte
	if err == nil {
		ab, err = json.Marshal(&alerts)
	}
	if err == nil && v2 {
		fv.Alerts = alerts.Alerts
		b2, err = json.Marshal(&fv)
	}
	if err != nil { // the last good ones stay; counted
		h.s.m.renderErrs.WithLabelValues(surfaceWatch).Inc()
		if h.s.renderLog.allow(now) {
			h.s.log.Error("watch: fleet aggregates left out", "err", err)
		}
		return
	}
	h.fleetAt = time.Now()
	changed := false
	if !bytes.Equal(b, h.fleetJS) {
		h.fleetJS = b
		h.fleetGen++
		changed = true
	}
	if !bytes.Equal(ab, h.alertsJS) {
		h.alertsJS = ab
		h.alertsGen++
		changed = true
	}
	if !bytes.Equal(b2, h.fleetV2JS) {
		h.fleetV2JS = b2 // nil while no group speaks version 2
		h.fleetV2Gen++
		changed = true
	}
	if changed {
		h.sumGen++
	}
}

// fleetFor returns the fleet section a group of version v is sent and its
// generation, and the alerts section (nil for version 2) and its.
func (h *watchHub) fleetFor(v int) (fleetJS []byte, fleetGen uint64, alertsJS []byte, alertsGen uint64) {
	if v == wire.WatchVersionAlertsInFleet {
		return h.fleetV2JS, h.fleetV2Gen, nil, 0
	}
	return h.fleetJS, h.fleetGen, h.alertsJS, h.alertsGen
}

// publishGroup builds g's next publication from its page (total rows pass
// its filter; rows are the page's, in order) when anything it shows
// changed.
func (h *watchHub) publishGroup(g *watchGroup, total int, rows []*rowEntry, now time.Time, heartbeat bool) {
	s := h.s
	q := g.sub.Nodes
	page := wire.NodePage{Query: q, Total: total, Offset: q.Offset, IDs: []string{}}
	for _, e := range rows {
		page.IDs = append(page.IDs, e.row.ID)
	}
	pageJS, _ := json.Marshal(&page)

	fleetJS, fleetGen, alertsJS, alertsGen := h.fleetFor(g.sub.Version)
	var d deltaWriter
	d.begin(g.sub.Version, wire.WatchUpdate, now, s.cfg.Name, g.seq+1)
	changed := false
	if g.fleetGen != fleetGen {
		d.field("fleet", fleetJS)
		changed = true
	}
	if g.alertsGen != alertsGen {
		d.field("fleet_alerts", alertsJS)
		changed = true
	}
	if !bytes.Equal(pageJS, g.pageJS) {
		d.field("page", pageJS)
		changed = true
	} else {
		pageJS = g.pageJS
	}
	rowGen := make(map[string]uint64, len(rows))
	rowJS := make([][]byte, 0, len(rows))
	first := true
	for _, e := range rows {
		js := e.encoded()
		rowJS = append(rowJS, js)
		rowGen[e.row.ID] = e.gen
		if g.rowGen[e.row.ID] == e.gen {
			continue
		}
		d.elem("rows", &first, js)
		changed = true
	}
	d.endArray(first)
	nodeJS, nodeVer := g.nodeJS, g.nodeVer
	if id := g.sub.Node; id != "" {
		n := s.node(id)
		if n == nil && nodeJS != nil { // forgotten since
			nodeJS, nodeVer = nil, 0
			d.key("removed")
			d.b = append(d.b, '[')
			d.b = appendString(d.b, id)
			d.b = append(d.b, ']')
			changed = true
		}
		if n != nil {
			if v := n.version.Load(); v != g.nodeVer || nodeJS == nil || g.seq == 0 {
				n.mu.Lock()
				b, err := s.appendNodeJSON(nil, n, now)
				n.mu.Unlock()
				if err != nil { // left out, counted; the watch goes on
					s.m.renderErrs.WithLabelValues(surfaceWatch).Inc()
					if s.renderLog.allow(now) {
						s.log.Error("watch: open node left out", "node", id, "err", err)
					}
				} else {
					nodeJS, nodeVer = b, v
					d.key("nodes")
					d.b = append(d.b, '[')
					d.b = append(d.b, b...)
					d.b = append(d.b, ']')
					changed = true
				}
			}
		}
	}
	jobsJS := g.jobsJS
	if g.sub.Jobs != nil && (g.sumGen != h.sumGen || jobsJS == nil) {
		jp := jobPage(h.jobs, *g.sub.Jobs)
		b, _ := json.Marshal(&jp)
		if !bytes.Equal(b, jobsJS) {
			jobsJS = b
			d.field("job_page", b)
			changed = true
		}
	}
	if !changed && !heartbeat && g.seq > 0 {
		return
	}
	g.seq++
	g.fleetGen, g.alertsGen, g.sumGen = fleetGen, alertsGen, h.sumGen
	g.pageJS, g.rowGen, g.rowJS, g.nodeJS, g.nodeVer, g.jobsJS = pageJS, rowGen, rowJS, nodeJS, nodeVer, jobsJS
	pub := &watchPub{seq: g.seq, version: g.sub.Version, at: now, agg: s.cfg.Name, fleetGen: fleetGen, fleetJS: fleetJS,
		alertsGen: alertsGen, alertsJS: alertsJS, pageJS: pageJS,
		rowIDs: page.IDs, rowGen: rowGen, rowJS: rowJS, nodeVer: nodeVer, nodeJS: nodeJS, jobsJS: jobsJS}
	if g.seq > 1 {
		pub.delta = d.end()
	}
	g.mu.Lock()
	g.cur = pub
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

// snapshot is the whole state at p.seq, encoded once for every viewer that
// needs it.
func (p *watchPub) snapshot() []byte {
	p.snapOnce.Do(func() {
		var d deltaWriter
		d.begin(p.version, wire.WatchSnapshot, p.at, p.agg, p.seq)
		d.field("fleet", p.fleetJS)
		d.field("fleet_alerts", p.alertsJS)
		d.field("page", p.pageJS)
		d.key("rows")
		d.b = append(d.b, '[')
		for i, r := range p.rowJS {
			if i > 0 {
				d.b = append(d.b, ',')
			}
			d.b = append(d.b, r...)
		}
		d.b = append(d.b, ']')
		if p.nodeJS != nil {
			d.key("nodes")
			d.b = append(d.b, '[')
			d.b = append(d.b, p.nodeJS...)
			d.b = append(d.b, ']')
		}
		if p.jobsJS != nil {
			d.field("job_page", p.jobsJS)
		}
		p.snap = d.end()
	})
	return p.snap
}

// since is the update from old (an earlier publication of the same group)
// to p: one message that coalesces every publication in between, so a
// viewer that fell behind catches up with what changed, not with a
// snapshot. Viewers behind by the same amount share its encoding.
func (p *watchPub) since(old *watchPub) []byte {
	if old.seq+1 == p.seq && p.delta != nil {
		return p.delta
	}
	p.catchMu.Lock()
	defer p.catchMu.Unlock()
	if b, ok := p.catchup[old.seq]; ok {
		return b
	}
	var d deltaWriter
	d.begin(p.version, wire.WatchUpdate, p.at, p.agg, p.seq)
	if old.fleetGen != p.fleetGen {
		d.field("fleet", p.fleetJS)
	}
	if old.alertsGen != p.alertsGen {
		d.field("fleet_alerts", p.alertsJS)
	}
	if !bytes.Equal(old.pageJS, p.pageJS) {
		d.field("page", p.pageJS)
	}
	first := true
	for i, id := range p.rowIDs {
		if g, ok := old.rowGen[id]; ok && g == p.rowGen[id] {
			continue
		}
		d.elem("rows", &first, p.rowJS[i])
	}
	d.endArray(first)
	if p.nodeJS == nil && old.nodeJS != nil {
		var m struct {
			Nodes []struct {
				ID string `json:"id"`
			} `json:"nodes"`
		}
		_ = json.Unmarshal(append(append([]byte(`{"nodes":[`), old.nodeJS...), ']', '}'), &m)
		if len(m.Nodes) == 1 {
			d.key("removed")
			d.b = append(d.b, '[')
			d.b = appendString(d.b, m.Nodes[0].ID)
			d.b = append(d.b, ']')
		}
	}
	if p.nodeJS != nil && (p.nodeVer != old.nodeVer || old.nodeJS == nil) {
		d.key("nodes")
		d.b = append(d.b, '[')
		d.b = append(d.b, p.nodeJS...)
		d.b = append(d.b, ']')
	}
	if p.jobsJS != nil && !bytes.Equal(old.jobsJS, p.jobsJS) {
		d.field("job_page", p.jobsJS)
	}
	b := d.end()
	if p.catchup == nil {
		p.catchup = map[uint64][]byte{}
	}
	p.catchup[old.seq] = b
	return b
}

// deltaWriter writes a wire.WatchMsg from pre-encoded sections.
type deltaWriter struct{ b []byte }

func (d *deltaWriter) begin(version int, kind string, t time.Time, agg string, seq uint64) {
	d.b = append(d.b, `{"version":`...)
	d.b = strconv.AppendInt(d.b, int64(version), 10)
	d.b = append(d.b, `,"kind":`...)
	d.b = appendString(d.b, kind)
	d.b = append(d.b, `,"time":"`...)
	d.b = t.AppendFormat(d.b, time.RFC3339Nano)
	d.b = append(d.b, '"')
	if agg != "" {
		d.b = append(d.b, `,"aggregator":`...)
		d.b = appendString(d.b, agg)
	}
	d.b = append(d.b, `,"seq":`...)
	d.b = strconv.AppendUint(d.b, seq, 10)
}

func (d *deltaWriter) key(k string) {
	d.b = append(d.b, ',', '"')
	d.b = append(d.b, k...)
	d.b = append(d.b, '"', ':')
}

func (d *deltaWriter) field(k string, js []byte) {
	if js == nil {
		return
	}
	d.key(k)
	d.b = append(d.b, js...)
}

// elem appends js to the array field k, opening the array at the first
// element (*first true); endArray closes it if it was opened. An array with
// no elements is left out.
func (d *deltaWriter) elem(k string, first *bool, js []byte) {
	if *first {
		d.key(k)
		d.b = append(d.b, '[')
		*first = false
	} else {
		d.b = append(d.b, ',')
	}
	d.b = append(d.b, js...)
}

func (d *deltaWriter) endArray(first bool) {
	if !first {
		d.b = append(d.b, ']')
	}
}

func (d *deltaWriter) end() []byte { return append(d.b, '}') }

// stateSince is stateAt for a node last heard at seen.
func (s *Server) stateSince(seen, now time.Time) string {
	age := now.Sub(seen)
	switch {
	case age <= s.cfg.StaleAfter:
		return wire.StateOnline
	case age <= s.cfg.OfflineAfter:
		return wire.StateStale
	}
	return wire.StateOffline
}
