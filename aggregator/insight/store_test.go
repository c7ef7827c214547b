package insight

import (
	"context"
	"path/filepath"
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
	e, err := New(cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := fixtureNodes()
	job := fleet.Job{ID: "j1", Team: "vision", DataClass: "cn-customer"}
	e.Observe(sg, &fleet.Sample{Seq: 1, Time: t0, Devices: []fleet.DeviceSample{util(0, 0.9)},
		ProcsSet: true, Procs: []fleet.Process{{Device: 0, PID: 100, Job: job}}})
	e.Observe(sg, &fleet.Sample{Seq: 2, Time: t0.Add(time.Minute), Devices: []fleet.DeviceSample{util(0, 0.1)},
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
