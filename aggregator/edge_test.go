package aggregator

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/wire"
)

// A hostile Hello is refused at the edge with CloseInvalid and counted by
// reason; the fleet never sees it.
func TestHostileHelloRefused(t *testing.T) {
	ts := startServer(t, nil, nil)
	cases := []struct {
		name   string
		mod    func(n *fleet.Node)
		reason string
	}{
		{"hostname not utf-8", func(n *fleet.Node) { n.Hostname = "A\xff" }, wire.ReasonBadString},
		{"hostname with newline", func(n *fleet.Node) { n.Hostname = "a\nb" }, wire.ReasonBadString},
		{"node id too long", func(n *fleet.Node) { n.ID = strings.Repeat("n", wire.MaxIDBytes+1) }, wire.ReasonBadString},
		{"label value with bidi override", func(n *fleet.Node) { n.Labels = map[string]string{"team": "a\u202eb"} }, wire.ReasonBadString},
		{"label key with space", func(n *fleet.Node) { n.Labels = map[string]string{"a b": "x"} }, wire.ReasonBadString},
		{"model with escape", func(n *fleet.Node) { n.Devices[0].Model = "H100\x1b[2J" }, wire.ReasonBadString},
		{"lease start in year 21000", func(n *fleet.Node) {
			n.Lease.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(18974, 0, 0)
		}, wire.ReasonBadLease},
		{"lease end before start", func(n *fleet.Node) {
			n.Lease.Start = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
			n.Lease.End = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		}, wire.ReasonBadLease},
		{"negative price", func(n *fleet.Node) { n.Lease.PricePerGPUHour.Micros = -1 }, wire.ReasonBadLease},
		{"currency lower case", func(n *fleet.Node) { n.Lease.PricePerGPUHour.Currency = "usd" }, wire.ReasonBadLease},
		{"power limit 1e11 W", func(n *fleet.Node) { n.Devices[0].PowerLimit = 1e11 }, wire.ReasonBadDevice},
		{"jurisdiction not a code", func(n *fleet.Node) { n.Jurisdiction = "Singapore" }, wire.ReasonBadString},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, ts.Server, "rejected", tc.reason)
			n := testNode("hostile", 1)
			tc.mod(&n)
			c := dialCollector(t, ts, secretAll)
			c.send(&wire.Hello{Proto: wire.Version, Node: n})
			cl, status := c.waitClose()
			if status != websocket.StatusCode(wire.CloseInvalid) || cl == nil || cl.Code != wire.CloseInvalid {
				t.Fatalf("closed with %d / %+v, want %d", status, cl, wire.CloseInvalid)
			}
			if got := counter(t, ts.Server, "rejected", tc.reason); got != before+1 {
				t.Errorf("rejected{%s} = %v, want %v", tc.reason, got, before+1)
			}
		})
	}
	if got := len(ts.Nodes()); got != 0 {
		t.Fatalf("%d nodes in the fleet after hostile hellos, want 0", got)
	}
}

// Metric values outside their physical range are made absent and counted;
// the fleet's utilisation stays a ratio.
func TestOutOfRangeValuesAbsent(t *testing.T) {
	ts, node, c := connected(t, 2)
	s := testSample(node, 1)
	s.Devices[0].Set(fleet.MetricUtil, 1e9)
	s.Devices[0].Set(fleet.MetricTemp, -500)
	s.Devices[0].Set(fleet.MetricPower, 1e11)
	s.Devices[1].Set(fleet.MetricUtil, 0.5)
	s.Host = &fleet.HostSample{}
	s.Host.Set(fleet.HostCPUUtil, -3)
	s.Procs = []fleet.Process{{Device: 0, PID: 1, Name: "x\xff\x00y", Job: fleet.Job{ID: "=HYPERLINK(\"x\")\n"}}}
	s.ProcsSet = true
	c.send(&wire.Samples{Samples: []fleet.Sample{s}})
	c.waitAck(1)
	v := nodeView(t, ts.Server, "n1")
	for _, m := range []string{"util", "temp", "power"} {
		if x, ok := v.Devices[0].Metrics[m]; ok {
			t.Errorf("device 0 %s = %v, want absent", m, x)
		}
	}
	if v.Devices[0].Util != nil {
		t.Errorf("device 0 util %v, want absent", *v.Devices[0].Util)
	}
	if _, ok := v.Host["cpu_util"]; ok {
		t.Errorf("host cpu_util present, want absent")
	}
	if got := promtest.ToFloat64(ts.m.repaired.WithLabelValues(wire.ReasonOutOfRange)); got != 4 {
		t.Errorf("repaired{out_of_range} = %v, want 4", got)
	}
	if got := promtest.ToFloat64(ts.m.repaired.WithLabelValues(wire.ReasonBadString)); got != 2 {
		t.Errorf("repaired{bad_string} = %v, want 2", got)
	}
	if p := v.Procs[0]; p.Name != "x\uFFFD\uFFFDy" || strings.ContainsAny(p.Job.ID, "\n") {
		t.Errorf("process %q job %q not repaired", p.Name, p.Job.ID)
	}
	if u := totals(ts.Nodes()).Util; u != 0.5 {
		t.Errorf("fleet util %v, want 0.5", u)
	}
}

// A sequence jump to 2^64-1 is refused: it would wrap the resume point and
// make every genuine record a duplicate.
func TestSequenceJumpRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  uint64
	}{{"max uint64", math.MaxUint64}, {"past max jump", 2 + wire.DefaultMaxSeqJump}} {
		t.Run(tc.name, func(t *testing.T) {
			ts, node, c := connected(t, 1)
			c.samples(node, 1)
			c.waitAck(1)
			before := counter(t, ts.Server, "rejected", wire.ReasonSeqJump)
			c.samples(node, tc.seq)
			cl, status := c.waitClose()
			if status != websocket.StatusCode(wire.CloseInvalid) || cl == nil || cl.Code != wire.CloseInvalid {
				t.Fatalf("closed with %d / %+v, want %d", status, cl, wire.CloseInvalid)
			}
			if got := counter(t, ts.Server, "rejected", wire.ReasonSeqJump); got != before+1 {
				t.Errorf("rejected{seq_jump} = %v, want %v", got, before+1)
			}
			if g := counter(t, ts.Server, "gaps"); g != 0 {
				t.Errorf("gaps %v after a refused jump", g)
			}
			// The genuine records still apply.
			c2 := dialCollector(t, ts, secretAll)
			if got := c2.hello(node); got != 2 {
				t.Fatalf("resume from %d, want 2", got)
			}
			c2.samples(node, 2, 3)
			c2.waitAck(3)
		})
	}
}

// A record whose time cannot be real is refused; an event's impossible time
// takes the record's.
func TestImpossibleTimes(t *testing.T) {
	ts, node, c := connected(t, 1)
	s := testSample(node, 1)
	s.Events = []fleet.Event{{Time: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), Kind: fleet.EventXID, Severity: fleet.SevCritical, Device: 0, Code: 79, Message: "fell off the bus"}}
	c.send(&wire.Samples{Samples: []fleet.Sample{s}})
	c.waitAck(1)
	v := nodeView(t, ts.Server, "n1")
	if len(v.Events) != 1 || !v.Events[0].Time.Equal(s.Time) {
		t.Fatalf("events %+v, want one at the record's time %v", v.Events, s.Time)
	}
	s = testSample(node, 2)
	s.Time = time.Date(21000, 1, 1, 0, 0, 0, 0, time.UTC)
	c.send(&wire.Samples{Samples: []fleet.Sample{s}})
	if _, status := c.waitClose(); status != websocket.StatusCode(wire.CloseInvalid) {
		t.Fatalf("closed with %d, want %d", status, wire.CloseInvalid)
	}
	if got := counter(t, ts.Server, "rejected", wire.ReasonBadTime); got != 1 {
		t.Errorf("rejected{bad_time} = %v, want 1", got)
	}
}

// A response that cannot be encoded answers 500 with a message, never a 200
// with an empty or truncated body; the failure is counted.
func TestAPIEncodeFailureIs500(t *testing.T) {
	ts := startServer(t, nil, nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/fleet", nil)
	ts.writeJSON(rec, req, struct{ T time.Time }{time.Date(21000, 1, 1, 0, 0, 0, 0, time.UTC)})
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "could not be encoded") {
		t.Fatalf("got %d %q, want 500 with a message", rec.Code, rec.Body.String())
	}
	if got := promtest.ToFloat64(ts.m.renderErrs.WithLabelValues(surfaceAPI)); got != 1 {
		t.Fatalf("render errors %v, want 1", got)
	}
}

// A second collector claiming a node id held by a healthy session is
// refused with CloseNodeInUse, counted and alerted with both addresses; the
// holder keeps streaming; once the holder is gone, a newcomer takes over.
func TestNodeIdentityOwned(t *testing.T) {
	// The healthy holder answers the ping at once; the bound only matters
	// if it does not, so a loaded machine must not reach it.
	ts := startServer(t, nil, func(c *Config) { c.TakeoverPing = testutil.WaitTimeout })
	node, c1 := helloN1(t, ts, 1)
	c1.samples(node, 1)
	c1.waitAck(1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c1ctx := c1.conn.CloseRead(ctx) // keep reading, so pings are answered

	c2 := dialCollector(t, ts, secretAll)
	c2.send(&wire.Hello{Proto: wire.Version, Node: node})
	cl, status := c2.waitClose()
	if status != websocket.StatusCode(wire.CloseNodeInUse) || cl == nil || cl.Code != wire.CloseNodeInUse {
		t.Fatalf("second session closed with %d / %+v, want %d", status, cl, wire.CloseNodeInUse)
	}
	if got := promtest.ToFloat64(ts.m.conflicts); got != 1 {
		t.Errorf("conflicts %v, want 1", got)
	}
	_, _, alerts := ts.summarize(ts.clock())
	var found bool
	for _, a := range alerts {
		if a.Kind == fleet.EventConflict && a.Node == "n1" && a.Open() && strings.Count(a.Message, "127.0.0.1:") == 2 {
			found = true
		}
	}
	if !found {
		t.Errorf("no open conflict alert naming both addresses in %+v", alerts)
	}
	// The holder still streams.
	c1.samples(node, 2)
	testutil.WaitFor(t, "seq 2 applied", func() bool { return nodeView(t, ts.Server, "n1").Seq == 2 })
	if c1ctx.Err() != nil {
		t.Fatal("holder's session closed")
	}
	// The holder's collector dies; a newcomer takes over.
	c1.conn.CloseNow()
	c3 := dialCollector(t, ts, secretAll)
	if got := c3.hello(node); got < 2 {
		t.Fatalf("newcomer resumes from %d", got)
	}
	c3.samples(node, 3)
	c3.waitAck(3)
}
