package aggregator

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// TestNodeJSONMatchesView: the hand-written watch encoding decodes to the
// same wire.NodeView as encoding/json's, for a node using every field.
func TestNodeJSONMatchesView(t *testing.T) {
	ts := startServer(t, nil, nil)
	node := testNode("n\"1", 3)
	node.Devices[1].Model = "Ascend 910B \"x\"\t\x01 ünï"
	node.Devices[2].UUID = "bad-\xff-utf8"
	node.Lease.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	node.Labels = map[string]string{"team": "research"}
	n := ts.getOrCreate(node.ID)
	rec := testSample(node, 1)
	rec.Devices = rec.Devices[:2] // device 2 never sampled
	rec.Devices[0].Set(fleet.MetricEnergy, 1.5e22)
	rec.Devices[0].Set(fleet.MetricThrottle, 1e-9)
	rec.Devices[1].Set(fleet.MetricUtil, 0)
	rec.Host = &fleet.HostSample{}
	rec.Host.Set(fleet.HostMemTotal, 2<<40)
	rec.ProcsSet = true
	rec.Procs = []fleet.Process{{Device: 0, PID: 7, Name: "python3", UsedMemory: 1 << 30, Job: fleet.Job{ID: "job-1", Team: "r"}}}
	rec.Events = []fleet.Event{{Time: time.Unix(1_770_000_000, 5).UTC(), Kind: fleet.EventXID, Severity: fleet.SevCritical, Device: 0, Code: 79, Message: "fell off the bus"}}
	n.mu.Lock()
	n.setNode(node)
	n.applyRecord(&rec, ts.clock())
	want := ts.view(n, ts.clock())
	got, err := ts.appendNodeJSON(nil, n, ts.clock())
	n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(got) {
		t.Fatalf("invalid JSON: %s", got)
	}
	if k := bytes.Count(got, []byte(`"devices":`)); k != 1 {
		t.Fatalf("%d devices keys (the head must hide the view's): %s", k, got)
	}
	wb, _ := json.Marshal(want)
	var a, b wire.NodeView
	if err := json.Unmarshal(wb, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("hand-written JSON differs:\n got %s\nwant %s", got, wb)
	}
	if len(b.Devices) != 3 || b.Devices[1].Util == nil || *b.Devices[1].Util != 0 || len(b.Devices[2].Metrics) != 0 {
		t.Fatalf("devices %+v", b.Devices)
	}
}
