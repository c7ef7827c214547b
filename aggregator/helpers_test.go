package aggregator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

const (
	secretAll    = "collector-secret-all"
	secretGPU    = "collector-secret-gpu"
	secretViewer = "viewer-secret-1"
	secretOper   = "operator-secret-1"
)

const testTokens = `# test tokens
collector fleet ` + secretAll + ` *
collector gpus ` + secretGPU + ` gpu-*   # only gpu-… nodes
viewer ops ` + secretViewer + `
operator oncall ` + secretOper + `
`

// fakeRecorder is a Recorder in memory: durable holds what Commit made
// durable, recorded every Record call in order, gens its node generations.
type fakeRecorder struct {
	mu       sync.Mutex
	durable  map[string]uint64
	recorded map[string][]uint64
	gens     map[string][]uint64
	commits  int
	tries    int
	fail     bool
}

var _ Recorder = (*fakeRecorder)(nil)

func newFakeRecorder() *fakeRecorder {
	return &fakeRecorder{durable: map[string]uint64{}, recorded: map[string][]uint64{}, gens: map[string][]uint64{}}
}

func (f *fakeRecorder) LastSeqs(context.Context) (map[string]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.durable))
	for k, v := range f.durable {
		out[k] = v
	}
	return out, nil
}

func (f *fakeRecorder) Record(n *fleet.Node, gen uint64, s *fleet.Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded[n.ID] = append(f.recorded[n.ID], s.Seq)
	f.gens[n.ID] = append(f.gens[n.ID], gen)
}

func (f *fakeRecorder) Commit(_ context.Context, seqs map[string]uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.fail {
		return errors.New("disk full")
	}
	f.commits++
	for k, v := range seqs {
		f.durable[k] = v
	}
	return nil
}

func (f *fakeRecorder) seqs(id string) []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.recorded[id]...)
}

// fakeInsights records state transitions and prices every GPU at 1 USD.
type fakeInsights struct {
	mu     sync.Mutex
	states []string
	seen   int
}

var _ Insights = (*fakeInsights)(nil)

func (f *fakeInsights) Observe(*fleet.Node, uint64, *fleet.Sample) {
	f.mu.Lock()
	f.seen++
	f.mu.Unlock()
}

func (f *fakeInsights) NodeState(n *fleet.Node, state string, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = append(f.states, n.ID+":"+state)
}

func (f *fakeInsights) Summarize(time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	return wire.Summary{Currency: "USD"}, nil, nil
}

func (f *fakeInsights) NodeBurn(n *fleet.Node) fleet.Money {
	return fleet.Money{Micros: int64(len(n.Devices)) * fleet.MicrosPerUnit, Currency: "USD"}
}

func (f *fakeInsights) transitions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.states...)
}

// fakeClock is an injectable clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testServer is an aggregator serving on a loopback port.
type testServer struct {
	*Server
	rec  *fakeRecorder
	addr string // host:port
}

func (ts *testServer) wsURL(p string) string   { return "ws://" + ts.addr + p }
func (ts *testServer) httpURL(p string) string { return "http://" + ts.addr + p }

func startServer(t testing.TB, rec *fakeRecorder, mod func(*Config)) *testServer {
	t.Helper()
	if rec == nil {
		rec = newFakeRecorder()
	}
	ts := startServerWith(t, rec, mod)
	ts.rec = rec
	return ts
}

// startServerWith starts a server on any Recorder; the result's rec is nil.
func startServerWith(t testing.TB, rec Recorder, mod func(*Config)) *testServer {
	t.Helper()
	toks, err := ParseTokens(strings.NewReader(testTokens), "tokens")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Tokens:        toks,
		Recorder:      rec,
		Name:          "test",
		FlushInterval: 20 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{Server: srv, addr: ln.Addr().String()}
}

// collector is the client side of one collect session.
type collector struct {
	t    testing.TB
	conn *websocket.Conn
	enc  *wire.Encoder
	dec  *wire.Decoder
	buf  []byte
}

func dialOpts(token string) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}}
}

func dialCollector(t testing.TB, ts *testServer, token string) *collector {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, ts.wsURL("/v1/collect"), dialOpts(token))
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial collector: %v (status %d)", err, code)
	}
	c.SetReadLimit(wire.MaxFrameSize)
	t.Cleanup(func() { c.CloseNow() })
	return &collector{t: t, conn: c, enc: wire.NewEncoder(), dec: wire.NewDecoder()}
}

func (c *collector) send(f wire.Frame) {
	c.t.Helper()
	b, err := c.enc.AppendFrame(c.buf[:0], f)
	if err != nil {
		c.t.Fatalf("encode %T: %v", f, err)
	}
	c.buf = b
	c.sendRaw(b)
}

func (c *collector) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageBinary, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv reads the next frame; err is the read error (e.g. a close).
func (c *collector) recv() (wire.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, fmt.Errorf("got %v message", typ)
	}
	return c.dec.Decode(b)
}

func (c *collector) mustRecv() wire.Frame {
	c.t.Helper()
	f, err := c.recv()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return f
}

// hello introduces node and returns the Welcome's resume point.
func (c *collector) hello(node fleet.Node) uint64 {
	c.t.Helper()
	c.send(&wire.Hello{Proto: wire.Version, Node: node})
	w, ok := c.mustRecv().(*wire.Welcome)
	if !ok {
		c.t.Fatalf("want welcome")
	}
	return w.ResumeFrom
}

// samples sends one Samples frame with the given sequence numbers.
func (c *collector) samples(node fleet.Node, seqs ...uint64) {
	c.t.Helper()
	recs := make([]fleet.Sample, len(seqs))
	for i, q := range seqs {
		recs[i] = testSample(node, q)
	}
	c.send(&wire.Samples{Samples: recs})
}

// waitAck reads until an Ack for at least seq arrives.
func (c *collector) waitAck(seq uint64) uint64 {
	c.t.Helper()
	for {
		f := c.mustRecv()
		a, ok := f.(*wire.Ack)
		if !ok {
			c.t.Fatalf("want ack, got %T", f)
		}
		if a.Seq >= seq {
			return a.Seq
		}
	}
}

// waitClose reads until the connection closes and returns the wire Close
// frame seen (nil if none) and the websocket close status.
func (c *collector) waitClose() (*wire.Close, websocket.StatusCode) {
	c.t.Helper()
	var cl *wire.Close
	for {
		f, err := c.recv()
		if err != nil {
			return cl, websocket.CloseStatus(err)
		}
		if x, ok := f.(*wire.Close); ok {
			cp := *x
			cl = &cp
		}
	}
}

// connected starts a server and a collector that has said Hello for node
// "n1" with gpus GPUs.
func connected(t testing.TB, gpus int) (*testServer, fleet.Node, *collector) {
	t.Helper()
	ts := startServer(t, nil, nil)
	node, c := helloN1(t, ts, gpus)
	return ts, node, c
}

// helloN1 dials ts with the fleet's collector token and says Hello for node
// "n1" with gpus GPUs.
func helloN1(t testing.TB, ts *testServer, gpus int) (fleet.Node, *collector) {
	t.Helper()
	node := testNode("n1", gpus)
	c := dialCollector(t, ts, secretAll)
	c.hello(node)
	return node, c
}

func testNode(id string, gpus int) fleet.Node {
	n := fleet.Node{
		ID: id, Hostname: id + ".example", Region: "Singapore", Site: "sg-1", Provider: "acme",
		Jurisdiction: "SG", AgentVersion: "test",
		Lease: fleet.Lease{ID: "l-" + id, PricePerGPUHour: fleet.Money{Micros: 2_500_000, Currency: "USD"}, Billing: fleet.BillPerSecond},
	}
	for i := range gpus {
		vendor := fleet.VendorNVIDIA
		if i%4 == 3 {
			vendor = fleet.VendorAscend
		}
		n.Devices = append(n.Devices, fleet.Device{
			Index: i, UUID: fmt.Sprintf("GPU-%s-%d", id, i), Vendor: vendor, Model: "NVIDIA H100 80GB HBM3",
			MemoryTotal: 80 << 30, PowerLimit: 700,
		})
	}
	return n
}

func testSample(n fleet.Node, seq uint64) fleet.Sample {
	s := fleet.Sample{Seq: seq, Time: time.Unix(1_770_000_000+int64(seq), 0).UTC(), Devices: make([]fleet.DeviceSample, len(n.Devices))}
	for i := range n.Devices {
		d := &s.Devices[i]
		d.Index = i
		d.Set(fleet.MetricUtil, float64((int(seq)+i)%100)/100)
		d.Set(fleet.MetricPower, 300+float64(i))
		d.Set(fleet.MetricTemp, 60)
		d.Set(fleet.MetricMemUsed, 10<<30)
	}
	return s
}
func counter(t testing.TB, s *Server, name string, labels ...string) float64 {
	t.Helper()
	switch name {
	case "gpu_samples":
		return testutil.ToFloat64(s.m.gpuSamples)
	case "gaps":
		return testutil.ToFloat64(s.m.gaps)
	case "dups":
		return testutil.ToFloat64(s.m.dups)
	case "rejected":
		return testutil.ToFloat64(s.m.rejected.WithLabelValues(labels...))
	case "collectors":
		return testutil.ToFloat64(s.m.collectors)
	case "viewers":
		return testutil.ToFloat64(s.m.viewers)
	case "viewer_drops":
		return testutil.ToFloat64(s.m.viewerDrops)
	}
	t.Fatalf("unknown counter %s", name)
	return 0
}

func nodeView(t testing.TB, s *Server, id string) wire.NodeView {
	t.Helper()
	for _, v := range s.Nodes() {
		if v.ID == id {
			return v
		}
	}
	t.Fatalf("node %s not in fleet", id)
	return wire.NodeView{}
}
