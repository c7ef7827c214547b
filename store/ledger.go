package store

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
)

// leaseVersion is one row of the leases table.
type leaseVersion struct {
	version   int
	effective int64
	leaseID   string
	gpus      int
	price     int64
	currency  string
	billing   fleet.Billing
	reserved  bool
	start     int64
	end       int64
	blind     int // GPUs billed that no sensor sees
}

// ledgerNode is what Commit keeps in memory about one node: its first
// sight, lease versions and how far its ledger is accrued.
type ledgerNode struct {
	id       string
	firstMs  int64
	team     string
	place    NodePlace // region, provider, model (team as above)
	versions []leaseVersion
	ledgerTo int64   // ledger accrued up to (Unix ms)
	ledgerAt int64   // clock (Unix ms) when the current hour was last accrued
	dirty    []int64 // hours (Unix ms) with minute rollups newer than their ledger rows
}

func (ns *ledgerNode) touch(minute int64) {
	h := floorTo(minute, hourMs)
	if !slices.Contains(ns.dirty, h) {
		ns.dirty = append(ns.dirty, h)
	}
}

// accruedAt is when the node's current hour was last accrued. A node not
// accrued since the store opened counts as accrued at a moment of its own in
// the LedgerEvery before it was first seen (or before the store opened), so a
// fleet that appears at once (a first start, the aggregator's restart) is
// accrued a share per fold over the next LedgerEvery instead of all in one
// Commit, and stays spread after. Until then its spend is live from LiveLedger's
// tail, which runs from where its ledger ends.
func (s *Store) accruedAt(ns *ledgerNode, every int64) int64 {
	if ns.ledgerAt > 0 {
		return ns.ledgerAt
	}
	h := fnv.New64a()
	h.Write([]byte(ns.id))
	return max(ns.firstMs, s.openedMs) - int64(h.Sum64()%uint64(every))
}

// origin is when the node's lease starts accruing: the lease's start, but
// at most MaxBackfill before the node was first seen; the first sight when
// the start is unknown.
func (ns *ledgerNode) origin(backfill time.Duration) int64 {
	if ns.firstMs == 0 {
		return 0
	}
	o := ns.firstMs
	if len(ns.versions) > 0 {
		if st := ns.versions[0].start; st > 0 && st < o {
			o = max(st, ns.firstMs-backfill.Milliseconds())
		}
	}
	return o
}

func (ns *ledgerNode) costVersions() []cost.Version {
	vs := make([]cost.Version, len(ns.versions))
	for i, v := range ns.versions {
		cv := cost.Version{
			Price:   fleet.Money{Micros: v.price, Currency: v.currency},
			GPUs:    v.gpus,
			Billing: v.billing,
			Blind:   v.blind,
		}
		if i > 0 {
			cv.From = time.UnixMilli(v.effective)
		}
		if v.start > 0 {
			cv.Start = time.UnixMilli(v.start)
		}
		if v.end > 0 {
			cv.End = time.UnixMilli(v.end)
		}
		vs[i] = cv
	}
	return vs
}

// load reads the durable node states at Open.
func (s *Store) load(ctx context.Context) error {
	nodes, err := readLedgerNodes(ctx, s.db)
	if err != nil {
		return err
	}
	s.nodes = nodes
	s.publish(nodes)
	return nil
}

// readLedgerNodes reads every node's durable ledger state: first sight,
// place, team, how far its ledger is accrued and its lease versions.
func readLedgerNodes(ctx context.Context, db *sql.DB) (map[string]*ledgerNode, error) {
	nodes := map[string]*ledgerNode{}
	rows, err := db.QueryContext(ctx, `SELECT id, first_seen_ms, team, ledger_to_ms, region, provider, model, jurisdiction FROM nodes`)
	if err != nil {
		return nil, fmt.Errorf("load nodes: %w", err)
	}
	for rows.Next() {
		ns := &ledgerNode{}
		if err := rows.Scan(&ns.id, &ns.firstMs, &ns.team, &ns.ledgerTo, &ns.place.Region, &ns.place.Provider, &ns.place.Model, &ns.place.Jurisdiction); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load nodes: %w", err)
		}
		ns.place.Team = ns.team
		nodes[ns.id] = ns
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load nodes: %w", err)
	}
	rows, err = db.QueryContext(ctx, `SELECT node_id, version, effective_ms, lease_id, gpus, price_micros,
		currency, billing, reserved, start_ms, end_ms, blind FROM leases ORDER BY node_id, version`)
	if err != nil {
		return nil, fmt.Errorf("load leases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, billing string
		var v leaseVersion
		if err := rows.Scan(&id, &v.version, &v.effective, &v.leaseID, &v.gpus, &v.price, &v.currency,
			&billing, &v.reserved, &v.start, &v.end, &v.blind); err != nil {
			return nil, fmt.Errorf("load leases: %w", err)
		}
		v.billing = fleet.Billing(billing)
		if ns := nodes[id]; ns != nil {
			ns.versions = append(ns.versions, v)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load leases: %w", err)
	}
	return nodes, nil
}

// accrue recomputes the ledger rows that are due: every closed hour not yet
// accrued (a dark node's too), closed hours that received late rollups, and
// the current hour every LedgerEvery (always when force).
func (w *writer) accrue(force bool) error {
	s := w.s
	now := w.now
	curHour := floorTo(now, hourMs)
	every := s.opts.LedgerEvery.Milliseconds()
	ids := make([]string, 0, len(s.nodes)+len(w.staged))
	for id := range s.nodes {
		ids = append(ids, id)
	}
	for id := range w.staged {
		if _, ok := s.nodes[id]; !ok {
			ids = append(ids, id)
		}
	}
	start, done := time.Now(), 0 // wall time: CommitSlice bounds real work
	for _, id := range ids {
		ns := s.nodes[id]
		if st, ok := w.staged[id]; ok {
			ns = st
		}
		origin := ns.origin(s.opts.MaxBackfill)
		if origin == 0 || len(ns.versions) == 0 || w.skip[id] {
			continue
		}
		var due []int64
		from := floorTo(max(ns.ledgerTo, origin), hourMs)
		if ns.ledgerTo >= now {
			from = curHour + hourMs
		}
		for h := from; h < now; h += hourMs {
			if h+hourMs <= now || force || now-s.accruedAt(ns, every) >= every {
				due = append(due, h)
			}
		}
		for _, h := range ns.dirty {
			// Closed hours with late minutes; when forced, the current hour
			// too, even if already accrued up to now: minutes folded since
			// then belong in it.
			if (h+hourMs <= now || force) && h < from && h >= floorTo(origin, hourMs) {
				due = append(due, h)
			}
		}
		if len(due) == 0 {
			continue
		}
		if done > 0 && time.Since(start) >= s.opts.CommitSlice {
			w.ledgerLeft = true // the next Commit (or Flush's next slice) goes on; at least one node a Commit
			break
		}
		done++
		w.accruedIDs = append(w.accruedIDs, id)
		ns = w.state(id)
		slices.Sort(due)
		due = slices.Compact(due)
		err := w.isolate(id, func() error {
			for _, h := range due {
				upto := min(h+hourMs, now)
				if err := w.accrueHour(ns, h, upto, origin); err != nil {
					return fmt.Errorf("ledger of %s at %s: %w", id, time.UnixMilli(h).UTC().Format(time.RFC3339), err)
				}
				ns.ledgerTo = max(ns.ledgerTo, upto)
				w.accrued = true
				w.accruedOld = w.accruedOld || h < floorTo(now, dayMs)
				if h == curHour {
					ns.ledgerAt = now
				}
				ns.dirty = slices.DeleteFunc(ns.dirty, func(d int64) bool { return d == h })
			}
			if err := w.exec(`UPDATE nodes SET ledger_to_ms = ? WHERE id = ?`, ns.ledgerTo, id); err != nil {
				return fmt.Errorf("ledger of %s: %w", id, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// minuteRow is what the ledger needs of one GPU-minute.
type minuteRow struct {
	idx       int
	minute    int64
	reported  int64
	idle      int64
	job, team string
}

var minuteQuery = `SELECT idx, minute_ms, reported_ms, idle_ms, job, team FROM rollup_minute
	WHERE node_id = ?1 AND minute_ms IN (` + placeholders(2, 60) + `)`

// placeholders returns "?first, ?first+1, …" n times.
func placeholders(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "?%d", first+i)
	}
	return b.String()
}

func (w *writer) minutes(id string, hour int64) ([]minuteRow, error) {
	args := make([]any, 61)
	args[0] = id
	for i := range 60 {
		args[i+1] = hour + int64(i)*minuteMs
	}
	st, err := w.stmt(minuteQuery)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(w.ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []minuteRow
	for rows.Next() {
		var m minuteRow
		if err := rows.Scan(&m.idx, &m.minute, &m.reported, &m.idle, &m.job, &m.team); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func (w *writer) accrueHour(ns *ledgerNode, hour, upto, origin int64) (err error) {
	mins, err := w.minutes(ns.id, hour)
	if err != nil {
		return err
	}
	lines := cost.Ledger(ns.costVersions(), time.UnixMilli(origin), time.UnixMilli(hour), time.UnixMilli(upto), mins2(mins), ns.team)
	if err := w.exec(`DELETE FROM ledger WHERE hour_ms = ? AND node_id = ?`, hour, ns.id); err != nil {
		return err
	}
	if upto == hour+hourMs {
		if err := w.rollHour(ns.id, hour); err != nil {
			return err
		}
	}
	defer func() {
		if err == nil {
			err = w.sumDay(ns.id, floorTo(hour, dayMs))
		}
	}()
	for _, l := range lines {
		if err := w.exec(`INSERT INTO ledger (node_id, hour_ms, currency, job, team, upto_ms, leased_gpu_ms,
			reported_gpu_ms, idle_gpu_ms, dark_gpu_ms, spend_micros, spend_rem, idle_micros, idle_rem,
			dark_micros, dark_rem, blind_gpu_ms, blind_micros, blind_rem) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ns.id, hour, l.Currency, l.Job, l.Team, upto, l.LeasedGPUms, l.ReportedGPUms, l.IdleGPUms,
			l.DarkGPUms, l.Spend.Micros, l.Spend.Rem, l.Idle.Micros, l.Idle.Rem, l.Dark.Micros, l.Dark.Rem,
			l.BlindGPUms, l.Blind.Micros, l.Blind.Rem); err != nil {
			return err
		}
	}
	return nil
}

func mins2(m []minuteRow) []cost.GPUMinute {
	out := make([]cost.GPUMinute, len(m))
	for i, r := range m {
		out[i] = cost.GPUMinute{Device: r.idx, Minute: time.UnixMilli(r.minute), ReportedMs: r.reported, IdleMs: r.idle, Job: r.job, Team: r.team}
	}
	return out
}

var hourQuery = `INSERT OR REPLACE INTO rollup_hour (node_id, idx, hour_ms, samples, util_n, util_sum, util_max,
		mem_n, mem_sum, power_n, power_sum, energy_j, temp_max, reported_ms, idle_ms)
	SELECT node_id, idx, ?62, SUM(samples), SUM(util_n), SUM(util_sum), MAX(util_max), SUM(mem_n), SUM(mem_sum),
		SUM(power_n), SUM(power_sum), SUM(energy_j), MAX(temp_max), SUM(reported_ms), SUM(idle_ms)
	FROM rollup_minute WHERE node_id = ?1 AND minute_ms IN (` + placeholders(2, 60) + `) GROUP BY idx`

// rollHour (re)writes a closed hour's hourly rollups from its minutes.
func (w *writer) rollHour(id string, hour int64) error {
	args := make([]any, 62)
	args[0] = id
	for i := range 60 {
		args[i+1] = hour + int64(i)*minuteMs
	}
	args[61] = hour
	if err := w.exec(hourQuery, args...); err != nil {
		return fmt.Errorf("hourly rollup: %w", err)
	}
	return nil
}

// prune deletes what is older than the retention, at most every ten minutes.
func (w *writer) prune() error {
	s := w.s
	now := s.opts.Clock()
	if now.Sub(s.lastPrune) < 10*time.Minute {
		return nil
	}
	minCut := now.Add(-s.opts.MinuteRetention).UnixMilli()
	hourCut := now.Add(-s.opts.HourRetention).UnixMilli()
	for _, q := range []struct {
		sql string
		cut int64
	}{
		{`DELETE FROM rollup_minute WHERE minute_ms < ?`, minCut},
		{`DELETE FROM rollup_hour WHERE hour_ms < ?`, hourCut},
		{`DELETE FROM ledger WHERE hour_ms < ?`, hourCut},
		{`DELETE FROM ledger_day WHERE day_ms < ?`, floorTo(hourCut, dayMs)},
		{`DELETE FROM events WHERE time_ms < ?`, hourCut},
		{`DELETE FROM alerts WHERE end_ms > 0 AND end_ms < ?`, hourCut},
	} {
		if err := w.exec(q.sql, q.cut); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
	}
	w.pruned = true
	return nil
}

const dayMs = 24 * hourMs

var dayQuery = `INSERT INTO ledger_day (day_ms, node_id, currency, job, team, upto_ms, leased_gpu_ms,
	reported_gpu_ms, idle_gpu_ms, dark_gpu_ms, spend_micros, spend_rem, idle_micros, idle_rem, dark_micros, dark_rem,
	blind_gpu_ms, blind_micros, blind_rem) SELECT ?1, node_id, currency, job, team, MAX(upto_ms),
	SUM(leased_gpu_ms), SUM(reported_gpu_ms), SUM(idle_gpu_ms), SUM(dark_gpu_ms), SUM(spend_micros), SUM(spend_rem),
	SUM(idle_micros), SUM(idle_rem), SUM(dark_micros), SUM(dark_rem), SUM(blind_gpu_ms), SUM(blind_micros), SUM(blind_rem)
	FROM ledger WHERE node_id = ?2 AND hour_ms IN (` + placeholders(3, 24) + `) GROUP BY currency, job, team`

// sumDay rewrites a node's day in ledger_day from its hours.
func (w *writer) sumDay(id string, day int64) error {
	if err := w.exec(`DELETE FROM ledger_day WHERE day_ms = ? AND node_id = ?`, day, id); err != nil {
		return fmt.Errorf("daily ledger: %w", err)
	}
	args := make([]any, 26)
	args[0], args[1] = day, id
	for i := range 24 {
		args[i+2] = day + int64(i)*hourMs
	}
	if err := w.exec(dayQuery, args...); err != nil {
		return fmt.Errorf("daily ledger: %w", err)
	}
	return nil
}
