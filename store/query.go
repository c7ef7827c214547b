package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
)

// GroupKeys returns the keys Usage can group by.
func GroupKeys() []string { return []string{"region", "provider", "model", "team", "job", "node"} }

// Usage is one group's ledger totals in one currency.
type Usage struct {
	Group         string
	Currency      string
	LeasedGPUms   int64
	ReportedGPUms int64
	IdleGPUms     int64
	DarkGPUms     int64
	Spend         cost.Exact
	Idle          cost.Exact
	Dark          cost.Exact
	// BlindGPUms and Blind are the part of the dark GPU-time and spend on
	// GPUs no sensor sees: paid but blind.
	BlindGPUms int64
	Blind      cost.Exact
}

// UsedGPUms is GPU-time reported and not idle within the lease.
func (u Usage) UsedGPUms() int64 { return u.ReportedGPUms - u.IdleGPUms }

// Add adds o's figures to u (same currency).
func (u *Usage) Add(o Usage) {
	u.LeasedGPUms += o.LeasedGPUms
	u.ReportedGPUms += o.ReportedGPUms
	u.IdleGPUms += o.IdleGPUms
	u.DarkGPUms += o.DarkGPUms
	u.Spend = u.Spend.Add(o.Spend)
	u.Idle = u.Idle.Add(o.Idle)
	u.Dark = u.Dark.Add(o.Dark)
	u.BlindGPUms += o.BlindGPUms
	u.Blind = u.Blind.Add(o.Blind)
}

// Now returns the store's clock: the time leases accrue against (simulated
// in the demo).
func (s *Store) Now() time.Time { return s.opts.Clock() }

// HourFloor returns t rounded down to its UTC hour: the ledger's grain.
func HourFloor(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// Usage sums the ledger rows of the hours that meet [from, to), grouped
// by by (region, provider, model, team, job, node) and currency, sorted by
// group then currency. The sums are exact. Up to the last commit: each
// node's lease accrual from where its ledger ends to the last commit (or
// to, if earlier) counts as the node's unattributed spend (see live.go).
func (s *Store) Usage(ctx context.Context, by string, from, to time.Time) ([]Usage, error) {
	group, ok := map[string]func(l *NodeLine, p NodePlace) string{
		"region":   func(_ *NodeLine, p NodePlace) string { return p.Region },
		"provider": func(_ *NodeLine, p NodePlace) string { return p.Provider },
		"model":    func(_ *NodeLine, p NodePlace) string { return p.Model },
		"team":     func(l *NodeLine, _ NodePlace) string { return l.Team },
		"job":      func(l *NodeLine, _ NodePlace) string { return l.Job },
		"node":     func(l *NodeLine, _ NodePlace) string { return l.Node },
	}[by]
	if !ok {
		return nil, fmt.Errorf("usage: unknown group %q", by)
	}
	fm, tm := from.UnixMilli(), to.UnixMilli()
	lines, err := nodeRows(ctx, s.db, fm, tm)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	nodes, err := readLedgerNodes(ctx, s.db)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	committed, err := s.committed(ctx)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	tails := make(map[string]tailNode, len(nodes))
	for id, ns := range nodes {
		tails[id] = ns.tail(s.opts.MaxBackfill)
	}
	lines = tailLines(lines, newTailSet(tails, nil), fm, min(tm, committed))
	type key struct{ group, currency string }
	sums := map[key]*Usage{}
	for i := range lines {
		l := &lines[i]
		k := key{group(l, nodes[l.Node].placeOrZero()), l.Currency}
		u := sums[k]
		if u == nil {
			u = &Usage{Group: k.group, Currency: k.currency}
			sums[k] = u
		}
		u.Add(l.Usage)
	}
	out := make([]Usage, 0, len(sums))
	for _, u := range sums {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b Usage) int {
		return cmp.Or(strings.Compare(a.Group, b.Group), strings.Compare(a.Currency, b.Currency))
	})
	return out, nil
}

// Display is the display currency and exchange rates (decimal strings: the
// value of one unit of each currency in the display currency) the
// aggregator last ran with; reports use them by default.
type Display struct {
	Currency string            `json:"currency"`
	Rates    map[string]string `json:"rates"`
	// TimeZone is the IANA zone of "today" and "this month" ("" = UTC).
	TimeZone string `json:"timezone,omitempty"`
}

// SetDisplay records the display currency and rates in the database.
func (s *Store) SetDisplay(ctx context.Context, d Display) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("set display currency: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('display', ?)`, string(b)); err != nil {
		return fmt.Errorf("set display currency: %w", err)
	}
	return nil
}

// Display returns what SetDisplay recorded; ok is false when nothing was.
func (s *Store) Display(ctx context.Context) (d Display, ok bool, err error) {
	var v string
	err = s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'display'`).Scan(&v)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Display{}, false, nil
		}
		return Display{}, false, fmt.Errorf("read display currency: %w", err)
	}
	if err := json.Unmarshal([]byte(v), &d); err != nil {
		return Display{}, false, fmt.Errorf("read display currency: %w", err)
	}
	return d, true, nil
}

// Alerts returns the alerts that overlap [from, to): started before to and
// open or ended at or after from, oldest first.
func (s *Store) Alerts(ctx context.Context, from, to time.Time) ([]fleet.Alert, error) {
	return queryAll(ctx, s.db, "read alerts", `SELECT id, start_ms, end_ms, kind, severity, node_id, region, device, job, message
		FROM alerts WHERE start_ms < ? AND (end_ms = 0 OR end_ms >= ?) ORDER BY start_ms, id`, []any{to.UnixMilli(), from.UnixMilli()},
		func(rows *sql.Rows, a *fleet.Alert) error {
			var start, end int64
			var kind, sev string
			if err := rows.Scan(&a.ID, &start, &end, &kind, &sev, &a.Node, &a.Region, &a.Device, &a.Job, &a.Message); err != nil {
				return err
			}
			a.Kind, a.Severity = fleet.EventKind(kind), fleet.Severity(sev)
			a.Start = time.UnixMilli(start).UTC()
			if end > 0 {
				a.End = time.UnixMilli(end).UTC()
			}
			return nil
		})
}
