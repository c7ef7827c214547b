package tui

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

func TestGroupAlerts(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	var in []fleet.Alert
	for d := range 8 {
		in = append(in, fleet.Alert{ID: fmt.Sprintf("thermal/n1/%d", d), Kind: fleet.EventThermal, Severity: fleet.SevWarning,
			Node: "n1", Device: d, Message: fmt.Sprintf("n1 GPU %d: thermal slowdown", d), Start: t0.Add(time.Duration(d) * time.Second), Acked: d != 3})
	}
	in = append(in,
		fleet.Alert{ID: "xid/n1/5/79", Kind: fleet.EventXID, Severity: fleet.SevCritical, Node: "n1", Device: 5, Message: "n1 GPU 5: " + fleet.XIDText(79), Start: t0},
		fleet.Alert{ID: "xid/n1/2/48", Kind: fleet.EventXID, Severity: fleet.SevCritical, Node: "n1", Device: 2, Message: "n1 GPU 2: " + fleet.XIDText(48), Start: t0},
		fleet.Alert{ID: "xid/n1/6/79", Kind: fleet.EventXID, Severity: fleet.SevCritical, Node: "n1", Device: 6, Message: "n1 GPU 6: " + fleet.XIDText(79), Start: t0},
		fleet.Alert{ID: "offline/n2", Kind: fleet.EventOffline, Severity: fleet.SevWarning, Node: "n2", Device: -1, Message: "node stopped reporting", Start: t0},
	)
	rows := groupAlerts(in)
	got := map[string]string{}
	for _, r := range rows {
		got[r.cause] = fmt.Sprintf("%s %s %d acked=%v", r.Node, devicesText(r.Devices), len(r.IDs), r.Acked)
	}
	want := map[string]string{
		"thermal slowdown":                    "n1 GPU ×8 8 acked=false",
		"XID 79 (GPU has fallen off the bus)": "n1 GPU 5,6 2 acked=false",
		"XID 48 (double-bit ECC error)":       "n1 GPU 2 1 acked=false",
		"node stopped reporting":              "n2  1 acked=false",
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %v", len(rows), len(want), got)
	}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("%q: %q, want %q", c, got[c], w)
		}
	}
	if !rows[0].Start.Equal(t0) {
		t.Errorf("thermal group starts %v, want its oldest member's %v", rows[0].Start, t0)
	}
}

// TestMergerAlertsApart: a version 3 stream sends the alerts apart from the
// aggregates and only when they change, so an update of the aggregates
// keeps them; a version 2 stream sends them inside the aggregates.
func TestMergerAlertsApart(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	al := func(id string) fleet.Alert {
		return fleet.Alert{ID: id, Kind: fleet.EventXID, Severity: fleet.SevCritical, Node: "n1", Message: id, Start: t0}
	}
	f := NewMerger([]Endpoint{{URL: "http://asia:8443"}}, "", 0.05)
	alerts := func() int { return len(f.Snapshot(t0).Alerts) }
	f.Apply(0, &wire.WatchMsg{Version: 3, Kind: wire.WatchSnapshot, Seq: 1, Fleet: &wire.FleetView{AlertsTotal: 1},
		FleetAlerts: &wire.FleetAlerts{Alerts: []fleet.Alert{al("a")}}, Page: &wire.NodePage{}}, t0)
	if n := alerts(); n != 1 {
		t.Fatalf("after the snapshot: %d alerts, want 1", n)
	}
	f.Apply(0, &wire.WatchMsg{Version: 3, Kind: wire.WatchUpdate, Seq: 2, Fleet: &wire.FleetView{AlertsTotal: 1}}, t0)
	if n := alerts(); n != 1 {
		t.Fatalf("after an update of the aggregates alone: %d alerts, want 1", n)
	}
	f.Apply(0, &wire.WatchMsg{Version: 3, Kind: wire.WatchUpdate, Seq: 3, FleetAlerts: &wire.FleetAlerts{Alerts: []fleet.Alert{al("a"), al("b")}}}, t0)
	if n := alerts(); n != 2 {
		t.Fatalf("after new alerts: %d alerts, want 2", n)
	}
	f.Apply(0, &wire.WatchMsg{Version: 3, Kind: wire.WatchUpdate, Seq: 4, FleetAlerts: &wire.FleetAlerts{}}, t0)
	if n := alerts(); n != 0 {
		t.Fatalf("after the alerts cleared: %d alerts, want 0", n)
	}
	f.Apply(0, &wire.WatchMsg{Version: 2, Kind: wire.WatchSnapshot, Seq: 1, Fleet: &wire.FleetView{Alerts: []fleet.Alert{al("c")}}, Page: &wire.NodePage{}}, t0)
	if n := alerts(); n != 1 {
		t.Fatalf("version 2: %d alerts, want 1", n)
	}
}
