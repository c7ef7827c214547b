package aggregator

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/wire"
)

func deviceStates(v wire.NodeView) []fleet.DeviceState {
	out := make([]fleet.DeviceState, len(v.Devices))
	for i, d := range v.Devices {
		out[i] = d.State
	}
	return out
}

// A GPU that fell off the bus (XID 79) or left the inventory is lost until
// the node boots again; its node is degraded and the GPU is not online.
func TestDeviceLostUntilReboot(t *testing.T) {
	ts := startServer(t, nil, nil)
	outer := t // the collector outlives each step
	base := testNode("n1", 4)
	base.BootID = "boot-1"
	boot := func(id string, drop ...int) *fleet.Node {
		n := base
		n.BootID = id
		n.Devices = slices.DeleteFunc(slices.Clone(n.Devices), func(d fleet.Device) bool { return slices.Contains(drop, d.Index) })
		return &n
	}
	const ok, lost = fleet.DeviceOK, fleet.DeviceLost
	var (
		seq  uint64
		c    *collector
		node fleet.Node
	)
	for _, step := range []struct {
		name      string
		hello     *fleet.Node // reconnect with this inventory first
		xid       int         // device that reports XID 79; -1 none
		wantState string
		want      []fleet.DeviceState
		blind     int
	}{
		{"all well", boot("boot-1"), -1, wire.StateOnline, []fleet.DeviceState{ok, ok, ok, ok}, 0},
		{"XID 79 on GPU 2", nil, 2, wire.StateDegraded, []fleet.DeviceState{ok, ok, lost, ok}, 1},
		{"same boot, GPU 2 back in the inventory", boot("boot-1"), -1, wire.StateDegraded, []fleet.DeviceState{ok, ok, lost, ok}, 1},
		{"same boot, GPU 3 gone from the inventory", boot("boot-1", 3), -1, wire.StateDegraded, []fleet.DeviceState{ok, ok, lost, lost}, 2},
		{"a new boot starts afresh", boot("boot-2"), -1, wire.StateOnline, []fleet.DeviceState{ok, ok, ok, ok}, 0},
		{"a new boot without GPU 1 has three", boot("boot-3", 1), -1, wire.StateOnline, []fleet.DeviceState{ok, ok, ok}, 0},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.hello != nil {
				if c != nil {
					c.conn.CloseNow()
				}
				node = *step.hello
				c = dialCollector(outer, ts, secretAll)
				c.hello(node)
			}
			seq++
			s := testSample(node, seq)
			for i := range s.Devices {
				s.Devices[i].Index = node.Devices[i].Index
			}
			if step.xid >= 0 {
				s.Events = []fleet.Event{{Time: s.Time, Kind: fleet.EventXID, Severity: fleet.SevCritical, Device: step.xid, Code: 79, Message: "XID 79"}}
			}
			c.send(&wire.Samples{Samples: []fleet.Sample{s}})
			testutil.WaitFor(t, "sample applied", func() bool { return nodeView(t, ts.Server, "n1").Seq == seq })
			v := nodeView(t, ts.Server, "n1")
			if got := deviceStates(v); !slices.Equal(got, step.want) || v.State != step.wantState || v.GPUsBlind != step.blind {
				t.Fatalf("state %s devices %v blind %d, want %s %v %d", v.State, got, v.GPUsBlind, step.wantState, step.want, step.blind)
			}
			sum := ts.basicSummary(ts.clock())
			if sum.GPUsOnline+sum.GPUsLost != len(v.Devices) || sum.GPUsLost != step.blind {
				t.Fatalf("summary online %d lost %d of %d devices", sum.GPUsOnline, sum.GPUsLost, len(v.Devices))
			}
		})
	}
}

// fixedAlerts serves fixed alerts and records Tick.
type fixedAlerts struct {
	fakeInsights
	alerts []fleet.Alert
	ticks  chan time.Time
}

func (a *fixedAlerts) Summarize(time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	return wire.Summary{Currency: "USD", AlertsOpen: 1}, nil, a.alerts
}

func (a *fixedAlerts) Tick(now time.Time) {
	select {
	case a.ticks <- now:
	default:
	}
}

func TestAlertsAPI(t *testing.T) {
	clk := newFakeClock()
	start := clk.Now().Add(-10 * time.Minute)
	ins := &fixedAlerts{ticks: make(chan time.Time, 1), alerts: []fleet.Alert{
		{ID: "xid/n1/5/79", Kind: fleet.EventXID, Severity: fleet.SevCritical, Node: "n1", Region: "Singapore", Device: 5,
			Message: "n1 GPU 5: XID 79", Start: start},
		{ID: "offline/n2", Kind: fleet.EventOffline, Severity: fleet.SevWarning, Node: "n2", Device: -1,
			Message: "n2: offline since …", Start: start, End: start.Add(3 * time.Minute)},
	}}
	ts := startServer(t, nil, func(c *Config) {
		c.Clock = clk.Now
		c.Insights = ins
		c.FlushInterval = time.Hour // the test drives checkStates itself
	})
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {secretAll, 403}, {secretViewer, 200}} {
		req, _ := http.NewRequest("GET", ts.httpURL("/api/v1/alerts"), nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Fatalf("token %q: status %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
		if tc.want != 200 {
			resp.Body.Close()
			continue
		}
		var got AlertsResponse
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Alerts) != 2 || got.Open != 1 || !got.Time.Equal(clk.Now()) {
			t.Fatalf("response %+v", got)
		}
		x, off := got.Alerts[0], got.Alerts[1]
		if x.Kind != fleet.EventXID || x.GPU == nil || *x.GPU != 5 || !x.Open || x.End != nil || x.Node != "n1" || !x.Start.Equal(start) {
			t.Errorf("xid alert %+v", x)
		}
		if off.Kind != fleet.EventOffline || off.GPU != nil || off.Open || off.End == nil || !off.End.Equal(start.Add(3*time.Minute)) {
			t.Errorf("offline alert %+v", off)
		}
	}
	// Time-driven rules are judged at every state check, on the server's clock.
	ts.checkStates()
	if got := <-ins.ticks; !got.Equal(clk.Now()) {
		t.Fatalf("tick at %v, want %v", got, clk.Now())
	}
}

// Per-source health arrives in Hello and in Status frames, and shows on the
// node.
func TestSourceStatus(t *testing.T) {
	ts := startServer(t, nil, nil)
	node := testNode("n1", 2)
	node.Sources = []fleet.SourceStatus{{Name: "nvml", Up: true}, {Name: "host", Up: true}}
	c := dialCollector(t, ts, secretAll)
	c.hello(node)
	for i, want := range [][]fleet.SourceStatus{
		{{Name: "nvml", Up: false, Reason: "driver/library version mismatch"}, {Name: "host", Up: true}},
		{{Name: "nvml", Up: true}, {Name: "host", Up: true}},
	} {
		if i == 0 {
			testutil.WaitFor(t, "hello applied", func() bool { return len(nodeView(t, ts.Server, "n1").Sources) == 2 })
		}
		c.send(&wire.Status{Sources: want})
		testutil.WaitFor(t, "status applied", func() bool { return slices.Equal(nodeView(t, ts.Server, "n1").Sources, want) })
	}
}

// The node generation handed to the Recorder (and Insights) stays while the
// node does and moves with every change of it: a GPU off the bus, a status,
// a reconnection (the same inventory included). Both skip re-reading an
// identity whose generation they have seen.
func TestNodeGenerationMovesWithTheNode(t *testing.T) {
	ts := startServer(t, nil, nil)
	node := testNode("n1", 2)
	node.BootID = "boot-1"
	c := dialCollector(t, ts, secretAll)
	c.hello(node)
	var seq uint64
	gen := func(prep func(*fleet.Sample)) uint64 {
		t.Helper()
		seq++
		s := testSample(node, seq)
		if prep != nil {
			prep(&s)
		}
		c.send(&wire.Samples{Samples: []fleet.Sample{s}})
		var g uint64
		testutil.WaitFor(t, "sample recorded", func() bool {
			ts.rec.mu.Lock()
			defer ts.rec.mu.Unlock()
			gs := ts.rec.gens["n1"]
			if len(gs) < int(seq) {
				return false
			}
			g = gs[seq-1]
			return true
		})
		return g
	}
	g1 := gen(nil)
	if g1 == 0 {
		t.Fatal("generation 0 after a Hello")
	}
	if g := gen(nil); g != g1 {
		t.Fatalf("generation moved from %d to %d with nothing changed", g1, g)
	}
	g2 := gen(func(s *fleet.Sample) {
		s.Events = []fleet.Event{{Time: s.Time, Kind: fleet.EventXID, Severity: fleet.SevCritical, Device: 1, Code: 79, Message: "XID 79"}}
	})
	// The XID is applied before the record is recorded: its own sample
	// carries the new generation.
	if g2 == g1 {
		t.Fatalf("generation %d kept after GPU 1 fell off the bus", g2)
	}
	c.send(&wire.Status{Sources: []fleet.SourceStatus{{Name: "nvml", Reason: "driver gone"}}})
	testutil.WaitFor(t, "status applied", func() bool { return len(nodeView(t, ts.Server, "n1").Sources) == 1 })
	g3 := gen(nil)
	if g3 == g2 || g3 == g1 {
		t.Fatalf("generation %d after a status (before: %d, %d)", g3, g1, g2)
	}
	c.conn.CloseNow()
	c = dialCollector(t, ts, secretAll)
	c.hello(node)
	if g4 := gen(nil); g4 == g3 || g4 == g2 || g4 == g1 {
		t.Fatalf("generation %d after a reconnection (before: %d, %d, %d)", g4, g1, g2, g3)
	}
}

// TestMarkLostCopiesTheInventory: a GPU falling off the bus gives the node a
// new inventory and generation rather than changing the inventory in place:
// the Recorder keeps a node's Devices by reference while its generation
// stays (Recorder.Record).
func TestMarkLostCopiesTheInventory(t *testing.T) {
	n := newNodeState("n1")
	n.setNode(testNode("n1", 2))
	held, gen := n.node.Devices, n.gen
	if !n.markLost(1) {
		t.Fatal("GPU 1 not marked lost")
	}
	if held[1].State == fleet.DeviceLost {
		t.Error("markLost changed the inventory the Recorder may hold")
	}
	if n.node.Devices[1].State != fleet.DeviceLost || n.gen == gen {
		t.Errorf("after markLost: GPU 1 %q, generation %d (was %d)", n.node.Devices[1].State, n.gen, gen)
	}
}
