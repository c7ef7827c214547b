package policy

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Transition is an alert that opened (End zero) or ended.
type Transition struct {
	Alert  fleet.Alert
	Opened bool
}

// Hysteresis says how long a condition of kind and severity must hold
// before its alert opens (hold) and be clear before it closes (clear); zero
// opens or closes at once.
type Hysteresis func(kind fleet.EventKind, sev fleet.Severity) (hold, clear time.Duration)

// Book keeps the alerts: the open ones, grouped by scope (a node, the
// budgets), and the recently closed. With a Hysteresis, a condition first
// waits (pending) and an alert whose condition went away stays open while
// it clears, so that a flapping condition is one alert, not many; Settle
// moves them on as time passes. It is safe for concurrent use.
type Book struct {
	mu       sync.Mutex
	open     map[string]*fleet.Alert
	scopes   map[string][]string // scope → ids of the conditions that hold
	closed   []fleet.Alert       // newest last
	keep     time.Duration
	max      int
	hyst     Hysteresis
	pending  map[string]pendingCond // conditions not yet held long enough
	clearing map[string]time.Time   // open alerts whose condition went away, and when
	latest   time.Time              // the latest time any Sync or Settle was given
}

type pendingCond struct {
	c     Condition
	since time.Time
}

// NewBook returns a Book that shows closed alerts for keep after they end,
// at most max of them.
func NewBook(keep time.Duration, max int) *Book {
	return &Book{open: make(map[string]*fleet.Alert), scopes: make(map[string][]string), keep: keep, max: max,
		pending: make(map[string]pendingCond), clearing: make(map[string]time.Time)}
}

// SetHysteresis makes the book hold alerts back and keep them open as h
// says (Rules.Hysteresis); nil, the default, opens and closes at once.
func (b *Book) SetHysteresis(h Hysteresis) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hyst = h
}

func (b *Book) windows(kind fleet.EventKind, sev fleet.Severity) (hold, clear time.Duration) {
	if b.hyst == nil {
		return 0, 0
	}
	return b.hyst(kind, sev)
}

// Unchanged reports whether the conditions of scope are exactly the ids of
// cur; callers use it to skip Sync on the hot path.
func (b *Book) Unchanged(scope string, cur []Condition) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sameIDs(b.scopes[scope], cur)
}

// Sync makes cur the conditions of scope at t: a condition new to the book
// opens its alert (or, with a hold window, waits in pending), an alert whose
// condition is back stays open, and the alert of a condition absent from
// cur ends (or, with a clear window, starts clearing; a pending condition
// is dropped). It returns the transitions, including those Settle finds
// due at t.
func (b *Book) Sync(scope string, cur []Condition, t time.Time) []Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.After(b.latest) {
		b.latest = t
	}
	prev := b.scopes[scope]
	if sameIDs(prev, cur) {
		return nil
	}
	var out []Transition
	ids := make([]string, 0, len(cur))
	for _, c := range cur {
		if slices.Contains(ids, c.ID) {
			continue
		}
		ids = append(ids, c.ID)
		if _, ok := b.open[c.ID]; ok {
			delete(b.clearing, c.ID) // back before it cleared: the same alert
			continue
		}
		if _, ok := b.pending[c.ID]; ok {
			continue
		}
		if hold, _ := b.windows(c.Kind, c.Severity); hold > 0 {
			b.pending[c.ID] = pendingCond{c: c, since: t}
			continue
		}
		out = append(out, b.openLocked(c, t))
	}
	for _, id := range prev {
		if slices.Contains(ids, id) {
			continue
		}
		if _, ok := b.pending[id]; ok {
			delete(b.pending, id) // gone before it held: never an alert
			continue
		}
		a, ok := b.open[id]
		if !ok {
			continue
		}
		if _, clear := b.windows(a.Kind, a.Severity); clear > 0 {
			if _, ok := b.clearing[id]; !ok {
				b.clearing[id] = t
			}
			continue
		}
		out = append(out, b.closeLocked(id, t))
	}
	if len(ids) == 0 {
		delete(b.scopes, scope)
	} else {
		b.scopes[scope] = ids
	}
	return append(out, b.settleLocked(t)...)
}

// Settle opens the pending conditions that have held for their hold
// window and closes the alerts that have been clear for their clear
// window, at the moment each became due (not after now). Call it as time
// passes (the engine does every second), since a condition that stays
// the same calls no Sync.
func (b *Book) Settle(now time.Time) []Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.After(b.latest) {
		b.latest = now
	}
	return b.settleLocked(now)
}

func (b *Book) settleLocked(now time.Time) []Transition {
	if len(b.pending) == 0 && len(b.clearing) == 0 {
		return nil
	}
	var out []Transition
	for id, p := range b.pending {
		hold, _ := b.windows(p.c.Kind, p.c.Severity)
		if due := p.since.Add(hold); !due.After(now) {
			delete(b.pending, id)
			out = append(out, b.openLocked(p.c, due))
		}
	}
	for id, since := range b.clearing {
		a := b.open[id]
		if a == nil {
			delete(b.clearing, id)
			continue
		}
		_, clear := b.windows(a.Kind, a.Severity)
		if due := since.Add(clear); !due.After(now) {
			out = append(out, b.closeLocked(id, due))
		}
	}
	// Map order is random: report in time order, then by id.
	slices.SortFunc(out, func(x, y Transition) int {
		tx, ty := x.Alert.Start, y.Alert.Start
		if !x.Opened {
			tx = x.Alert.End
		}
		if !y.Opened {
			ty = y.Alert.End
		}
		if c := tx.Compare(ty); c != 0 {
			return c
		}
		return strings.Compare(x.Alert.ID, y.Alert.ID)
	})
	return out
}

func (b *Book) openLocked(c Condition, t time.Time) Transition {
	a := &fleet.Alert{ID: c.ID, Kind: c.Kind, Severity: c.Severity, Node: c.Node, Region: c.Region,
		Device: c.Device, Job: c.Job, Message: c.Message, Start: t}
	b.open[c.ID] = a
	return Transition{Alert: *a, Opened: true}
}

func (b *Book) closeLocked(id string, t time.Time) Transition {
	a := b.open[id]
	delete(b.open, id)
	delete(b.clearing, id)
	a.End = t
	if a.End.Before(a.Start) {
		// Judged on older samples (a collector resending its spool after
		// an outage): the alert ends now, as far as the book knows, not
		// at its start — an offline alert that ended as the node came
		// back is not a zero-length one.
		a.End = b.latest
		if a.End.Before(a.Start) {
			a.End = a.Start
		}
	}
	b.closed = append(b.closed, *a)
	if over := len(b.closed) - b.max; over > 0 {
		b.closed = slices.Delete(b.closed, 0, over)
	}
	return Transition{Alert: *a}
}

// OpenCount returns the number of open alerts.
func (b *Book) OpenCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.open)
}

// Alerts returns the open alerts and those closed within the keep window
// before now, ordered by start then id.
func (b *Book) Alerts(now time.Time) []fleet.Alert {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := 0
	for i < len(b.closed) && now.Sub(b.closed[i].End) > b.keep {
		i++
	}
	b.closed = slices.Delete(b.closed, 0, i)
	out := make([]fleet.Alert, 0, len(b.open)+len(b.closed))
	for _, a := range b.open {
		out = append(out, *a)
	}
	out = append(out, b.closed...)
	slices.SortFunc(out, func(x, y fleet.Alert) int {
		if c := x.Start.Compare(y.Start); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

func sameIDs(ids []string, cur []Condition) bool {
	if len(ids) != len(cur) {
		return false
	}
	for i := range cur {
		if ids[i] != cur[i].ID {
			return false
		}
	}
	return true
}
