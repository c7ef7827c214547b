package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// History sums the rollups of q's node, region or the fleet into steps of
// q.Step from q.From to q.To, grouped by q.By. Steps of an hour or more
// read rollup_hour, except for the last three hours, whose hours may not
// be rolled up yet and come from rollup_minute; shorter steps read
// rollup_minute. A rollup row falls into the step its minute or hour
// starts in. Buckets without rows are left out.
//
// It reads through a connection of its own, so that a long range over a
// large fleet never holds up a Commit.
func (s *Store) History(ctx context.Context, q fleet.HistoryQuery) ([]fleet.HistoryBucket, error) {
	if q.Step <= 0 || !q.To.After(q.From) {
		return nil, fmt.Errorf("history: empty range")
	}
	db, err := s.readerDB()
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	from, to, step := q.From.UnixMilli(), q.To.UnixMilli(), q.Step.Milliseconds()
	if q.Step < time.Hour {
		return historyRows(ctx, db, "rollup_minute", "minute_ms", q, from, to, step)
	}
	split := max(from, floorTo(to, hourMs)-3*hourMs)
	var out []fleet.HistoryBucket
	if split > from {
		b, err := historyRows(ctx, db, "rollup_hour", "hour_ms", q, from, split, step)
		if err != nil {
			return nil, err
		}
		out = b
	}
	b, err := historyRows(ctx, db, "rollup_minute", "minute_ms", q, split, to, step)
	if err != nil {
		return nil, err
	}
	return append(out, b...), nil
}

// historyRows sums one rollup table: per step and device first (a
// device's mean power and memory over the step), then per step and group.
func historyRows(ctx context.Context, db *sql.DB, table, col string, q fleet.HistoryQuery, from, to, step int64) ([]fleet.HistoryBucket, error) {
	where := col + ` >= ?1 AND ` + col + ` < ?2`
	args := []any{from, to, step}
	join := ""
	if q.Node != "" {
		where += ` AND r.node_id = ?4`
		args = append(args, q.Node)
	} else if q.Region != "" {
		where += ` AND n.region = ?4`
		args = append(args, q.Region)
	}
	if q.Region != "" || q.By == "region" {
		join = ` JOIN nodes n ON n.id = r.node_id`
	}
	group := `''`
	switch q.By {
	case "region":
		group = `n.region`
	case "device":
		group = `CAST(r.idx AS TEXT)`
	}
	query := `SELECT g, b, SUM(un), SUM(us), MAX(umax), SUM(pw), COUNT(pw), SUM(mem), COUNT(mem), MAX(tmax), COUNT(tmax), SUM(rep), SUM(idle)
		FROM (SELECT ` + group + ` AS g, ?1 + ((` + col + ` - ?1) / ?3) * ?3 AS b,
			SUM(util_n) AS un, SUM(util_sum) AS us, MAX(util_max) AS umax,
			CASE WHEN SUM(power_n) > 0 THEN SUM(power_sum) / SUM(power_n) END AS pw,
			CASE WHEN SUM(mem_n) > 0 THEN SUM(mem_sum) / SUM(mem_n) END AS mem,
			MAX(temp_max) AS tmax, SUM(reported_ms) AS rep, SUM(idle_ms) AS idle
			FROM ` + table + ` r` + join + ` WHERE ` + where + `
			GROUP BY g, b, r.node_id, r.idx)
		GROUP BY g, b ORDER BY g, b`
	return queryAll(ctx, db, "history", query, args, func(rows *sql.Rows, h *fleet.HistoryBucket) error {
		var pw, mem, tmax, umax sql.NullFloat64
		if err := rows.Scan(&h.Group, &h.Start, &h.UtilN, &h.UtilSum, &umax, &pw, &h.PowerN, &mem, &h.MemN, &tmax, &h.TempN, &h.Reported, &h.Idle); err != nil {
			return err
		}
		h.UtilMax, h.Power, h.MemUsed, h.TempMax = umax.Float64, pw.Float64, mem.Float64, tmax.Float64
		return nil
	})
}

// readerDB opens, once, a read-only pool on the database for queries that
// may take long (WAL lets them read while Commit writes).
func (s *Store) readerDB() (*sql.DB, error) {
	if s.opts.ReadOnly {
		return s.db, nil
	}
	s.readerOnce.Do(func() {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("mode", "ro")
		db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: s.path}).EscapedPath()+"?"+q.Encode())
		if err != nil {
			s.readerErr = err
			return
		}
		db.SetMaxOpenConns(2)
		s.reader = db
	})
	return s.reader, s.readerErr
}
