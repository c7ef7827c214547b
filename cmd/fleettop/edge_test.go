package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/aggregator"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// edgeRig is a real aggregator (store, insights, exporter) on loopback.
type edgeRig struct {
	t    *testing.T
	base string
	ws   string
}

const (
	edgeCollector = "edge-collector-secret"
	edgeViewer    = "edge-viewer-secret"
)

func startEdgeRig(t *testing.T) *edgeRig {
	t.Helper()
	toks, err := aggregator.ParseTokens(strings.NewReader("collector c "+edgeCollector+" *\nviewer v "+edgeViewer+"\n"), "tokens")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // after the aggregator stops: cleanups run last first
	runAggregator(t, ctx, aggregatorOptions{DataDir: t.TempDir(), Tokens: toks, MetricsPublic: true,
		Logger: slog.New(slog.DiscardHandler)}, ln)
	return &edgeRig{t: t, base: "http://" + ln.Addr().String(), ws: "ws://" + ln.Addr().String()}
}

// session runs one collector session: Hello, then frames of records from
// the resume point, then a clean close (which the aggregator answers only
// after applying everything before it). It returns the close code the
// aggregator sent, 0 when none.
func (r *edgeRig) session(n fleet.Node, frames [][]fleet.Sample) wire.CloseCode {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, r.ws+"/v1/collect", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + edgeCollector}}})
	if err != nil {
		r.t.Fatalf("dial collector: %v", err)
	}
	defer c.CloseNow()
	enc, dec := wire.NewEncoder(), wire.NewDecoder()
	send := func(f wire.Frame) bool {
		b, err := enc.AppendFrame(nil, f)
		if err != nil {
			return false // the encoder refuses it (NaN, bounds): nothing sent
		}
		return c.Write(ctx, websocket.MessageBinary, b) == nil
	}
	if !send(&wire.Hello{Proto: wire.Version, Node: n}) {
		return 0
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		return wire.CloseCode(websocket.CloseStatus(err))
	}
	f, err := dec.Decode(b)
	if err != nil {
		r.t.Fatalf("decode aggregator frame: %v", err)
	}
	w, ok := f.(*wire.Welcome)
	if !ok {
		if cl, ok := f.(*wire.Close); ok {
			return cl.Code
		}
		r.t.Fatalf("want welcome, got %T", f)
	}
	seq := max(w.ResumeFrom, 1)
	for _, recs := range frames {
		for i := range recs {
			if recs[i].Seq == 0 {
				recs[i].Seq = seq
			}
			seq = recs[i].Seq + 1
		}
		if !send(&wire.Samples{Samples: recs}) {
			break
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		return wire.CloseCode(websocket.CloseStatus(err))
	}
	return 0
}

func (r *edgeRig) get(path string) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+edgeViewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// checkSurfaces asserts that /metrics and /api/v1/fleet answer whole.
func (r *edgeRig) checkSurfaces(what string) (metrics string, fleetResp aggregator.FleetResponse) {
	r.t.Helper()
	code, body := r.get("/metrics")
	if code != http.StatusOK {
		r.t.Fatalf("%s: /metrics answered %d: %.300s", what, code, body)
	}
	if strings.Contains(body, "goroutine ") || strings.Contains(body, "panic") {
		r.t.Fatalf("%s: /metrics holds a stack trace: %.300s", what, body)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			r.t.Fatalf("%s: /metrics line without a value: %q", what, line)
		}
		series := line[:i]
		if seen[series] {
			r.t.Fatalf("%s: /metrics renders series %s twice", what, series)
		}
		seen[series] = true
	}
	metrics = body
	code, body = r.get("/api/v1/fleet")
	if code != http.StatusOK {
		r.t.Fatalf("%s: /api/v1/fleet answered %d: %.300s", what, code, body)
	}
	if err := json.Unmarshal([]byte(body), &fleetResp); err != nil {
		r.t.Fatalf("%s: /api/v1/fleet body is not whole JSON (%v): %.300s", what, err, body)
	}
	return metrics, fleetResp
}

// watcher reads /v1/watch until told to stop, remembering how it ended.
type watcher struct {
	mu   sync.Mutex
	msgs int
	err  error
	bad  string
	stop context.CancelFunc
	done chan struct{}
}

func (r *edgeRig) watch() *watcher {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, _, err := websocket.Dial(ctx, r.ws+"/v1/watch", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + edgeViewer}}})
	if err != nil {
		cancel()
		r.t.Fatalf("dial watch: %v", err)
	}
	c.SetReadLimit(64 << 20)
	w := &watcher{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer c.CloseNow()
		for {
			_, b, err := c.Read(ctx)
			w.mu.Lock()
			if err != nil {
				if ctx.Err() == nil {
					w.err = err
				}
				w.mu.Unlock()
				return
			}
			w.msgs++
			if !json.Valid(b) && w.bad == "" {
				w.bad = string(b)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watcher) check(t *testing.T, what string) int {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		t.Fatalf("%s: the watch closed: %v", what, w.err)
	}
	if w.bad != "" {
		t.Fatalf("%s: watch message is not JSON: %.300s", what, w.bad)
	}
	return w.msgs
}

func edgeNode(id, host string) fleet.Node {
	n := fleet.Node{ID: id, Hostname: host, Region: "Singapore", Provider: "acme", Jurisdiction: "SG",
		Lease: fleet.Lease{ID: "l1", PricePerGPUHour: fleet.Money{Micros: 2_000_000, Currency: "USD"}, Billing: fleet.BillPerSecond}}
	for i := range 2 {
		n.Devices = append(n.Devices, fleet.Device{Index: i, UUID: fmt.Sprintf("GPU-dup-%d", i), Vendor: fleet.VendorNVIDIA,
			Model: "NVIDIA H100 80GB HBM3", MemoryTotal: 80 << 30, PowerLimit: 700})
	}
	return n
}

func edgeSample(n fleet.Node, at time.Time) fleet.Sample {
	s := fleet.Sample{Time: at, Devices: make([]fleet.DeviceSample, len(n.Devices))}
	for i := range s.Devices {
		s.Devices[i].Index = n.Devices[i].Index
		s.Devices[i].Set(fleet.MetricUtil, 0.5)
		s.Devices[i].Set(fleet.MetricTemp, 60)
		s.Devices[i].Set(fleet.MetricPower, 300)
	}
	return s
}

// The cases of issue 11, then random Hello and Sample values: whatever a
// node says, /metrics answers 200 without a stack trace or a repeated
// series, /api/v1/fleet answers whole JSON, and the watch stays open.
func TestNodeDataCannotTakeDownSurfaces(t *testing.T) {
	r := startEdgeRig(t)
	w := r.watch()
	defer func() { w.stop(); <-w.done }()
	now := time.Now().UTC().Truncate(time.Millisecond)

	// Two legitimate nodes with the same hostname and GPU UUIDs.
	a, b := edgeNode("dup-a", "same-host"), edgeNode("dup-b", "same-host")
	r.session(a, [][]fleet.Sample{{edgeSample(a, now)}})
	r.session(b, [][]fleet.Sample{{edgeSample(b, now)}})
	metrics, _ := r.checkSurfaces("same hostname and UUIDs")
	for _, id := range []string{"dup-a", "dup-b"} {
		if !strings.Contains(metrics, `node="`+id+`"`) {
			t.Errorf("/metrics lost node %s's device series", id)
		}
	}
	// A hostname that is not UTF-8, and a lease starting in year ~21000.
	bad := edgeNode("bad-host", "A\xff")
	if code := r.session(bad, nil); code != wire.CloseInvalid {
		t.Errorf("hostname 41 ff: closed with %d, want %d", code, wire.CloseInvalid)
	}
	far := edgeNode("far-lease", "far")
	far.Lease.Start = time.Date(21000, 1, 1, 0, 0, 0, 0, time.UTC)
	if code := r.session(far, nil); code != wire.CloseInvalid {
		t.Errorf("lease in year 21000: closed with %d, want %d", code, wire.CloseInvalid)
	}
	// util 1e9, temp -500 °C, power 1e11 W.
	hot := edgeNode("hot", "hot")
	s := edgeSample(hot, now)
	s.Devices[0].Set(fleet.MetricUtil, 1e9)
	s.Devices[0].Set(fleet.MetricTemp, -500)
	s.Devices[0].Set(fleet.MetricPower, 1e11)
	r.session(hot, [][]fleet.Sample{{s}})
	_, fr := r.checkSurfaces("issue cases")
	if u := fr.Totals.Util; u < 0 || u > 1 {
		t.Errorf("fleet utilisation %v, want a ratio", u)
	}

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	strs := []string{"", "ok", "A\xff", "a\nb", "\x1b[2J", "a\u202eb", `q"u\o{te}`, "=HYPERLINK(\"x\")",
		strings.Repeat("x", 1500), "名前", "\x00", "same-host", "zw\u200bsp"}
	str := func() string { return strs[rng.IntN(len(strs))] }
	vals := []float64{0, 0.5, 1, -1, -500, 60, 1e9, 1e11, 1e15, -1e15, 3e-9, 700, 5001}
	val := func() float64 { return vals[rng.IntN(len(vals))] }
	times := []time.Time{now, {}, time.Date(21000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0).UTC(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), now.Add(time.Hour)}
	tm := func() time.Time { return times[rng.IntN(len(times))] }
	for round := range 40 {
		n := edgeNode(fmt.Sprintf("r%d", rng.IntN(6)), "same-host")
		switch rng.IntN(4) {
		case 0:
			n.Hostname, n.Region, n.Site, n.Provider = str(), str(), str(), str()
		case 1:
			n.Lease.ID, n.Lease.Start, n.Lease.End = str(), tm(), tm()
			n.Labels = map[string]string{"team": str(), str(): "v"}
		case 2:
			n.Devices[0].Model, n.Devices[1].UUID, n.Devices[0].PowerLimit = str(), str(), val()
		}
		var frames [][]fleet.Sample
		for range 1 + rng.IntN(3) {
			smp := edgeSample(n, now)
			for m := fleet.Metric(0); m < fleet.NumMetrics; m++ {
				if rng.IntN(3) == 0 {
					smp.Devices[rng.IntN(2)].Set(m, val())
				}
			}
			smp.Host = &fleet.HostSample{}
			smp.Host.Set(fleet.HostCPUUtil, val())
			if rng.IntN(3) == 0 {
				smp.Time = tm()
			}
			switch rng.IntN(8) {
			case 0:
				smp.Seq = math.MaxUint64
			case 1:
				smp.Seq = 1 << 40
			}
			smp.ProcsSet = true
			smp.Procs = []fleet.Process{{Device: 0, PID: 7, Name: str(), Job: fleet.Job{ID: str(), Team: str(), DataClass: str()}}}
			smp.Events = []fleet.Event{{Time: tm(), Kind: fleet.EventKind(str()), Severity: fleet.Severity(str()), Device: 0, Message: str()}}
			frames = append(frames, []fleet.Sample{smp})
		}
		r.session(n, frames)
		what := fmt.Sprintf("seed %d round %d", seed, round)
		r.checkSurfaces(what)
		w.check(t, what)
	}
	// The watch still delivers.
	before := w.check(t, "end")
	deadline := time.Now().Add(10 * time.Second)
	for w.check(t, "end") == before {
		if time.Now().After(deadline) {
			t.Fatal("the watch stopped delivering")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
