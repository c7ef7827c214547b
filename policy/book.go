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

// Book keeps the alerts: the open ones, grouped by scope (a node, the
// budgets), and the recently closed. It is safe for concurrent use.
type Book struct {
	mu     sync.Mutex
	open   map[string]*fleet.Alert
	scopes map[string][]string // scope → open alert ids
	closed []fleet.Alert       // newest last
	keep   time.Duration
	max    int
}

// NewBook returns a Book that shows closed alerts for keep after they end,
// at most max of them.
func NewBook(keep time.Duration, max int) *Book {
	return &Book{open: make(map[string]*fleet.Alert), scopes: make(map[string][]string), keep: keep, max: max}
}

// Unchanged reports whether the open alerts of scope are exactly the ids of
// cur; callers use it to skip Sync on the hot path.
func (b *Book) Unchanged(scope string, cur []Condition) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sameIDs(b.scopes[scope], cur)
}

// Sync makes cur the open alerts of scope at t: conditions not yet open start,
// open alerts of the scope absent from cur end. It returns the transitions.
func (b *Book) Sync(scope string, cur []Condition, t time.Time) []Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
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
			continue
		}
		a := &fleet.Alert{ID: c.ID, Kind: c.Kind, Severity: c.Severity, Node: c.Node, Region: c.Region,
			Device: c.Device, Job: c.Job, Message: c.Message, Start: t}
		b.open[c.ID] = a
		out = append(out, Transition{Alert: *a, Opened: true})
	}
	for _, id := range prev {
		if slices.Contains(ids, id) {
			continue
		}
		a, ok := b.open[id]
		if !ok {
			continue
		}
		delete(b.open, id)
		a.End = t
		if a.End.Before(a.Start) {
			a.End = a.Start
		}
		b.closed = append(b.closed, *a)
		out = append(out, Transition{Alert: *a})
	}
	if len(ids) == 0 {
		delete(b.scopes, scope)
	} else {
		b.scopes[scope] = ids
	}
	if over := len(b.closed) - b.max; over > 0 {
		b.closed = slices.Delete(b.closed, 0, over)
	}
	return out
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
