package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/wire"
)

func dialViewer(t *testing.T, ts *testServer, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	if opts == nil {
		opts = dialOpts(secretViewer)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, ts.wsURL("/v1/watch"), opts)
	if err != nil {
		t.Fatalf("dial viewer: %v", err)
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func readWatch(t *testing.T, c *websocket.Conn) wire.WatchMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read watch: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("watch message type %v", typ)
	}
	var m wire.WatchMsg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode watch: %v", err)
	}
	return m
}

// viewerState applies watch messages as a viewer does: updates on top of
// the last message, checking that Seq increases.
type viewerState struct {
	t     *testing.T
	seq   uint64
	fleet *wire.FleetView
	page  *wire.NodePage
	rows  map[string]wire.NodeRow
	node  *wire.NodeView
	jobs  *wire.JobPage
}

func (vs *viewerState) apply(m wire.WatchMsg) {
	vs.t.Helper()
	if m.Version != wire.WatchVersion {
		vs.t.Fatalf("version %d", m.Version)
	}
	switch m.Kind {
	case wire.WatchSnapshot:
		*vs = viewerState{t: vs.t, rows: map[string]wire.NodeRow{}}
		if m.Fleet == nil || m.Page == nil {
			vs.t.Fatalf("snapshot without fleet or page: %+v", m)
		}
	case wire.WatchUpdate:
		if m.Seq <= vs.seq {
			vs.t.Fatalf("update seq %d after %d", m.Seq, vs.seq)
		}
	default:
		vs.t.Fatalf("kind %q", m.Kind)
	}
	vs.seq = m.Seq
	if m.Fleet != nil {
		vs.fleet = m.Fleet
	}
	if m.Page != nil {
		vs.page = m.Page
	}
	for _, r := range m.Rows {
		vs.rows[r.ID] = r
	}
	if len(m.Nodes) > 0 {
		vs.node = &m.Nodes[0]
	}
	if m.JobPage != nil {
		vs.jobs = m.JobPage
	}
	for _, id := range vs.page.IDs {
		if _, ok := vs.rows[id]; !ok {
			vs.t.Fatalf("page row %s never sent", id)
		}
	}
}

func subscribe(t *testing.T, c *websocket.Conn, sub wire.WatchSubscribe) {
	t.Helper()
	b, _ := json.Marshal(sub)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// TestWatchDefaultThenDeltas: a viewer that sends nothing gets the fleet
// aggregates and the first page of rows, then deltas holding only the rows
// that changed.
func TestWatchDefaultThenDeltas(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.ViewerInterval = 20 * time.Millisecond })
	a, b := testNode("a", 2), testNode("b", 2)
	ca, cb := dialCollector(t, ts, secretAll), dialCollector(t, ts, secretAll)
	ca.hello(a)
	cb.hello(b)
	ca.samples(a, 1)
	cb.samples(b, 1)
	ca.waitAck(1)
	cb.waitAck(1)

	v := dialViewer(t, ts, nil)
	vs := &viewerState{t: t}
	snap := readWatch(t, v)
	if snap.Kind != wire.WatchSnapshot || snap.Aggregator != "test" {
		t.Fatalf("first message kind %s aggregator %q", snap.Kind, snap.Aggregator)
	}
	vs.apply(snap)
	if vs.fleet.Summary.GPUsOnline != 4 || len(vs.fleet.Regions) != 1 || vs.fleet.Regions[0].GPUs != 4 {
		t.Fatalf("fleet %+v", vs.fleet)
	}
	if vs.page.Total != 2 || len(vs.page.IDs) != 2 || vs.page.IDs[0] != "a" || len(snap.Nodes) != 0 {
		t.Fatalf("page %+v, %d full nodes", vs.page, len(snap.Nodes))
	}
	if r := vs.rows["a"]; r.GPUs != 2 || r.Util == nil || r.Models["NVIDIA H100 80GB HBM3"] != 2 || r.BurnPerHour.Micros != 5_000_000 {
		t.Fatalf("row a %+v", r)
	}
	// Many records for a only: the updates carry a, never b.
	ca.samples(a, 2, 3, 4)
	ca.samples(a, 5)
	ca.waitAck(5)
	for {
		m := readWatch(t, v)
		vs.apply(m)
		for _, r := range m.Rows {
			if r.ID != "a" {
				t.Fatalf("update rows carry %s", r.ID)
			}
		}
		if u := vs.rows["a"].Util; u != nil && *u == (0.05+0.06)/2 {
			break
		}
	}
}

// TestWatchSubscription: the server filters, sorts and pages; the open node
// comes in full; jobs come by page.
func TestWatchSubscription(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.ViewerInterval = 20 * time.Millisecond })
	var cs []*collector
	var ns []fleet.Node
	for i := range 12 {
		n := testNode(fmt.Sprintf("n%02d", i), 4)
		c := dialCollector(t, ts, secretAll)
		c.hello(n)
		c.samples(n, uint64(i+1)) // util differs per node
		c.waitAck(uint64(i + 1))
		cs, ns = append(cs, c), append(ns, n)
	}
	v := dialViewer(t, ts, nil)
	vs := &viewerState{t: t}
	vs.apply(readWatch(t, v))
	if vs.page.Total != 12 || len(vs.page.IDs) != 12 {
		t.Fatalf("default page %+v", vs.page)
	}
	subscribe(t, v, wire.WatchSubscribe{Version: wire.WatchVersion, Nodes: wire.NodeQuery{Sort: wire.SortUtil, Filter: "N0", Offset: 1, Limit: 3}, Node: "n11",
		Jobs: &wire.JobQuery{Limit: 5}})
	for {
		m := readWatch(t, v)
		vs.apply(m)
		if m.Kind == wire.WatchSnapshot && vs.page.Query.Sort == wire.SortUtil {
			break
		}
	}
	// n00..n09 pass the filter; by utilisation, highest first: seq 9 → n08 … skip one.
	if vs.page.Total != 10 || vs.page.Offset != 1 || len(vs.page.IDs) != 3 {
		t.Fatalf("page %+v", vs.page)
	}
	for i := 1; i < len(vs.page.IDs); i++ {
		if *vs.rows[vs.page.IDs[i-1]].Util < *vs.rows[vs.page.IDs[i]].Util {
			t.Fatalf("page not by utilisation: %v", vs.page.IDs)
		}
	}
	if vs.node == nil || vs.node.ID != "n11" || len(vs.node.Devices) != 4 {
		t.Fatalf("open node %+v", vs.node)
	}
	if vs.jobs == nil || vs.jobs.Total != 0 {
		t.Fatalf("job page %+v", vs.jobs)
	}
	// The open node's changes arrive in full.
	cs[11].samples(ns[11], 13)
	cs[11].waitAck(13)
	for vs.node.Seq != 13 {
		vs.apply(readWatch(t, v))
	}
}

// TestWatchSharedEncoding: viewers with the same subscription share one
// group, and receive byte-identical messages.
func TestWatchSharedEncoding(t *testing.T) {
	ts := startServer(t, nil, nil)
	a := testNode("a", 2)
	ca := dialCollector(t, ts, secretAll)
	ca.hello(a)
	ca.samples(a, 1)
	ca.waitAck(1)
	v1, v2 := dialViewer(t, ts, nil), dialViewer(t, ts, nil)
	read := func(c *websocket.Conn) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1, b2 := read(v1), read(v2)
	if string(b1) != string(b2) {
		t.Fatalf("two viewers of one subscription got different snapshots:\n%s\n%s", b1, b2)
	}
	h := ts.hub()
	h.mu.Lock()
	groups := len(h.groups)
	h.mu.Unlock()
	if groups != 1 {
		t.Fatalf("%d groups for one subscription", groups)
	}
}

// TestWatchSlowViewerCoalesced: a viewer that missed publications gets one
// update with what changed since the last it sent, not every delta.
func TestWatchSlowViewerCoalesced(t *testing.T) {
	ts := startServer(t, nil, nil)
	h := ts.hub()
	g := h.enter(wire.DefaultSubscription())
	defer h.leave(g)
	a := testNode("a", 2)
	ca := dialCollector(t, ts, secretAll)
	ca.hello(a)
	var first *watchPub
	for seq := uint64(1); ; seq++ {
		ca.samples(a, seq)
		ca.waitAck(seq)
		pub, _ := g.latest()
		if first == nil {
			first = pub
		}
		if pub == nil || first == nil || pub.seq <= first.seq+1 {
			continue
		}
		vs := &viewerState{t: t}
		var m wire.WatchMsg
		if err := json.Unmarshal(first.snapshot(), &m); err != nil {
			t.Fatal(err)
		}
		vs.apply(m)
		m = wire.WatchMsg{}
		if err := json.Unmarshal(pub.since(first), &m); err != nil {
			t.Fatal(err)
		}
		if m.Kind != wire.WatchUpdate || m.Seq != pub.seq || len(m.Rows) != 1 {
			t.Fatalf("coalesced update %+v", m)
		}
		vs.apply(m)
		if got, want := vs.rows["a"].LastSeen, pub.at; got.After(want) {
			t.Fatalf("row from %v after the publication at %v", got, want)
		}
		return
	}
}

// TestStalledViewerDoesNotBlockIngest: a viewer that never reads, behind a
// tiny receive buffer, is dropped once a write times out; meanwhile every
// collector keeps being applied and acked.
func TestStalledViewerDoesNotBlockIngest(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) {
		c.ViewerInterval = 20 * time.Millisecond
		// Long enough that no ack to the collectors below, delayed by a
		// loaded machine, times out and closes their sessions.
		c.WriteTimeout = time.Second
		c.Insights = &manyJobs{}
	})
	tiny := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}}
	opts := dialOpts(secretViewer)
	opts.HTTPClient = tiny
	stalled := dialViewer(t, ts, opts) // never read from
	// A big page of jobs that changes every time, so that the stream fills
	// the socket soon.
	subscribe(t, stalled, wire.WatchSubscribe{Nodes: wire.NodeQuery{Limit: wire.MaxPageRows}, Node: "na", Jobs: &wire.JobQuery{Limit: wire.MaxPageRows}})
	testutil.WaitFor(t, "viewer connected", func() bool { return counter(t, ts.Server, "viewers") == 1 })

	const nodes = 10
	var cs [nodes]*collector
	var ns [nodes]fleet.Node
	for i := range cs {
		ns[i] = testNode("n"+string(rune('a'+i)), 8)
		cs[i] = dialCollector(t, ts, secretAll)
		cs[i].hello(ns[i])
	}
	var seq uint64
	var acked atomic.Uint64
	deadline := time.Now().Add(20 * time.Second)
	for counter(t, ts.Server, "viewer_drops") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("stalled viewer was never dropped")
		}
		seq++
		for i := range cs {
			cs[i].samples(ns[i], seq)
		}
		if seq%50 == 0 { // ingest is still acked while the viewer stalls
			for i := range cs {
				acked.Store(cs[i].waitAck(seq))
			}
		}
	}
	testutil.WaitFor(t, "viewer gone", func() bool { return counter(t, ts.Server, "viewers") == 0 })
	// After the drop, ingest goes on as before.
	seq++
	for i := range cs {
		cs[i].samples(ns[i], seq)
		cs[i].waitAck(seq)
	}
	if v := nodeView(t, ts.Server, "na"); v.Seq != seq || v.Gaps != 0 {
		t.Fatalf("node a at seq %d gaps %d, want %d and 0", v.Seq, v.Gaps, seq)
	}
	t.Logf("viewer dropped after %d records per node, %d acked meanwhile", seq, acked.Load())
}

// manyJobs reports 400 big jobs whose figures change at every call (some
// 400 KB of job page each time).
type manyJobs struct {
	fakeInsights
	calls atomic.Int64
	nodes []string
}

func (m *manyJobs) Summarize(time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	k := m.calls.Add(1)
	if m.nodes == nil { // read-only once built; Summarize calls are serialised
		for i := range 64 {
			m.nodes = append(m.nodes, fmt.Sprintf("node-%04d", i))
		}
	}
	jobs := make([]wire.JobView, 400)
	for i := range jobs {
		jobs[i] = wire.JobView{Job: fleet.Job{ID: fmt.Sprintf("job-%04d", i), Team: "research"}, GPUs: int(k), Util: 0.5,
			Regions: []string{"Singapore"}, Nodes: m.nodes, Allowed: true}
	}
	return wire.Summary{Currency: "USD"}, jobs, nil
}

func TestCloseSendsGoingAway(t *testing.T) {
	rec := newFakeRecorder()
	ts := startServer(t, rec, func(c *Config) { c.FlushInterval = time.Hour })
	node, c := helloN1(t, ts, 2)
	c.samples(node, 1, 2, 3)
	testutil.WaitFor(t, "applied", func() bool { return nodeView(t, ts.Server, "n1").Seq == 3 })
	v := dialViewer(t, ts, nil)
	readWatch(t, v)

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- ts.Close(ctx)
	}()
	// The final commit is acked before the going-away close.
	var acked uint64
	var cl *wire.Close
	var status websocket.StatusCode
	for {
		f, err := c.recv()
		if err != nil {
			status = websocket.CloseStatus(err)
			break
		}
		switch f := f.(type) {
		case *wire.Ack:
			acked = f.Seq
		case *wire.Close:
			cp := *f
			cl = &cp
		}
	}
	if acked != 3 || cl == nil || cl.Code != wire.CloseGoingAway || status != websocket.StatusGoingAway {
		t.Fatalf("ack %d, close frame %+v, status %d; want ack 3 and going away", acked, cl, status)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err := v.Read(ctx)
		cancel()
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusGoingAway {
				t.Fatalf("viewer closed with %v", err)
			}
			break
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if rec.durable["n1"] != 3 {
		t.Fatalf("durable %d after close", rec.durable["n1"])
	}
	// Nothing new is accepted.
	resp, err := http.Get(ts.httpURL("/healthz"))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("still serving after close: %d", resp.StatusCode)
	}
}

// A degraded node still reports: its region counts it online, as the
// summary's GPUsOnline and the TUI's own region rows do, never offline.
func TestRegionRowCountsDegradedOnline(t *testing.T) {
	rows := []*rowEntry{
		{row: wire.NodeRow{ID: "a", Region: "Johor", State: wire.StateOnline, GPUs: 8}, util: math.NaN()},
		{row: wire.NodeRow{ID: "b", Region: "Johor", State: wire.StateDegraded, GPUs: 8}, util: math.NaN()},
		{row: wire.NodeRow{ID: "c", Region: "Johor", State: wire.StateStale, GPUs: 8}, util: math.NaN()},
		{row: wire.NodeRow{ID: "d", Region: "Johor", State: wire.StateOffline, GPUs: 8}, util: math.NaN()},
	}
	fv := fleetView(rows, wire.Summary{}, 0, nil)
	if len(fv.Regions) != 1 {
		t.Fatalf("regions %+v", fv.Regions)
	}
	if r := fv.Regions[0]; r.Nodes != 4 || r.Online != 2 || r.Stale != 1 || r.Offline != 1 {
		t.Errorf("Johor: %d nodes, online %d, stale %d, offline %d; want 4, 2, 1, 1", r.Nodes, r.Online, r.Stale, r.Offline)
	}
}

// TestRowsAfterAnUnwatchedSpell: while nobody watches, ingest leaves the
// list rows' figures alone (no work for rows nobody reads); a viewer that
// comes later still gets them as of the last sample.
func TestRowsAfterAnUnwatchedSpell(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.ViewerInterval = 20 * time.Millisecond })
	a := testNode("a", 2)
	ca := dialCollector(t, ts, secretAll)
	ca.hello(a)
	ca.samples(a, 1)
	ca.waitAck(1)
	v := dialViewer(t, ts, nil)
	readWatch(t, v)
	v.Close(websocket.StatusNormalClosure, "")
	h := ts.Server.watchHub.Load()
	testutil.WaitFor(t, "the viewer gone", func() bool { return !h.watching.Load() })

	ca.samples(a, 2, 3, 4, 5)
	ca.waitAck(5)
	n := ts.Server.node("a")
	n.mu.Lock()
	taken, ver := n.row.ver, n.version.Load()
	n.mu.Unlock()
	if taken == ver {
		t.Errorf("row figures taken at version %d while nobody watched", ver)
	}
	vs := &viewerState{t: t}
	vs.apply(readWatch(t, dialViewer(t, ts, nil)))
	if u := vs.rows["a"].Util; u == nil || *u != (0.05+0.06)/2 {
		t.Fatalf("row a after the spell: util %v, want the last sample's", u)
	}
}

// changingAlerts reports aggregates that change at every call and alerts
// that change only when the test says.
type changingAlerts struct {
	fakeInsights
	calls  atomic.Int64
	alerts atomic.Pointer[[]fleet.Alert]
}

func (c *changingAlerts) Summarize(time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	k := c.calls.Add(1)
	return wire.Summary{Currency: "USD", BlindBurnPerHour: fleet.Money{Micros: k, Currency: "USD"}}, nil, slices.Clone(*c.alerts.Load())
}

// TestWatchAlertsApart: version 3 sends the alerts in their own section,
// only when they change, while the aggregates change every time; a viewer
// that asks for version 2 gets them inside the aggregates, every time.
func TestWatchAlertsApart(t *testing.T) {
	ins := &changingAlerts{}
	alert := func(id string) fleet.Alert {
		return fleet.Alert{ID: id, Kind: fleet.EventXID, Severity: fleet.SevCritical, Node: "a", Message: id, Start: time.Unix(1e9, 0).UTC()}
	}
	one := []fleet.Alert{alert("xid/a/0")}
	ins.alerts.Store(&one)
	ts := startServer(t, nil, func(c *Config) { c.ViewerInterval = 20 * time.Millisecond; c.Insights = ins })
	a := testNode("a", 2)
	ca := dialCollector(t, ts, secretAll)
	ca.hello(a)
	ca.samples(a, 1)
	ca.waitAck(1)

	v3 := dialViewer(t, ts, nil) // never subscribes: the newest version
	m := readWatch(t, v3)
	if m.Version != 3 || m.Kind != wire.WatchSnapshot || m.FleetAlerts == nil || len(m.FleetAlerts.Alerts) != 1 || m.Fleet == nil || len(m.Fleet.Alerts) != 0 {
		t.Fatalf("version 3 snapshot: version %d kind %s fleet_alerts %+v fleet %+v", m.Version, m.Kind, m.FleetAlerts, m.Fleet)
	}
	for fleets := 0; fleets < 3; {
		m := readWatch(t, v3)
		if m.FleetAlerts != nil {
			t.Fatalf("unchanged alerts sent again: %+v", m.FleetAlerts)
		}
		if m.Fleet != nil {
			if len(m.Fleet.Alerts) != 0 || m.Fleet.AlertsTotal != 1 {
				t.Fatalf("version 3 fleet holds %d alerts, total %d", len(m.Fleet.Alerts), m.Fleet.AlertsTotal)
			}
			fleets++
		}
	}
	two := []fleet.Alert{alert("xid/a/0"), alert("xid/a/1")}
	ins.alerts.Store(&two)
	for {
		m := readWatch(t, v3)
		if m.FleetAlerts != nil {
			if len(m.FleetAlerts.Alerts) != 2 {
				t.Fatalf("changed alerts: %+v", m.FleetAlerts)
			}
			break
		}
	}

	v2 := dialViewer(t, ts, nil)
	subscribe(t, v2, wire.WatchSubscribe{Version: 2, Nodes: wire.NodeQuery{Limit: wire.DefaultPageRows}})
	for fleets := 0; fleets < 3; {
		m := readWatch(t, v2)
		if m.Version != 2 {
			continue // what came before the subscription
		}
		if m.FleetAlerts != nil {
			t.Fatalf("version 2 got a fleet_alerts section")
		}
		if m.Fleet != nil {
			if len(m.Fleet.Alerts) != 2 {
				t.Fatalf("version 2 fleet holds %d alerts, want 2", len(m.Fleet.Alerts))
			}
			fleets++
		}
	}
}
