package aggregator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/wire"
)

func TestHelloSamplesAck(t *testing.T) {
	ins := &fakeInsights{}
	ts := startServer(t, nil, func(c *Config) { c.Insights = ins })
	node := testNode("gpu-1", 8)
	c := dialCollector(t, ts, secretGPU)
	if got := c.hello(node); got != 1 {
		t.Fatalf("resume from %d, want 1", got)
	}
	c.samples(node, 1, 2, 3)
	c.samples(node, 4)
	if got := c.waitAck(4); got != 4 {
		t.Fatalf("ack %d, want 4", got)
	}
	if got, want := ts.rec.seqs("gpu-1"), []uint64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
	if got := ts.rec.durable["gpu-1"]; got != 4 {
		t.Fatalf("durable seq %d, want 4", got)
	}
	if got := counter(t, ts.Server, "gpu_samples"); got != 32 {
		t.Fatalf("gpu samples %v, want 32", got)
	}
	v := nodeView(t, ts.Server, "gpu-1")
	if v.Seq != 4 || v.State != wire.StateOnline || len(v.Devices) != 8 || v.Region != "Singapore" {
		t.Fatalf("view: seq %d state %s devices %d region %q", v.Seq, v.State, len(v.Devices), v.Region)
	}
	if v.Devices[3].Vendor != fleet.VendorAscend || v.Devices[0].Util == nil || *v.Devices[0].Util != 0.04 {
		t.Fatalf("device views: %+v", v.Devices[:4])
	}
	if v.BurnPerHour.Micros != 8*fleet.MicrosPerUnit {
		t.Fatalf("burn from insights: %v", v.BurnPerHour)
	}
	if got := ins.transitions(); !slices.Equal(got, []string{"gpu-1:online"}) {
		t.Fatalf("transitions %v", got)
	}
}

func TestAcksOnlyAfterCommit(t *testing.T) {
	rec := newFakeRecorder()
	rec.fail = true
	ts := startServer(t, rec, nil)
	node, c := helloN1(t, ts, 1)
	c.samples(node, 1, 2)
	testutil.WaitFor(t, "applied", func() bool { return nodeView(t, ts.Server, "n1").Seq == 2 })
	rec.mu.Lock()
	tried := rec.tries
	rec.mu.Unlock()
	testutil.WaitFor(t, "two failed commits", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.tries >= tried+2 })
	// While commits fail nothing is acked; once they succeed, the ack comes.
	n := ts.node("n1")
	n.mu.Lock()
	pending := n.sess.ackSeq.Load()
	n.mu.Unlock()
	if pending != 0 || n.committed.Load() != 0 {
		t.Fatalf("ack %d pending, committed %d while commits fail", pending, n.committed.Load())
	}
	rec.mu.Lock()
	rec.fail = false
	rec.mu.Unlock()
	if got := c.waitAck(2); got != 2 {
		t.Fatalf("ack %d", got)
	}
}

func TestResumeWithoutDuplicates(t *testing.T) {
	rec := newFakeRecorder()
	rec.durable["n1"] = 7 // a previous aggregator applied 1..7 durably
	ts := startServer(t, rec, nil)
	node := testNode("n1", 2)

	c := dialCollector(t, ts, secretAll)
	if got := c.hello(node); got != 8 {
		t.Fatalf("resume from %d, want 8", got)
	}
	// A collector resending too much: 6 and 7 are duplicates.
	c.samples(node, 6, 7, 8, 9)
	c.waitAck(9)
	if got := ts.rec.seqs("n1"); !slices.Equal(got, []uint64{8, 9}) {
		t.Fatalf("recorded %v, want [8 9]", got)
	}
	if got := counter(t, ts.Server, "dups"); got != 2 {
		t.Fatalf("duplicates %v, want 2", got)
	}

	// Reconnect to the same aggregator: resume after the committed 9.
	c.conn.Close(websocket.StatusNormalClosure, "")
	c2 := dialCollector(t, ts, secretAll)
	if got := c2.hello(node); got != 10 {
		t.Fatalf("resume after reconnect %d, want 10", got)
	}
	c2.samples(node, 9, 10)
	c2.waitAck(10)

	// Restart the aggregator on the same recorder: resume after 10. The
	// collector keeps reading, as a real one does, to see the close.
	go c2.waitClose()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ts2 := startServer(t, rec, nil)
	c3 := dialCollector(t, ts2, secretAll)
	if got := c3.hello(node); got != 11 {
		t.Fatalf("resume after restart %d, want 11", got)
	}
	c3.samples(node, 10, 11)
	c3.waitAck(11)
	if got := rec.seqs("n1"); !slices.Equal(got, []uint64{8, 9, 10, 11}) {
		t.Fatalf("recorded over all sessions %v, want each of 8..11 once", got)
	}
}

func TestGapCounting(t *testing.T) {
	ts, node, c := connected(t, 4)
	c.samples(node, 1, 2, 5) // 3 and 4 lost
	c.samples(node, 6, 10)   // 7, 8, 9 lost
	c.waitAck(10)
	if v := nodeView(t, ts.Server, "n1"); v.Gaps != 5 || v.Seq != 10 {
		t.Fatalf("gaps %d seq %d, want 5 and 10", v.Gaps, v.Seq)
	}
	if got := counter(t, ts.Server, "gaps"); got != 5 {
		t.Fatalf("gap counter %v", got)
	}
	// Another node's first record does not count as a gap, whatever its seq.
	c2 := dialCollector(t, ts, secretAll)
	n2 := testNode("n2", 1)
	c2.hello(n2)
	c2.samples(n2, 1000)
	c2.waitAck(1000)
	if v := nodeView(t, ts.Server, "n2"); v.Gaps != 0 {
		t.Fatalf("first record counted %d gaps", v.Gaps)
	}
}

func TestHTTPAuth(t *testing.T) {
	ts := startServer(t, nil, nil)
	cases := []struct {
		path, token string
		ws          bool
		want        int
	}{
		{"/healthz", "", false, 200},
		{"/v1/collect", "", true, 401},
		{"/v1/collect", "wrong-secret-xyz", true, 401},
		{"/v1/collect", secretViewer, true, 403},
		{"/v1/watch", secretAll, true, 403},
		{"/v1/watch", "wrong-secret-xyz", true, 401},
		{"/api/v1/fleet", "", false, 401},
		{"/api/v1/fleet", secretAll, false, 403},
		{"/api/v1/fleet", secretViewer, false, 200},
		{"/api/v1/nodes/nope", secretViewer, false, 404},
		{"/metrics", "", false, 401},
		{"/metrics", secretViewer, false, 200},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", ts.httpURL(tc.path), nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if tc.ws {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s with %q: status %d, want %d", tc.path, tc.token, resp.StatusCode, tc.want)
		}
	}
	if got := counter(t, ts.Server, "rejected", rejectUnauthorized); got != 2 {
		t.Errorf("unauthorized collect attempts counted %v, want 2", got)
	}
	if got := counter(t, ts.Server, "rejected", rejectForbidden); got != 1 {
		t.Errorf("forbidden collect attempts counted %v, want 1", got)
	}
}

func TestMetricsPublic(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.MetricsPublic = true })
	resp, err := http.Get(ts.httpURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, name := range []string{"fleettop_ingest_gpu_samples_total", "fleettop_ingest_bytes_total", "fleettop_ingest_seq_gaps_total",
		"fleettop_ingest_rejected_total{reason=\"malformed\"}", "fleettop_collectors_connected", "fleettop_viewers_connected"} {
		if !bytes.Contains(body.Bytes(), []byte(name)) {
			t.Errorf("metrics lack %s", name)
		}
	}
}

// TestSessionRejections covers everything that closes one collect session
// with a close code, and checks that another session is left untouched.
func TestSessionRejections(t *testing.T) {
	ts := startServer(t, nil, nil)
	bystanderNode := testNode("gpu-keep", 2)
	by := dialCollector(t, ts, secretGPU)
	by.hello(bystanderNode)

	big := make([]byte, wire.MaxFrameSize+1)
	big[0] = 0xF0 | wire.Version
	cases := []struct {
		name   string
		token  string
		run    func(c *collector)
		code   wire.CloseCode
		reason string
	}{
		{"node outside glob", secretGPU, func(c *collector) {
			c.send(&wire.Hello{Proto: wire.Version, Node: testNode("cpu-1", 1)})
		}, wire.CloseForbidden, rejectForbidden},
		{"protocol version", secretAll, func(c *collector) {
			c.send(&wire.Hello{Proto: wire.Version + 1, Node: testNode("n1", 1)})
		}, wire.CloseProtocol, rejectProtocol},
		{"bad vendor", secretAll, func(c *collector) {
			n := testNode("n1", 1)
			n.Devices[0].Vendor = "amd"
			c.send(&wire.Hello{Proto: wire.Version, Node: n})
		}, wire.CloseInvalid, wire.ReasonBadDevice},
		{"samples before hello", secretAll, func(c *collector) {
			c.samples(testNode("n1", 1), 1)
		}, wire.CloseProtocol, rejectProtocol},
		{"garbage after hello", secretAll, func(c *collector) {
			c.hello(testNode("n1", 1))
			c.sendRaw([]byte{0xF0 | wire.Version, byte(wire.TypeSamples), 0xff, 0xff, 0xff})
		}, wire.CloseMalformed, rejectMalformed},
		{"garbage header", secretAll, func(c *collector) {
			c.sendRaw([]byte("GET / HTTP/1.1"))
		}, wire.CloseMalformed, rejectMalformed},
		{"oversized frame", secretAll, func(c *collector) {
			c.hello(testNode("n1", 1))
			c.sendRaw(big)
		}, wire.CloseTooBig, rejectTooBig},
		{"text message", secretAll, func(c *collector) {
			c.conn.Write(context.Background(), websocket.MessageText, []byte("{}"))
		}, wire.CloseProtocol, rejectProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, ts.Server, "rejected", tc.reason)
			c := dialCollector(t, ts, tc.token)
			tc.run(c)
			cl, status := c.waitClose()
			if status != websocket.StatusCode(tc.code) {
				t.Errorf("close status %d, want %d", status, tc.code)
			}
			if tc.code != wire.CloseTooBig && tc.name != "garbage header" && (cl == nil || cl.Code != tc.code) {
				t.Errorf("close frame %+v, want code %d", cl, tc.code)
			}
			if got := counter(t, ts.Server, "rejected", tc.reason); got != before+1 {
				t.Errorf("rejected{%s} = %v, want %v", tc.reason, got, before+1)
			}
		})
	}
	// The bystander still works.
	by.samples(bystanderNode, 1, 2)
	if got := by.waitAck(2); got != 2 {
		t.Fatalf("bystander ack %d", got)
	}
}

// A first session that does not answer a ping (its collector restarted and
// the old connection is dead) is replaced by the newcomer.
func TestSecondSessionReplacesFirst(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.TakeoverPing = 100 * time.Millisecond })
	node, c1 := helloN1(t, ts, 1)
	c1.samples(node, 1)
	c1.waitAck(1)
	c2 := dialCollector(t, ts, secretAll)
	if got := c2.hello(node); got != 2 {
		t.Fatalf("resume %d", got)
	}
	cl, status := c1.waitClose()
	if status != websocket.StatusCode(wire.CloseConflict) || cl == nil || cl.Code != wire.CloseConflict {
		t.Fatalf("old session closed with %d / %+v, want %d", status, cl, wire.CloseConflict)
	}
	c2.samples(node, 2)
	c2.waitAck(2)
}

func TestStaleOfflineWithClock(t *testing.T) {
	clk := newFakeClock()
	ins := &fakeInsights{}
	ts := startServer(t, nil, func(c *Config) {
		c.Clock = clk.Now
		c.Insights = ins
		c.FlushInterval = time.Hour // the test drives checkStates itself
	})
	node, c := helloN1(t, ts, 2)
	c.samples(node, 1)
	testutil.WaitFor(t, "sample applied", func() bool { return nodeView(t, ts.Server, "n1").Seq == 1 })
	seen := clk.Now()
	steps := []struct {
		advance time.Duration
		want    string
	}{
		{2 * time.Second, wire.StateOnline},
		{2 * time.Second, wire.StateStale}, // 4s > 3 intervals
		{20 * time.Second, wire.StateStale},
		{10 * time.Second, wire.StateOffline}, // 34s > 30s
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		ts.checkStates()
		v := nodeView(t, ts.Server, "n1")
		if v.State != st.want {
			t.Fatalf("after %v: state %s, want %s", clk.Now().Sub(seen), v.State, st.want)
		}
		if !v.LastSeen.Equal(seen) {
			t.Fatalf("last seen %v, want %v", v.LastSeen, seen)
		}
	}
	want := []string{"n1:online", "n1:stale", "n1:offline"}
	if got := ins.transitions(); !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	// An offline node's idle session is closed.
	if _, status := c.waitClose(); status != websocket.StatusNormalClosure {
		t.Fatalf("idle session closed with %d", status)
	}
}

func TestNodeAPIHistory(t *testing.T) {
	ts, node, c := connected(t, 2)
	c.samples(node, 1, 2, 3)
	c.waitAck(3)
	req, _ := http.NewRequest("GET", ts.httpURL("/api/v1/nodes/n1?last=2"), nil)
	req.Header.Set("Authorization", "Bearer "+secretViewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var nr NodeResponse
	if err := json.NewDecoder(resp.Body).Decode(&nr); err != nil {
		t.Fatal(err)
	}
	h, ok := nr.History["1"]
	if !ok || len(h.Util) != 2 || nr.StepS != 1 || nr.Node.ID != "n1" {
		t.Fatalf("history %+v step %v", nr.History, nr.StepS)
	}
	// seq 2 and 3 on device 1: util (seq+1)%100/100.
	if *h.Util[0] != 0.03 || *h.Util[1] != 0.04 || *h.Power[1] != 301 || *h.Temp[0] != 60 || *h.MemUsed[0] != 10<<30 {
		t.Fatalf("history values util %v %v power %v temp %v mem %v", *h.Util[0], *h.Util[1], *h.Power[1], *h.Temp[0], *h.MemUsed[0])
	}
}

func TestFleetAPI(t *testing.T) {
	ts := startServer(t, nil, nil)
	for _, id := range []string{"a", "b"} {
		node := testNode(id, 4)
		c := dialCollector(t, ts, secretAll)
		c.hello(node)
		c.samples(node, 1)
		c.waitAck(1)
	}
	req, _ := http.NewRequest("GET", ts.httpURL("/api/v1/fleet"), nil)
	req.Header.Set("Authorization", "Bearer "+secretViewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var fr FleetResponse
	if err := json.NewDecoder(resp.Body).Decode(&fr); err != nil {
		t.Fatal(err)
	}
	if len(fr.Nodes) != 2 || fr.Totals.Devices != 8 || fr.Totals.ByVendor["ascend"] != 2 || fr.Totals.NodesOnline != 2 {
		t.Fatalf("fleet %+v", fr.Totals)
	}
	// Without insights: burn is lease price × devices, summed.
	if fr.Summary.BurnPerHour.Micros != 2*4*2_500_000 || fr.Summary.Currency != "USD" || fr.Summary.GPUsOnline != 8 {
		t.Fatalf("summary %+v", fr.Summary)
	}
}

func TestNoHelloTimesOut(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.HelloTimeout = 50 * time.Millisecond })
	c := dialCollector(t, ts, secretAll)
	// The server closes the connection: the read ends with the close, not
	// with a frame or the read's own deadline. (Waiting for the session to
	// show as registered first could miss its 50 ms on a loaded machine.)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.WaitTimeout)
	defer cancel()
	if _, _, err := c.conn.Read(ctx); err == nil {
		t.Fatal("silent connection got a frame")
	} else if ctx.Err() != nil {
		t.Fatalf("silent connection still open after %v", testutil.WaitTimeout)
	}
	testutil.WaitFor(t, "silent session dropped", func() bool { return counter(t, ts.Server, "collectors") == 0 })
}

func TestNonFiniteValuesStayOutOfJSON(t *testing.T) {
	// The codec refuses non-finite values; views guard anyway, since one NaN
	// would make every watch message fail to encode.
	ts := startServer(t, nil, nil)
	node := testNode("n1", 1)
	n := ts.getOrCreate("n1")
	s := testSample(node, 1)
	s.Devices[0].Set(fleet.MetricPower, math.Inf(1))
	s.Devices[0].Set(fleet.MetricUtil, math.NaN())
	s.Host = &fleet.HostSample{}
	s.Host.Set(fleet.HostLoad1, math.NaN())
	n.mu.Lock()
	n.setNode(node)
	n.applyRecord(&s, ts.clock())
	v := ts.view(n, ts.clock())
	n.mu.Unlock()
	if _, err := json.Marshal(v); err != nil {
		t.Fatalf("view does not encode: %v", err)
	}
	if v.Devices[0].Util != nil || v.Devices[0].Metrics["temp"] != 60 {
		t.Fatalf("device view %+v", v.Devices[0])
	}
}

// Acks to one collector are at least AckInterval apart; the records
// committed meanwhile are covered by the next ack, not one ack each.
func TestAcksAreCoalesced(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.AckInterval = time.Second })
	node, c := helloN1(t, ts, 1)
	c.samples(node, 1)
	c.waitAck(1)
	// Each record is committed on its own (we wait for it) before the next
	// is sent: five commits within AckInterval.
	n := ts.node("n1")
	for q := uint64(2); q <= 6; q++ {
		c.samples(node, q)
		testutil.WaitFor(t, fmt.Sprintf("record %d committed", q), func() bool { return n.committed.Load() >= q })
	}
	f := c.mustRecv()
	a, ok := f.(*wire.Ack)
	if !ok {
		t.Fatalf("want ack, got %T", f)
	}
	if a.Seq != 6 {
		t.Errorf("next ack %d, want 6: one ack for every record committed since the last", a.Seq)
	}
}

// A collector that still speaks protocol 1 is served: answered in protocol 1
// (its decoder reads nothing newer) and its samples applied and acked.
func TestProtocol1Collector(t *testing.T) {
	ts := startServer(t, nil, nil)
	node := testNode("gpu-old", 2)
	c := dialCollector(t, ts, secretGPU)
	enc, err := wire.NewEncoderVersion(1)
	if err != nil {
		t.Fatal(err)
	}
	c.enc = enc
	c.send(&wire.Hello{Proto: 1, Node: node})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0xF1 {
		t.Fatalf("welcome starts with %#x, want a protocol-1 frame", b[0])
	}
	f, err := c.dec.Decode(b)
	if w, ok := f.(*wire.Welcome); err != nil || !ok || w.Proto != 1 {
		t.Fatalf("welcome %+v, %v", f, err)
	}
	c.samples(node, 1, 2)
	if got := c.waitAck(2); got != 2 {
		t.Fatalf("ack %d, want 2", got)
	}
	if got, want := ts.rec.seqs("gpu-old"), []uint64{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
}

// beatRecorder notes, at each Commit, how many heartbeats (server ticks)
// came before it.
type beatRecorder struct {
	*fakeRecorder
	beats *atomic.Int64
	mu    sync.Mutex
	at    []int64
}

func (b *beatRecorder) Commit(ctx context.Context, seqs map[string]uint64) error {
	b.mu.Lock()
	b.at = append(b.at, b.beats.Load())
	b.mu.Unlock()
	return b.fakeRecorder.Commit(ctx, seqs)
}

// With CommitInterval five ticks, the server commits on every fifth tick
// only, and what it applied is still committed and acked.
func TestCommitEveryCommitInterval(t *testing.T) {
	var beats atomic.Int64
	rec := &beatRecorder{fakeRecorder: newFakeRecorder(), beats: &beats}
	ts := startServerWith(t, rec, func(c *Config) {
		c.FlushInterval = 5 * time.Millisecond
		c.CommitInterval = 24 * time.Millisecond // rounds to 5 ticks
		c.Heartbeat = func() { beats.Add(1) }
	})
	node, c := helloN1(t, ts, 1)
	n := ts.node("n1")
	for q := uint64(1); q <= 3; q++ {
		c.samples(node, q)
		testutil.WaitFor(t, fmt.Sprintf("record %d committed", q), func() bool { return n.committed.Load() >= q })
	}
	c.waitAck(3)
	rec.mu.Lock()
	at := slices.Clone(rec.at)
	rec.mu.Unlock()
	// A tick commits before it beats: the k-th tick's commit follows k-1 beats.
	for _, b := range at {
		if (b+1)%5 != 0 {
			t.Fatalf("commits after %v heartbeats: want each on a fifth tick", at)
		}
	}
}

func TestCommitTicks(t *testing.T) {
	for _, c := range []struct {
		flush, commit time.Duration
		want          int
	}{
		{time.Second, time.Second, 1},
		{time.Second, 5 * time.Second, 5},
		{time.Second, 5400 * time.Millisecond, 5},
		{time.Second, 5600 * time.Millisecond, 6},
		{time.Second, 100 * time.Millisecond, 1},
	} {
		if got := commitTicks(Config{FlushInterval: c.flush, CommitInterval: c.commit}); got != c.want {
			t.Errorf("commitTicks(flush %v, commit %v) = %d, want %d", c.flush, c.commit, got, c.want)
		}
	}
}

// The ack queue sends every ack due, in order, from no more than
// ackSenders goroutines however many fall due at once, and from none once
// it is empty; an ack waits for its instant (the flush loop's tick) unless
// taken back before.
func TestAckQueueBoundsItsSenders(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sent []*session
	running, peak := 0, 0
	q := ackQueue{fire: func(ss *session) {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		sent = append(sent, ss)
		mu.Unlock()
	}}
	sentN := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sent)
	}
	now := time.Now()
	later := now.Add(time.Second)
	due := make([]*session, 10*ackSenders+3)
	for i := range due {
		due[i] = &session{remote: fmt.Sprint(i)}
		q.schedule(due[i], later, now)
	}
	gone := &session{remote: "gone"}
	q.schedule(gone, later, now)
	if !q.cancel(gone) || q.cancel(gone) {
		t.Fatal("a waiting ack is taken back once")
	}
	q.tick(now)
	q.mu.Lock()
	waiting, queued, senders := len(q.waiting), len(q.due), q.senders
	q.mu.Unlock()
	if waiting != len(due) || queued != 0 || senders != 0 {
		t.Fatalf("before their instant: %d acks waiting, %d queued to send, %d senders; want %d, 0, 0", waiting, queued, senders, len(due))
	}
	q.tick(later)
	testutil.WaitFor(t, "every sender busy", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return running == ackSenders
	})
	if q.cancel(due[0]) {
		t.Error("an ack handed to the senders was taken back")
	}
	close(release)
	testutil.WaitFor(t, "every ack sent and the senders gone", func() bool {
		n := sentN()
		q.mu.Lock()
		defer q.mu.Unlock()
		return n == len(due) && q.senders == 0
	})
	if peak > ackSenders {
		t.Errorf("%d senders at once, want at most %d", peak, ackSenders)
	}
	seen := map[*session]bool{}
	for _, ss := range sent {
		if seen[ss] || ss == gone {
			t.Errorf("session %s acked twice or after it was taken back", ss.remote)
		}
		seen[ss] = true
	}
	// An ack whose instant has come goes out at once, without a tick.
	q.schedule(due[0], now, later)
	testutil.WaitFor(t, "the next ack sent", func() bool { return sentN() == len(due)+1 })
}
