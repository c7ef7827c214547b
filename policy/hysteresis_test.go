package policy

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

func thermal(node string) Condition {
	return Condition{ID: "thermal/" + node + "/2", Kind: fleet.EventThermal, Severity: fleet.SevWarning, Node: node, Device: 2,
		Message: node + " GPU 2: thermal throttling"}
}

func hystBook() *Book {
	r := DefaultRules()
	b := NewBook(time.Hour, 100)
	b.SetHysteresis(r.Hysteresis)
	return b
}

// drive drives one scope through a sequence of seconds: at second i the
// condition holds when on(i); the book is synced on change and settled
// every second, as the engine does. It returns the transitions.
func drive(b *Book, t0 time.Time, secs int, c Condition, on func(int) bool) []Transition {
	var out []Transition
	held := false
	for i := range secs {
		t := t0.Add(time.Duration(i) * time.Second)
		if h := on(i); h != held {
			held = h
			var cur []Condition
			if h {
				cur = []Condition{c}
			}
			out = append(out, b.Sync("node/"+c.Node, cur, t)...)
		}
		out = append(out, b.Settle(t)...)
	}
	return out
}

func TestHysteresisFlappingIsOneAlert(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	// Throttling that holds for 40 s, then flaps on and off every 1–10 s
	// for five minutes, then stops: one alert, opened when the first 30 s
	// had held, closed a minute after the last flap.
	pattern := make([]bool, 40, 340)
	for i := range pattern {
		pattern[i] = true
	}
	on := false
	for len(pattern) < 340 {
		for range 1 + rng.IntN(10) {
			pattern = append(pattern, on)
		}
		on = !on
	}
	pattern = pattern[:340]
	pattern[339] = false
	last := 0
	for i, p := range pattern {
		if p {
			last = i
		}
	}
	b := hystBook()
	trs := drive(b, t0, 600, thermal("n1"), func(i int) bool { return i < 340 && pattern[i] })
	if len(trs) != 2 || !trs[0].Opened || trs[1].Opened || !trs[0].Alert.Start.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("flapping gave %+v, want one alert opened at 30 s", trs)
	}
	// Without hysteresis the same input opens and closes many alerts.
	raw := NewBook(time.Hour, 1000)
	if n := len(drive(raw, t0, 600, thermal("n1"), func(i int) bool { return i < 340 && pattern[i] })); n < 10 {
		t.Fatalf("the flapping input is too tame: %d transitions without hysteresis", n)
	}
	if want := t0.Add(time.Duration(last+1)*time.Second + time.Minute); !trs[1].Alert.End.Equal(want) {
		t.Errorf("closed at %v, want a minute after the last flap ended (%v)", trs[1].Alert.End, want)
	}
}

func TestHysteresisWindows(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		on   func(int) bool
		want string // transitions as "open@s close@s"
		cond Condition
	}{
		{"a blip shorter than the hold never opens", func(i int) bool { return i >= 10 && i < 25 }, "", thermal("n1")},
		{"held 30 s opens, clear 60 s closes", func(i int) bool { return i >= 10 && i < 100 }, "open@40 close@160", thermal("n1")},
		{"back within the clear window: the same alert", func(i int) bool { return i >= 10 && i < 100 || i >= 130 && i < 140 }, "open@40 close@200", thermal("n1")},
		{"critical opens at once, still clears", func(i int) bool { return i >= 10 && i < 20 }, "open@10 close@80",
			Condition{ID: "ecc/n1/0", Kind: fleet.EventECC, Severity: fleet.SevCritical, Node: "n1"}},
		{"offline has its own window: at once both ways", func(i int) bool { return i >= 10 && i < 20 }, "open@10 close@20",
			Condition{ID: "offline/n1", Kind: fleet.EventOffline, Severity: fleet.SevWarning, Node: "n1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := hystBook()
			got := ""
			for _, tr := range drive(b, t0, 400, c.cond, c.on) {
				if got != "" {
					got += " "
				}
				if tr.Opened {
					got += fmt.Sprintf("open@%d", int(tr.Alert.Start.Sub(t0).Seconds()))
				} else {
					got += fmt.Sprintf("close@%d", int(tr.Alert.End.Sub(t0).Seconds()))
				}
			}
			if got != c.want {
				t.Errorf("transitions %q, want %q", got, c.want)
			}
			if n := b.OpenCount(); n != 0 {
				t.Errorf("%d alerts still open", n)
			}
		})
	}
}

// Pending alerts are not shown; clearing ones are, as open.
func TestHysteresisShownAlerts(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b := hystBook()
	c := thermal("n1")
	b.Sync("node/n1", []Condition{c}, t0)
	if len(b.Alerts(t0)) != 0 || !b.Unchanged("node/n1", []Condition{c}) {
		t.Fatalf("a pending condition is shown, or its scope forgot it")
	}
	b.Settle(t0.Add(30 * time.Second))
	b.Sync("node/n1", nil, t0.Add(40*time.Second))
	if a := b.Alerts(t0.Add(50 * time.Second)); len(a) != 1 || !a[0].Open() {
		t.Fatalf("a clearing alert must stay open: %+v", a)
	}
}

// A node back from an outage resends samples older than its offline
// alert's start: the alert ends when the book learns it, not at its start.
func TestCloseOnOlderSamples(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b := hystBook()
	off := Condition{ID: "offline/n1", Kind: fleet.EventOffline, Severity: fleet.SevWarning, Node: "n1"}
	b.Sync("node/n1", []Condition{off}, t0.Add(2*time.Minute))
	b.Settle(t0.Add(5 * time.Minute))
	trs := b.Sync("node/n1", nil, t0.Add(time.Minute)) // a resent sample of minute 1
	if len(trs) != 1 || trs[0].Opened || !trs[0].Alert.End.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("transitions %+v, want the alert ended at 5 min", trs)
	}
}
