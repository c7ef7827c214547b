package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
)

// Group-by keys for Usage.
var groupColumns = map[string]string{
	"region":   "n.region",
	"provider": "n.provider",
	"model":    "n.model",
	"team":     "l.team",
	"job":      "l.job",
	"node":     "l.node_id",
}

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
}

// Now returns the store's clock: the time leases accrue against (simulated
// in the demo).
func (s *Store) Now() time.Time { return s.opts.Clock() }

// HourFloor returns t rounded down to its UTC hour: the ledger's grain.
func HourFloor(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// Usage sums the ledger rows of the hours that meet [from, to), grouped
// by by (region, provider, model, team, job, node) and currency, sorted by
// group then currency. The sums are exact.
func (s *Store) Usage(ctx context.Context, by string, from, to time.Time) ([]Usage, error) {
	col, ok := groupColumns[by]
	if !ok {
		return nil, fmt.Errorf("usage: unknown group %q", by)
	}
	// whole UTC days from ledger_day, the hours around them from ledger
	a, d := floorTo(from.UnixMilli(), hourMs), floorTo(to.UnixMilli()+hourMs-1, hourMs)
	b, c := floorTo(a+dayMs-1, dayMs), floorTo(d, dayMs)
	if b >= c {
		b, c = d, d
	}
	const cols = `node_id, currency, job, team, leased_gpu_ms, reported_gpu_ms, idle_gpu_ms, dark_gpu_ms,
		spend_micros, spend_rem, idle_micros, idle_rem, dark_micros, dark_rem`
	rows, err := s.db.QueryContext(ctx, `SELECT `+col+` AS g, l.currency,
		SUM(l.leased_gpu_ms), SUM(l.reported_gpu_ms), SUM(l.idle_gpu_ms), SUM(l.dark_gpu_ms),
		SUM(l.spend_micros), SUM(l.spend_rem), SUM(l.idle_micros), SUM(l.idle_rem), SUM(l.dark_micros), SUM(l.dark_rem)
		FROM (
			SELECT `+cols+` FROM ledger WHERE hour_ms >= ?1 AND hour_ms < ?2
			UNION ALL SELECT `+cols+` FROM ledger_day WHERE day_ms >= ?2 AND day_ms < ?3
			UNION ALL SELECT `+cols+` FROM ledger WHERE hour_ms >= ?3 AND hour_ms < ?4
		) l LEFT JOIN nodes n ON n.id = l.node_id
		GROUP BY g, l.currency ORDER BY g, l.currency`, a, b, c, d)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	defer rows.Close()
	var out []Usage
	for rows.Next() {
		var u Usage
		var g *string
		var sm, sr, im, ir, dm, dr int64
		if err := rows.Scan(&g, &u.Currency, &u.LeasedGPUms, &u.ReportedGPUms, &u.IdleGPUms, &u.DarkGPUms,
			&sm, &sr, &im, &ir, &dm, &dr); err != nil {
			return nil, fmt.Errorf("usage: %w", err)
		}
		if g != nil {
			u.Group = *g
		}
		u.Spend, u.Idle, u.Dark = cost.MakeExact(sm, sr), cost.MakeExact(im, ir), cost.MakeExact(dm, dr)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
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
	rows, err := s.db.QueryContext(ctx, `SELECT id, start_ms, end_ms, kind, severity, node_id, region, device, job, message
		FROM alerts WHERE start_ms < ? AND (end_ms = 0 OR end_ms >= ?) ORDER BY start_ms, id`, to.UnixMilli(), from.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	defer rows.Close()
	var out []fleet.Alert
	for rows.Next() {
		var a fleet.Alert
		var start, end int64
		var kind, sev string
		if err := rows.Scan(&a.ID, &start, &end, &kind, &sev, &a.Node, &a.Region, &a.Device, &a.Job, &a.Message); err != nil {
			return nil, fmt.Errorf("read alerts: %w", err)
		}
		a.Kind, a.Severity = fleet.EventKind(kind), fleet.Severity(sev)
		a.Start = time.UnixMilli(start).UTC()
		if end > 0 {
			a.End = time.UnixMilli(end).UTC()
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
