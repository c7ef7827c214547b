package insight

import (
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// A node whose clock is off by more than the threshold (2 s by default,
// alerts.clock_offset_above) raises a clock alert, which ends when its
// clock is back within it.
func TestClockAlert(t *testing.T) {
	// Without hysteresis (alerts.for, alerts.clear): see TestHysteresisThroughTick.
	cfg, err := ParseConfig([]byte("alerts:\n  clock_offset_above: 5s\n  for: 0s\n  clear: 0s\n"), "aggregator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if DefaultConfig().ClockOffsetMax != 2*time.Second || cfg.ClockOffsetMax != 5*time.Second {
		t.Fatalf("clock offset limits: default %v, configured %v", DefaultConfig().ClockOffsetMax, cfg.ClockOffsetMax)
	}
	e, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := fixtureNodes()
	clock := func() []fleet.Alert {
		var out []fleet.Alert
		for _, a := range e.book.Alerts(now) {
			if a.Kind == fleet.EventClock {
				out = append(out, a)
			}
		}
		return out
	}
	e.ClockOffset(sg, 4*time.Second, t0)
	if a := clock(); len(a) != 0 {
		t.Fatalf("alert within the limit: %+v", a)
	}
	e.ClockOffset(sg, -time.Hour, t0.Add(time.Minute))
	a := clock()
	if len(a) != 1 || !a[0].Open() || a[0].Node != sg.ID || a[0].ID != "clock/"+sg.ID || !a[0].Start.Equal(t0.Add(time.Minute)) {
		t.Fatalf("clock alerts %+v, want one open for %s", a, sg.ID)
	}
	t.Log(a[0].Message)
	e.ClockOffset(sg, 10*time.Millisecond, now.Add(-time.Minute))
	if a := clock(); len(a) != 1 || a[0].Open() || !a[0].End.Equal(now.Add(-time.Minute)) {
		t.Fatalf("clock alerts %+v, want one ended", a)
	}
}
