package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fleettop/fleettop/cost"
)

// The ledger is accrued per hour at folds (the current hour every
// LedgerEvery), so on its own it trails the clock by minutes. Every figure
// read from it (LiveLedger for the live view, Usage for reports) adds the
// tail: what each node's lease accrued from where its ledger ends up to the
// period's end (LiveLedger: the caller's now; Usage: the last commit), as
// the node's unattributed line. The tail is attributed to jobs once the
// ledger catches up; the total never moves.

// NodePlace is where a node is and whose it is, as its collector last said.
type NodePlace struct {
	Region, Provider, Jurisdiction, Model, Team string
}

// NodeLine is one line of a node's ledger summed over a period: one
// currency, one job ("" the node's unattributed remainder) and team.
type NodeLine struct {
	Node, Job, Team string
	Usage           // Group is the node's id
}

// Ledger is the ledger of a period per node.
type Ledger struct {
	Lines  []NodeLine           // sorted by node, currency, job, team
	Places map[string]NodePlace // every node with a line

	tail []NodeLine // room for the tail lines (LiveLedgerInto)
}

// tailNode is what the tail of one node's ledger needs.
type tailNode struct {
	origin   int64 // 0: never seen
	ledgerTo int64 // 0: never accrued
	team     string
	place    NodePlace
	versions []cost.Version
}

func (ns *ledgerNode) tail(backfill time.Duration) tailNode {
	return tailNode{origin: ns.origin(backfill), ledgerTo: ns.ledgerTo, team: ns.team, place: ns.place, versions: ns.costVersions()}
}

// tailSet is every node's tail as of one commit, with the ids sorted once
// (a live read walks them in order twice a second; nodes join rarely).
// Never changed once published.
type tailSet struct {
	ids   []string // sorted
	nodes map[string]tailNode
}

// newTailSet returns the set of nodes; ids, when not nil, are its sorted
// keys already.
func newTailSet(nodes map[string]tailNode, ids []string) *tailSet {
	if ids == nil {
		ids = slices.Sorted(maps.Keys(nodes))
	}
	return &tailSet{ids: ids, nodes: nodes}
}

// publish makes the nodes changed by a commit visible to LiveLedger, with
// the tails published before (Open publishes every node it read).
func (s *Store) publish(changed map[string]*ledgerNode) {
	old := s.tails.Load()
	if len(changed) == 0 && old != nil {
		return
	}
	next := map[string]tailNode{}
	var ids []string // the old ids while no node joins
	if old != nil {
		next, ids = maps.Clone(old.nodes), old.ids
	}
	for id, ns := range changed {
		if _, ok := next[id]; !ok {
			ids = nil
		}
		next[id] = ns.tail(s.opts.MaxBackfill)
	}
	s.tails.Store(newTailSet(next, ids))
}

// tailLines appends, for each node seen with a lease, the lease's accrual
// over [max(ledgerTo, origin, from), to) as its remainder line. The lines
// come in compareLines order: nodes by id, a node's lines by currency.
func tailLines(out []NodeLine, tails *tailSet, from, to int64) []NodeLine {
	for _, id := range tails.ids {
		tn := tails.nodes[id]
		first := len(out)
		if tn.origin == 0 || len(tn.versions) == 0 {
			continue // never seen, or no lease known yet
		}
		lo := max(tn.ledgerTo, tn.origin, from) // never accrued: from its origin
		if lo >= to {
			continue
		}
		var buf [2]cost.Accrual
		for _, a := range cost.AccrueInto(buf[:0], tn.versions, time.UnixMilli(tn.origin), time.UnixMilli(lo), time.UnixMilli(to)) {
			if a.LeasedGPUms == 0 && a.Charge.IsZero() {
				continue
			}
			out = append(out, NodeLine{Node: id, Team: tn.team, Usage: Usage{Group: id, Currency: a.Currency,
				LeasedGPUms: a.LeasedGPUms, DarkGPUms: a.LeasedGPUms, Spend: a.Charge, Dark: a.Basis,
				BlindGPUms: a.BlindGPUms, Blind: a.Blind}})
		}
		if mine := out[first:]; len(mine) > 1 {
			slices.SortStableFunc(mine, func(a, b NodeLine) int { return strings.Compare(a.Currency, b.Currency) })
		}
	}
	return out
}

// mergeSorted merges slices sorted by compareLines (the ledger's rows of
// closed days and of today come sorted from SQL, the tails in key order)
// into dst's room (dst must not share their memory), adding up the lines
// with the same key; the parts are not changed (the rows are cached).
func mergeSorted(dst []NodeLine, parts ...[]NodeLine) []NodeLine {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := slices.Grow(dst[:0], n)
	for {
		next := -1
		for i, p := range parts {
			if len(p) > 0 && (next < 0 || compareLines(&p[0], &parts[next][0]) < 0) {
				next = i
			}
		}
		if next < 0 {
			return out
		}
		l := &parts[next][0]
		parts[next] = parts[next][1:]
		if k := len(out); k > 0 && compareLines(&out[k-1], l) == 0 {
			out[k-1].Usage.Add(l.Usage)
			continue
		}
		out = append(out, *l)
	}
}

// compareLines orders lines by node, currency, job and team, field by field
// (a key built by concatenation allocated two strings a comparison: 52,000
// allocations and 1.3 MB at each live-ledger read of 1,250 nodes).
func compareLines(a, b *NodeLine) int {
	return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.Currency, b.Currency),
		strings.Compare(a.Job, b.Job), strings.Compare(a.Team, b.Team))
}

// ledgerCols sums a period's ledger rows per node, currency, job and team,
// from the hourly ledger around whole UTC days and ledger_day inside them
// (hours a, days [b, c), hours to d; Unix ms).
const ledgerCols = `node_id, currency, job, team, leased_gpu_ms, reported_gpu_ms, idle_gpu_ms, dark_gpu_ms,
		spend_micros, spend_rem, idle_micros, idle_rem, dark_micros, dark_rem, blind_gpu_ms, blind_micros, blind_rem`

func nodeRows(ctx context.Context, db *sql.DB, from, to int64) ([]NodeLine, error) {
	a, d := floorTo(from, hourMs), floorTo(to+hourMs-1, hourMs)
	b, c := floorTo(a+dayMs-1, dayMs), floorTo(d, dayMs)
	if b >= c {
		b, c = d, d
	}
	return queryAll(ctx, db, "read the ledger", `SELECT node_id, currency, job, team,
		SUM(leased_gpu_ms), SUM(reported_gpu_ms), SUM(idle_gpu_ms), SUM(dark_gpu_ms),
		SUM(spend_micros), SUM(spend_rem), SUM(idle_micros), SUM(idle_rem), SUM(dark_micros), SUM(dark_rem),
		SUM(blind_gpu_ms), SUM(blind_micros), SUM(blind_rem)
		FROM (
			SELECT `+ledgerCols+` FROM ledger WHERE hour_ms >= ?1 AND hour_ms < ?2
			UNION ALL SELECT `+ledgerCols+` FROM ledger_day WHERE day_ms >= ?2 AND day_ms < ?3
			UNION ALL SELECT `+ledgerCols+` FROM ledger WHERE hour_ms >= ?3 AND hour_ms < ?4
		) GROUP BY node_id, currency, job, team ORDER BY node_id, currency, job, team`, []any{a, b, c, d}, func(rows *sql.Rows, l *NodeLine) error {
		var sm, sr, im, ir, dm, dr, bm, br int64
		if err := rows.Scan(&l.Node, &l.Currency, &l.Job, &l.Team, &l.LeasedGPUms, &l.ReportedGPUms, &l.IdleGPUms, &l.DarkGPUms,
			&sm, &sr, &im, &ir, &dm, &dr, &l.BlindGPUms, &bm, &br); err != nil {
			return err
		}
		l.Group = l.Node
		l.Spend, l.Idle, l.Dark = cost.MakeExact(sm, sr), cost.MakeExact(im, ir), cost.MakeExact(dm, dr)
		l.Blind = cost.MakeExact(bm, br)
		return nil
	})
}

type liveRows struct {
	gen   uint64
	lines []NodeLine
}

// LiveLedger returns the ledger per node, job and team from from (rounded
// down to its UTC hour) to now, the tail included: what the leases accrued
// since each node's ledger ends, unattributed. Its rows are read once per
// change of the ledger (a fold), the tail is computed from memory, so the
// live view may call it every second. now is the store's clock (Now).
func (s *Store) LiveLedger(ctx context.Context, from, now time.Time) (Ledger, error) {
	var lg Ledger
	if err := s.LiveLedgerInto(ctx, from, now, &lg); err != nil {
		return Ledger{}, err
	}
	return lg, nil
}

// LiveLedgerInto is LiveLedger into lg, reusing the room of its Lines and
// Places: the live view reads two periods every second, a megabyte each at
// 10,000 GPUs. On error lg is left empty.
func (s *Store) LiveLedgerInto(ctx context.Context, from, now time.Time, lg *Ledger) error {
	lg.Lines, lg.tail = lg.Lines[:0], lg.tail[:0]
	if lg.Places == nil {
		lg.Places = map[string]NodePlace{}
	}
	clear(lg.Places)
	fm := from.UnixMilli()
	key := floorTo(fm, hourMs)
	// Whole UTC days before today change only when late minutes reach them:
	// they are read apart from today's hours, which every fold changes.
	split := max(key, floorTo(now.UnixMilli(), dayMs))
	var closed, recent []NodeLine
	var tails *tailSet
	for {
		old := s.oldSeq.Load()
		closed = nil
		if key < split {
			var err error
			if closed, _, err = s.liveRows(ctx, key, split, &s.oldSeq); err != nil {
				return err
			}
		}
		var err error
		if recent, tails, err = s.liveRows(ctx, split, now.UnixMilli()+hourMs, &s.ledgerSeq); err != nil {
			return err
		}
		if s.oldSeq.Load() == old {
			break
		}
	}
	if tails == nil {
		tails = newTailSet(nil, nil) // nothing committed yet
	}
	lg.tail = tailLines(lg.tail, tails, fm, now.UnixMilli())
	lg.Lines = mergeSorted(lg.Lines, closed, recent, lg.tail)
	for _, l := range lg.Lines {
		if _, ok := lg.Places[l.Node]; !ok {
			lg.Places[l.Node] = tails.nodes[l.Node].place
		}
	}
	return nil
}

// liveRows returns the ledger rows from key to to and the tails that go
// with them: the tails start where those rows end. The rows are cached
// until a commit writes ledger rows in their span (seq: ledgerSeq for any,
// oldSeq for hours before the current UTC day), and read on the read-only
// pool, so a slow read never holds up Commit. Both are seqlocks, odd from
// just before such a commit's transaction commits until its tails are
// published: a read that raced one reads again.
func (s *Store) liveRows(ctx context.Context, key, to int64, seqp *atomic.Uint64) ([]NodeLine, *tailSet, error) {
	db, err := s.readerDB()
	if err != nil {
		return nil, nil, fmt.Errorf("read the ledger: %w", err)
	}
	ck := [2]int64{key, to}
	if seqp == &s.ledgerSeq {
		ck[1] = 0 // up to now, whatever now is
	}
	for try := 0; ; try++ {
		seq := seqp.Load()
		tp := s.tails.Load()
		s.liveMu.Lock()
		c, ok := s.liveCache[ck]
		s.liveMu.Unlock()
		if seq%2 == 0 && ok && c.gen == seq && seqp.Load() == seq {
			return c.lines, tp, nil
		}
		if try == 3 {
			// Commits keep racing the read: read with none in between.
			if err := s.commitMu.lock(ctx); err != nil {
				return nil, nil, fmt.Errorf("read the ledger: %w", err)
			}
			seq, tp = seqp.Load(), s.tails.Load()
			lines, err := nodeRows(ctx, db, key, to)
			s.commitMu.unlock()
			if err != nil {
				return nil, nil, err
			}
			s.cache(ck, liveRows{gen: seq, lines: lines})
			return lines, tp, nil
		}
		if seq%2 == 1 {
			runtime.Gosched() // a commit is publishing its rows
			continue
		}
		lines, err := nodeRows(ctx, db, key, to)
		if err != nil {
			return nil, nil, err
		}
		if seqp.Load() != seq {
			continue // a commit wrote ledger rows meanwhile
		}
		s.cache(ck, liveRows{gen: seq, lines: lines})
		return lines, tp, nil
	}
}

func (s *Store) cache(key [2]int64, r liveRows) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if s.liveCache == nil || len(s.liveCache) > 8 {
		s.liveCache = map[[2]int64]liveRows{}
	}
	s.liveCache[key] = r
}

// committed returns the clock at the last commit as the database records
// it; zero when none is recorded.
func (s *Store) committed(ctx context.Context) (int64, error) {
	return s.metaMs(ctx, "committed_ms")
}

// metaMs reads a millisecond count kept in meta; zero when there is none.
func (s *Store) metaMs(ctx context.Context, key string) (int64, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err == nil {
		var ms int64
		if ms, err = strconv.ParseInt(v, 10, 64); err == nil {
			return ms, nil
		}
	}
	return 0, fmt.Errorf("read the commit time (%s): %w", key, err)
}

// ClockAt returns the aggregator's clock at wall time wall, as its last
// commit recorded the two side by side: wall itself where they agree (a
// production aggregator runs on the wall clock) or nothing is recorded, and
// the simulated time of a demo, which replays the past hours behind the
// wall clock. Reports take "now", and so "today", from it.
func (s *Store) ClockAt(ctx context.Context, wall time.Time) (time.Time, error) {
	clock, err := s.committed(ctx)
	if err != nil || clock == 0 {
		return wall, err
	}
	at, err := s.metaMs(ctx, "committed_wall_ms")
	if err != nil || at == 0 { // none: written before the wall clock was recorded
		return wall, err
	}
	return wall.Add(time.Duration(clock-at) * time.Millisecond), nil
}

func (ns *ledgerNode) placeOrZero() NodePlace {
	if ns == nil {
		return NodePlace{}
	}
	return ns.place
}
