package aggregator

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
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

func TestWatchSnapshotThenCoalescedUpdates(t *testing.T) {
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
	snap := readWatch(t, v)
	if snap.Kind != wire.WatchSnapshot || len(snap.Nodes) != 2 || snap.Aggregator != "test" || snap.Version != wire.WatchVersion {
		t.Fatalf("snapshot kind %s nodes %d aggregator %q", snap.Kind, len(snap.Nodes), snap.Aggregator)
	}
	if snap.Summary.GPUsOnline != 4 {
		t.Fatalf("snapshot summary %+v", snap.Summary)
	}
	// Many records for a only: the next update carries a once, at its latest.
	ca.samples(a, 2, 3, 4)
	ca.samples(a, 5)
	ca.waitAck(5)
	for {
		m := readWatch(t, v)
		if m.Kind != wire.WatchUpdate {
			t.Fatalf("kind %s", m.Kind)
		}
		if len(m.Nodes) == 0 {
			continue // an update from before the samples
		}
		if len(m.Nodes) != 1 || m.Nodes[0].ID != "a" {
			t.Fatalf("update nodes %v, want only a", ids(m.Nodes))
		}
		if m.Nodes[0].Seq == 5 {
			break
		}
	}
}

func ids(nodes []wire.NodeView) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out
}

// TestStalledViewerDoesNotBlockIngest: a viewer that never reads, behind a
// tiny receive buffer, is dropped once a write times out; meanwhile every
// collector keeps being applied and acked.
func TestStalledViewerDoesNotBlockIngest(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) {
		c.ViewerInterval = 5 * time.Millisecond
		c.WriteTimeout = 200 * time.Millisecond
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
	_ = stalled
	waitFor(t, "viewer connected", func() bool { return counter(t, ts.Server, "viewers") == 1 })

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
	waitFor(t, "viewer gone", func() bool { return counter(t, ts.Server, "viewers") == 0 })
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

func TestCloseSendsGoingAway(t *testing.T) {
	rec := newFakeRecorder()
	ts := startServer(t, rec, func(c *Config) { c.FlushInterval = time.Hour })
	node := testNode("n1", 2)
	c := dialCollector(t, ts, secretAll)
	c.hello(node)
	c.samples(node, 1, 2, 3)
	waitFor(t, "applied", func() bool { return nodeView(t, ts.Server, "n1").Seq == 3 })
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
