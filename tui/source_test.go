package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/aggregator"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// waitSnap reads snapshots until ok accepts one, or fails after 10 s.
func waitSnap(t *testing.T, src Source, what string, ok func(*Snapshot) bool) *Snapshot {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s, open := <-src.Snapshots():
			if !open {
				t.Fatalf("source closed while waiting for %s", what)
			}
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func startSource(t *testing.T, eps []Endpoint) *WatchSource {
	t.Helper()
	src := NewWatchSource(Options{Aggregators: eps, Refresh: 20 * time.Millisecond})
	src.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := src.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return src
}

// fakeWatchServer speaks the watch stream: each connection gets a snapshot of
// the node set, then the server drops it (to test reconnecting).
type fakeWatchServer struct {
	conns atomic.Int32
	token string
}

func (f *fakeWatchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	if r.URL.Path == "/api/v1/history" {
		u, d := 0.5, 0
		json.NewEncoder(w).Encode(wire.HistoryResponse{Scope: "node", ID: r.URL.Query().Get("node"),
			Range: r.URL.Query().Get("range"), StepS: 60,
			Series: []wire.HistorySeries{{Name: "node"}, {Name: "gpu 0", Device: &d, Util: []*float64{&u, nil, &u}}}})
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	n := f.conns.Add(1)
	msg := fixtureMsgs()[0]
	msg.Aggregator = fmt.Sprintf("fake-%d", n)
	b, _ := json.Marshal(msg)
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, b)
	if n == 1 {
		c.CloseNow() // drop the first connection
		return
	}
	c.Read(ctx) // hold the second one open until the client goes
	c.CloseNow()
}

func TestWatchSourceReconnectsToFake(t *testing.T) {
	fs := &fakeWatchServer{token: "v-secret"}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	src := startSource(t, []Endpoint{{URL: srv.URL, Token: "v-secret"}})
	s := waitSnap(t, src, "first snapshot", func(s *Snapshot) bool { return len(s.Nodes) == 6 })
	if s.Summary.GPUsOnline != 32 || s.Currency != "USD" {
		t.Errorf("summary = %+v", s.Summary)
	}
	s = waitSnap(t, src, "data after the dropped connection", func(s *Snapshot) bool {
		return s.Conns[0].Name == "fake-2" && s.Conns[0].State == ConnLive
	})
	if len(s.Nodes) != 6 {
		t.Errorf("after reconnect: %d nodes, want 6", len(s.Nodes))
	}
	h, err := src.RangeHistory(context.Background(), 0, HistoryRequest{Range: "1h", Node: "sg-a1"})
	if err != nil {
		t.Fatal(err)
	}
	if h.ID != "sg-a1" || h.Range != "1h" || len(h.Series) != 2 {
		t.Fatalf("history %+v", h)
	}
	if got := points(h.Series[1].Util); len(got) != 3 || got[0] != 0.5 || got[1] == got[1] {
		t.Errorf("history util = %v, want [0.5 NaN 0.5]", got)
	}
}

func TestWatchSourceBadToken(t *testing.T) {
	srv := httptest.NewServer(&fakeWatchServer{token: "right"})
	defer srv.Close()
	src := NewWatchSource(Options{Aggregators: []Endpoint{{URL: srv.URL, Token: "wrong"}}, Refresh: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src.Start(ctx)
	defer src.Close(context.Background())
	// No data ever arrives, but a link state change is published on the
	// next refresh: wait for the first snapshot whose link carries an error.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-src.Snapshots():
			c := s.Conns[0]
			if c.Err == "" {
				continue
			}
			if c.State == ConnLive || !strings.Contains(c.Err, "refused the viewer token") {
				t.Errorf("conn = %+v, want down with a token error", c)
			}
			return
		case <-deadline:
			t.Fatal("no snapshot showed the link's error in 10s")
		}
	}
}

func TestEndpointURL(t *testing.T) {
	for _, c := range []struct {
		in, path string
		ws       bool
		want     string
	}{
		{"http://a:1", "/v1/watch", true, "ws://a:1/v1/watch"},
		{"https://a:1/", "/v1/watch", true, "wss://a:1/v1/watch"},
		{"wss://a:1/base", "/api/v1/nodes/n1", false, "https://a:1/base/api/v1/nodes/n1"},
		{"a:1", "/v1/watch", true, "ws://a:1/v1/watch"},
		{"ftp://a:1", "/v1/watch", true, ""},
		{"notaurl", "/v1/watch", true, ""},
		{"http://", "/v1/watch", true, ""},
		{"http://agg.example", "/v1/watch", true, "ws://agg.example/v1/watch"},
	} {
		got, err := endpointURL(c.in, c.path, c.ws)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s: no error", c.in)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("endpointURL(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// memRecorder is an aggregator.Recorder in memory.
type memRecorder struct {
	mu   sync.Mutex
	seqs map[string]uint64
}

var _ aggregator.Recorder = (*memRecorder)(nil)

func (m *memRecorder) LastSeqs(context.Context) (map[string]uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]uint64{}
	for k, v := range m.seqs {
		out[k] = v
	}
	return out, nil
}
func (m *memRecorder) Record(*fleet.Node, uint64, *fleet.Sample) {}
func (m *memRecorder) Commit(_ context.Context, seqs map[string]uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range seqs {
		m.seqs[k] = v
	}
	return nil
}

const testViewer = "viewer-secret-tui"

// startAggregator serves a real aggregator on addr ("127.0.0.1:0" for any
// port); stop closes it as an outage would.
func startAggregator(t *testing.T, addr string, rec *memRecorder) (string, func()) {
	t.Helper()
	toks, err := aggregator.ParseTokens(strings.NewReader("collector fleet c-secret *\nviewer ops "+testViewer+"\n"), "tokens")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := aggregator.New(aggregator.Config{Tokens: toks, Recorder: rec, Name: "loop",
		FlushInterval: 20 * time.Millisecond, ViewerInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for range 50 { // the port of a just-closed server may take a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Close(ctx)
			<-done
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// pushNode sends one node's hello and a few samples as a collector would.
func pushNode(t *testing.T, addr, id string, from uint64, util float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/collect",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer c-secret"}}})
	if err != nil {
		t.Fatalf("dial collect: %v", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(wire.MaxFrameSize)
	enc, dec := wire.NewEncoder(), wire.NewDecoder()
	send := func(f wire.Frame) {
		b, err := enc.AppendFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
	}
	node := fleet.Node{ID: id, Hostname: id + "-host", Region: "Singapore", Jurisdiction: "SG", Provider: "Equinix",
		Lease:   fleet.Lease{ID: "L1", PricePerGPUHour: fleet.Money{Micros: 2_500_000, Currency: "USD"}},
		Devices: []fleet.Device{{Index: 0, UUID: "GPU-" + id, Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", MemoryTotal: 80 << 30}}}
	send(&wire.Hello{Proto: wire.Version, Node: node})
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read welcome: %v", err)
	}
	f, err := dec.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	w, ok := f.(*wire.Welcome)
	if !ok {
		t.Fatalf("got %T, want Welcome", f)
	}
	seq := max(w.ResumeFrom, from)
	var ss []fleet.Sample
	for i := range 3 {
		s := fleet.Sample{Seq: seq + uint64(i), Time: time.Now(), Devices: []fleet.DeviceSample{{Index: 0}}}
		s.Devices[0].Set(fleet.MetricUtil, util)
		s.Devices[0].Set(fleet.MetricPower, 400)
		ss = append(ss, s)
	}
	send(&wire.Samples{Samples: ss})
	// Wait for the ack so the samples are applied before the session ends.
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read ack: %v", err)
		}
		if f, err := dec.Decode(b); err == nil {
			if a, ok := f.(*wire.Ack); ok && a.Seq >= seq+2 {
				return
			}
		}
	}
}

func TestWatchSourceRealAggregatorOutage(t *testing.T) {
	rec := &memRecorder{seqs: map[string]uint64{}}
	addr, stop := startAggregator(t, "127.0.0.1:0", rec)
	pushNode(t, addr, "n1", 1, 0.5)
	src := startSource(t, []Endpoint{{URL: "http://" + addr, Token: testViewer}})
	s := waitSnap(t, src, "node n1 at 50%", func(s *Snapshot) bool {
		n := s.Node("n1")
		return n != nil && n.Util == 0.5
	})
	if s.Conns[0].Name != "loop" || s.Regions[0].Jurisdiction != "SG" {
		t.Errorf("conn %+v regions %+v", s.Conns[0], s.Regions)
	}

	stop() // the aggregator goes away: the viewer must notice and retry
	waitSnap(t, src, "link down", func(s *Snapshot) bool { return s.Conns[0].State != ConnLive })

	addr2, _ := startAggregator(t, addr, rec)
	if addr2 != addr {
		t.Fatalf("restarted on %s, want %s", addr2, addr)
	}
	pushNode(t, addr, "n1", 4, 0.9)
	waitSnap(t, src, "node n1 at 90% after the outage", func(s *Snapshot) bool {
		n := s.Node("n1")
		return s.Conns[0].State == ConnLive && n != nil && n.Util == 0.9
	})
}

// TestWatchSourcePagesFromAggregator: the aggregator sorts, filters and
// pages for the viewer, and sends the open node in full.
func TestWatchSourcePagesFromAggregator(t *testing.T) {
	rec := &memRecorder{seqs: map[string]uint64{}}
	addr, _ := startAggregator(t, "127.0.0.1:0", rec)
	for i, u := range []float64{0.1, 0.9, 0.5, 0.7, 0.3} {
		pushNode(t, addr, fmt.Sprintf("n%d", i), 1, u)
	}
	src := startSource(t, []Endpoint{{URL: "http://" + addr, Token: testViewer}})
	s := waitSnap(t, src, "the default page", func(s *Snapshot) bool { return s.Paged && len(s.Nodes) == 5 })
	if s.NodesTotal != 5 || s.NodesKnown != 5 || s.Nodes[0].View.ID != "n0" || len(s.Regions) != 1 || s.Regions[0].GPUs != 5 {
		t.Fatalf("default page: total %d known %d first %s regions %+v", s.NodesTotal, s.NodesKnown, s.Nodes[0].View.ID, s.Regions)
	}
	src.Subscribe(wire.WatchSubscribe{Nodes: wire.NodeQuery{Sort: wire.SortUtil, Offset: 1, Limit: 2}, Node: "n4"})
	s = waitSnap(t, src, "the busiest nodes but one, and n4 in full", func(s *Snapshot) bool {
		n := s.Node("n4")
		return len(s.Nodes) == 2 && s.NodesOffset == 1 && n != nil && len(n.View.Devices) == 1
	})
	if s.Nodes[0].View.ID != "n3" || s.Nodes[1].View.ID != "n2" || s.NodesTotal != 5 {
		t.Fatalf("page %s %s of %d, want n3 n2 of 5", s.Nodes[0].View.ID, s.Nodes[1].View.ID, s.NodesTotal)
	}
	src.Subscribe(wire.WatchSubscribe{Nodes: wire.NodeQuery{Filter: "N1-HOST", Limit: 10}})
	waitSnap(t, src, "the filtered page", func(s *Snapshot) bool {
		return len(s.Nodes) == 1 && s.Nodes[0].View.ID == "n1" && s.NodesTotal == 1
	})
}
