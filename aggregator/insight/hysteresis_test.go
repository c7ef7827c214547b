package insight

import (
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// With the default hysteresis (alerts.for 30s, alerts.clear 1m), a clock
// alert opens only once the offset has lasted 30 s and ends a minute after
// it is fixed; the engine's Tick moves the book on as time passes.
func TestHysteresisThroughTick(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.Rules.AlertFor != 30*time.Second || cfg.Rules.AlertClear != time.Minute {
		t.Fatalf("default hysteresis %v/%v, want 30s/1m", cfg.Rules.AlertFor, cfg.Rules.AlertClear)
	}
	e, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := fixtureNodes()
	open := func(at time.Time) []fleet.Alert {
		var out []fleet.Alert
		for _, a := range e.book.Alerts(at) {
			if a.Kind == fleet.EventClock && a.Open() {
				out = append(out, a)
			}
		}
		return out
	}
	e.ClockOffset(sg, time.Hour, t0)
	e.Tick(t0.Add(29 * time.Second))
	if a := open(t0.Add(29 * time.Second)); len(a) != 0 {
		t.Fatalf("opened before its 30 s: %+v", a)
	}
	e.Tick(t0.Add(31 * time.Second))
	if a := open(t0.Add(31 * time.Second)); len(a) != 1 || !a[0].Start.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("after 31 s: %+v, want one alert opened at 30 s", a)
	}
	e.ClockOffset(sg, 0, t0.Add(2*time.Minute))
	e.Tick(t0.Add(2*time.Minute + 59*time.Second))
	if a := open(t0.Add(2*time.Minute + 59*time.Second)); len(a) != 1 {
		t.Fatalf("closed before its clear minute")
	}
	e.Tick(t0.Add(3 * time.Minute))
	if a := open(t0.Add(3 * time.Minute)); len(a) != 0 {
		t.Fatalf("still open a minute after the fix: %+v", a)
	}
}
