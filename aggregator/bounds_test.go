package aggregator

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/wire"
)

// One token cannot invent unlimited node ids: past MaxNodesPerToken a new id
// is refused with CloseLimit, counted; known ids still connect.
func TestNodeLimitPerToken(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.MaxNodesPerToken = 2 })
	for _, id := range []string{"n1", "n2"} {
		c := dialCollector(t, ts, secretAll)
		c.hello(testNode(id, 1))
		c.conn.Close(websocket.StatusNormalClosure, "")
	}
	c := dialCollector(t, ts, secretAll)
	c.send(&wire.Hello{Proto: wire.Version, Node: testNode("n3", 1)})
	cl, status := c.waitClose()
	if status != websocket.StatusCode(wire.CloseLimit) || cl == nil || cl.Code != wire.CloseLimit {
		t.Fatalf("third node id closed with %d / %+v, want %d", status, cl, wire.CloseLimit)
	}
	if got := counter(t, ts.Server, "rejected", rejectNodeLimit); got != 1 {
		t.Errorf("rejected{node_limit} = %v, want 1", got)
	}
	if len(ts.Nodes()) != 2 {
		t.Errorf("%d nodes, want 2", len(ts.Nodes()))
	}
	again := dialCollector(t, ts, secretAll)
	again.hello(testNode("n1", 1)) // a known id is not a new one
}

// A node idle past NodeTTL is forgotten: it leaves viewers' pages, its
// token may use the slot again, and it resumes where it was when it returns.
func TestIdleNodesEvicted(t *testing.T) {
	clk := newFakeClock()
	ts := startServer(t, nil, func(c *Config) {
		c.Clock = clk.Now
		c.NodeTTL = time.Hour
		c.MaxNodesPerToken = 1
		c.ViewerInterval = 20 * time.Millisecond
	})
	node, c := helloN1(t, ts, 1)
	c.samples(node, 1, 2)
	c.waitAck(2)
	c.conn.Close(websocket.StatusNormalClosure, "")
	v := dialViewer(t, ts, nil)
	if snap := readWatch(t, v); snap.Page == nil || len(snap.Page.IDs) != 1 {
		t.Fatalf("snapshot page %+v", snap.Page)
	}
	testutil.WaitFor(t, "session gone", func() bool {
		n := ts.node("n1")
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.sess == nil
	})
	clk.Advance(59 * time.Minute)
	ts.evictIdle(clk.Now())
	if len(ts.Nodes()) != 1 {
		t.Fatal("evicted before the TTL")
	}
	clk.Advance(2 * time.Minute)
	ts.evictIdle(clk.Now())
	if len(ts.Nodes()) != 0 {
		t.Fatal("idle node not evicted after the TTL")
	}
	for { // the viewer's page no longer lists it
		m := readWatch(t, v)
		if m.Page != nil && !slices.Contains(m.Page.IDs, "n1") {
			break
		}
	}
	if got := promtest.ToFloat64(ts.m.evicted); got != 1 {
		t.Errorf("evicted %v, want 1", got)
	}
	// The slot is free for another node id, and n1 resumes after 2.
	c2 := dialCollector(t, ts, secretAll)
	c2.hello(testNode("n2", 1))
	c2.conn.Close(websocket.StatusNormalClosure, "")
	testutil.WaitFor(t, "n2 session gone", func() bool {
		n := ts.node("n2")
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.sess == nil
	})
	clk.Advance(2 * time.Hour)
	ts.evictIdle(clk.Now())
	c3 := dialCollector(t, ts, secretAll)
	if got := c3.hello(node); got != 3 {
		t.Fatalf("returning node resumes from %d, want 3", got)
	}
}

// Keep-alive connections are closed once idle; connections past MaxConns
// are closed at once and counted.
func TestConnectionBounds(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) {
		c.IdleTimeout = 100 * time.Millisecond
	})
	// Idle keep-alive: the server closes it.
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection: read %v, want EOF (closed by the server)", err)
	}
	// Two held connections fill the cap of a second server; a third is
	// closed at once.
	ts = startServer(t, nil, func(c *Config) { c.MaxConns = 2 })
	var held []net.Conn
	for range 2 {
		h, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		io.WriteString(h, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") // makes sure it was accepted
		hr := bufio.NewReader(h)
		if _, err := http.ReadResponse(hr, nil); err != nil {
			t.Fatal(err)
		}
		held = append(held, h)
	}
	x, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	io.WriteString(x, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	x.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(x), nil); err == nil {
		t.Fatal("a connection past the cap was served")
	}
	if got := counter(t, ts.Server, "rejected", rejectConnLimit); got < 1 {
		t.Errorf("rejected{conn_limit} = %v, want ≥ 1", got)
	}
	_ = held
}

// A flood of refused requests is logged once a minute at Warn, never once
// per request at Info.
func TestAuthFailuresRateLimited(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	ts := startServer(t, nil, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	for range 50 {
		resp, err := http.Get(ts.httpURL("/api/v1/fleet"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(buf.String(), "refusing requests without a valid token"); n != 1 {
		t.Fatalf("%d auth warnings for 50 refused requests, want 1:\n%s", n, buf.String())
	}
	if strings.Contains(buf.String(), "level=INFO msg=\"unauthorized") {
		t.Fatal("refused requests logged at Info")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
