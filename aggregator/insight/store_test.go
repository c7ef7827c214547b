package insight

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/store"
)

// Alerts are stored with their start and end: a residency violation raised
// and cleared by the engine is in the store's alert table after a commit.
func TestAlertsAreStored(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "fleettop.db"), store.Options{SyncNormal: true, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg, err := ParseConfig([]byte(fixtureYAML), "fleettop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Rules.AlertClear = 0 // ends as the condition does (hysteresis: TestHysteresisThroughTick)
	e, err := New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := fixtureNodes()
	job := fleet.Job{ID: "j1", Team: "vision", DataClass: "cn-customer"}
	e.Observe(sg, 0, &fleet.Sample{Seq: 1, Time: t0, Devices: []fleet.DeviceSample{util(0, 0.9)},
		ProcsSet: true, Procs: []fleet.Process{{Device: 0, PID: 100, Job: job}}})
	e.Observe(sg, 0, &fleet.Sample{Seq: 2, Time: t0.Add(time.Minute), Devices: []fleet.DeviceSample{util(0, 0.1)},
		ProcsSet: true})
	ctx := context.Background()
	if err := st.Commit(ctx, map[string]uint64{sg.ID: 2}); err != nil {
		t.Fatal(err)
	}
	alerts, err := st.Alerts(ctx, t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, a := range alerts {
		if a.ID == "residency/j1/sg-1" {
			found = true
			if !a.Start.Equal(t0) || !a.End.Equal(t0.Add(time.Minute)) {
				t.Errorf("stored residency alert runs %v → %v, want %v → %v", a.Start, a.End, t0, t0.Add(time.Minute))
			}
		}
	}
	if !found {
		t.Fatalf("residency alert not stored; store has %+v", alerts)
	}
}

// After a restart, spend today and this month are what the ledger holds
// (a store's engine reads its money from the ledger), nothing counted twice.
func TestSpendSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	restart := start.Add(150 * time.Minute) // 12:30
	st, err := store.Open(filepath.Join(t.TempDir(), "fleettop.db"), store.Options{SyncNormal: true, Clock: func() time.Time { return restart }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sg, _ := fixtureNodes() // 2 GPUs at 2.85 USD per GPU-hour, billed per second
	seq := uint64(0)
	for at := start; at.Before(start.Add(2 * time.Hour)); at = at.Add(30 * time.Second) {
		seq++
		st.Record(sg, 0, &fleet.Sample{Seq: seq, Time: at, Devices: []fleet.DeviceSample{util(0, 0.9), util(1, 0.9)}})
	}
	if err := st.Commit(ctx, map[string]uint64{sg.ID: seq}); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	cfg, err := ParseConfig([]byte(fixtureYAML), "fleettop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(sg, 0, &fleet.Sample{Seq: seq + 1, Time: restart, Devices: []fleet.DeviceSample{util(0, 0.9), util(1, 0.9)}})
	sum, _, _ := e.Summarize(restart)
	// Ledger (flushed at 12:30): 10:00–12:30 = 2.5 h × 2 GPUs × 2.85.
	if want := usd(14_250_000); sum.SpendToday != want || sum.SpendMonth != want {
		t.Errorf("after restart: today %v, month %v; want %v for both", sum.SpendToday, sum.SpendMonth, want)
	}
	// A second Summarize reads the ledger into the room of the first: the same.
	if again, _, _ := e.Summarize(restart); !reflect.DeepEqual(again, sum) {
		t.Errorf("second Summarize differs:\n%+v\n%+v", again, sum)
	}
	// An engine that has not seen the node since it started counts the
	// ledger's spend all the same, in the region the store last knew.
	dark, err := New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, _, _ := dark.Summarize(restart)
		if got.SpendToday != sum.SpendToday || got.SpendMonth != sum.SpendMonth {
			t.Errorf("node not seen: today %v, month %v; want %v", got.SpendToday, got.SpendMonth, sum.SpendToday)
		}
		found := false
		for _, l := range got.Costs {
			if l.By == "region" && l.Group == "Singapore" {
				found = l.SpendMonth == sum.SpendMonth
			}
		}
		if !found {
			t.Errorf("node not seen: no Singapore line with %v in %+v", sum.SpendMonth, got.Costs)
		}
	}
}
