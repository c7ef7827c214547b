// Package store keeps fleettop's history in an embedded SQLite database
// (modernc.org/sqlite, WAL): nodes, devices, lease versions, per-GPU minute
// and hour rollups, events, alerts and the cost ledger.
//
// The aggregator hands every applied sample to Record, which only folds it
// into in-memory minute buckets, and calls Commit every few seconds with
// the nodes' sequence numbers; Commit writes the buckets and the sequences in
// one transaction (synchronous=FULL), so whatever the aggregator acked after
// Commit survives a kill -9 or a power cut.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/opt"
)

// Defaults for Options.
const (
	DefaultIdleThreshold   = 0.05
	DefaultMinuteRetention = 30 * 24 * time.Hour
	DefaultHourRetention   = 2 * 365 * 24 * time.Hour
	DefaultInterval        = time.Second
	DefaultLedgerEvery     = 5 * time.Minute
	DefaultCommitSlice     = 500 * time.Millisecond
)

// FileName is the database's name inside a data directory.
const FileName = "fleettop.db"

// Options tune a Store. The zero value is usable.
type Options struct {
	// ReadOnly opens the database for queries only (reports); it works
	// while an aggregator writes it (WAL).
	ReadOnly bool
	// IdleThreshold: a GPU-minute whose mean utilisation is under it is
	// idle (default 0.05).
	IdleThreshold float64
	// MinuteRetention and HourRetention bound how long rollups are kept
	// (defaults 30 days and 2 years). The ledger is kept as long as hourly
	// rollups.
	MinuteRetention time.Duration
	HourRetention   time.Duration
	// Interval is the collectors' sampling interval (default 1s): a sample
	// with no predecessor counts for this long; a sample counts for the time
	// since the previous one of its node, up to 5 intervals or 15 s, whichever is longer (longer gaps are dark time).
	Interval time.Duration
	// LedgerEvery is how often the current hour's ledger rows of a node are
	// recomputed (default 5m); closed hours are finalised at the first
	// Commit after they end, and Close accrues up to the clock.
	LedgerEvery time.Duration
	// CommitSlice bounds how long one Commit spends on the work that can
	// wait for the next (default 500ms; Flush and Close do everything):
	// writing new identities, leases and events, and accruing the ledger.
	// What is left is written by the next Commits, which fold and accrue
	// again until nothing is due. When 12,500 nodes connected, the first
	// Commit wrote 12,500 identities and the first fold accrued 12,500
	// node-hours; on a busy machine each ran past the aggregator's 30 s
	// commit deadline, and every retry carried the same work and more. Live
	// spend does not change meanwhile (the ledger's tail covers a node not
	// yet accrued), only its attribution to jobs lags.
	CommitSlice time.Duration
	// FoldEvery is how often Commit folds its journal into the minute
	// rollups and accrues the ledger (default 1m); between folds a Commit
	// appends one compact journal entry. Reports see data up to the last fold.
	FoldEvery time.Duration
	// MaxBackfill is how far before a node was first seen its lease may
	// accrue, back to the lease's start. Zero (the default): from first
	// sight, so a new install does not book a lease's unobserved past as
	// "paid but dark".
	MaxBackfill time.Duration
	// Price supplies a node's lease price when the node's own lease labels
	// carry none (the aggregator's price table). Optional.
	Price func(n *fleet.Node) (fleet.Money, bool)
	// SyncNormal trades the power-cut guarantee for speed (synchronous=NORMAL:
	// a committed transaction survives a process crash, kill -9 included,
	// but may be lost with the machine's power). Tests and benchmarks.
	SyncNormal bool
	// Clock is the time source (default time.Now). fleettop demo passes its
	// simulated clock, so that leases accrue in simulated time.
	Clock  func() time.Time
	Logger *slog.Logger
	// SkipIntegrityCheck skips PRAGMA quick_check at Open (benchmarks).
	SkipIntegrityCheck bool
}

// ErrCorrupt is wrapped by Open's error when the database fails its
// integrity check.
var ErrCorrupt = errors.New("database fails its integrity check")

func (o *Options) defaults() {
	opt.Positive(&o.IdleThreshold, DefaultIdleThreshold)
	opt.Positive(&o.MinuteRetention, DefaultMinuteRetention)
	opt.Positive(&o.HourRetention, DefaultHourRetention)
	opt.Positive(&o.Interval, DefaultInterval)
	opt.Positive(&o.LedgerEvery, DefaultLedgerEvery)
	opt.Positive(&o.CommitSlice, DefaultCommitSlice)
	opt.Positive(&o.FoldEvery, time.Minute)
	if o.MaxBackfill < 0 {
		o.MaxBackfill = 0
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store is the SQLite history. Its methods are safe for concurrent use.
type Store struct {
	db   *sql.DB
	opts Options
	path string

	// foldSQL is the minute fold's upsert of a full chunk, built once: it
	// was built afresh for each of a fold's statements (about 190 at
	// 12,000 GPUs, a fifth of the fold's garbage).
	foldSQL     string
	foldSQLOnce sync.Once

	accMu sync.RWMutex
	accs  map[string]*nodeAcc // node id → in-memory accumulator
	// firstSeen is each node's durable first sight at Open (Unix ms), the
	// booking floor of nodes that connect again.
	firstSeen map[string]int64
	refused   atomic.Uint64

	alertMu sync.Mutex
	alerts  []fleet.Alert // queued by RecordAlert

	commitMu   ctxMutex               // one Commit at a time
	stmts      map[string]*sql.Stmt   // prepared once, used by every Commit
	unprepared map[string]bool        // statements to prepare before the next Commit
	retry      []*nodeBatch           // drained by a Commit that failed; written by the next
	nodes      map[string]*ledgerNode // durable per-node state, owned by Commit
	lastPrune  time.Time
	pend       pending           // committed since the last fold (see journal.go)
	mustFold   bool              // a Commit failed: the next one folds
	ledgerLeft bool              // the last fold left ledger hours due (CommitSlice): the next Commit folds
	lastFold   time.Time         // clock at the last fold
	openedMs   int64             // clock (Unix ms) at Open
	durable    map[string]uint64 // seqs committed since Open
	journalBuf []byte            // the last Commit's journal entry
	seqBuf     map[string]uint64 // the last Commit's sequences (drain raises them)
	journalEnc journalEnc        // writes it
	drains     uint64            // Commits that drained the accumulators

	isolatedRows atomic.Uint64 // see IsolatedRows

	// A read-only pool for History, opened on first use.
	readerOnce sync.Once
	reader     *sql.DB
	readerErr  error

	// What LiveLedger reads without the commit lock (see live.go).
	tails       atomic.Pointer[tailSet] // every node's ledger end and lease, as of the last commit
	ledgerSeq   atomic.Uint64           // seqlock: odd while a commit that wrote ledger rows publishes them
	oldSeq      atomic.Uint64           // the same, for commits that wrote rows of hours before the current UTC day
	committedMs atomic.Int64            // the clock at the last commit
	liveMu      sync.Mutex              // guards liveCache
	liveCache   map[[2]int64]liveRows   // ledger rows by span (to 0: up to now)
}

// Open opens (creating if needed) the database at path and migrates it to
// the current schema. A directory path means path/fleettop.db.
func Open(path string, o Options) (*Store, error) {
	o.defaults()
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, FileName)
	}
	if !o.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if o.ReadOnly {
		q.Add("mode", "ro")
	} else {
		// FULL: a committed transaction survives a power cut, not only a
		// process crash; the aggregator commits every few seconds.
		if o.SyncNormal {
			q.Add("_pragma", "synchronous(NORMAL)")
		} else {
			q.Add("_pragma", "synchronous(FULL)")
		}
		// Checkpoint every 64 MiB of WAL (4,096 16 KiB pages) instead of 4 MiB: journal pages are
		// rewritten every Commit and freed every fold, so a later checkpoint
		// copies each page once instead of many times.
		q.Add("_pragma", "wal_autocheckpoint(4096)")
		// A 1 MiB page cache (SQLite's default is 2,000 KiB): modernc's
		// allocator gives each cached 16 KiB page (over its 16 KiB slot
		// limit with the page's header) a 64 KiB region, so the default
		// held 10-11 MB of RSS at 1,250 nodes, this about 7. What a Commit
		// and a fold touch is the right edge of rollup_minute's key and the
		// journal's new rows: 100,000 GPUs' commits cost no more CPU
		// (BenchmarkRollups100kGPUs; docs/BENCHMARKS.md, Aggregator memory).
		q.Add("_pragma", "cache_size(-1024)")
		q.Add("_txlock", "immediate")
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if !o.ReadOnly {
		// One writer connection: SQLite serialises writers anyway, and one
		// connection keeps prepared statements and the page cache warm.
		db.SetMaxOpenConns(1)
	}
	s := &Store{db: db, opts: o, path: path, accs: map[string]*nodeAcc{}, nodes: map[string]*ledgerNode{}, stmts: map[string]*sql.Stmt{}, unprepared: map[string]bool{},
		pend: newPending(), durable: map[string]uint64{}}
	ctx := context.Background()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if !o.ReadOnly && !o.SkipIntegrityCheck {
		// A corrupt page would otherwise start normally and then fail every
		// commit of the whole fleet: refuse at once, saying what to do.
		start := time.Now()
		if err := s.quickCheck(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
		o.Logger.Debug("store integrity check", "result", "ok", "took", time.Since(start))
	}
	if !o.ReadOnly {
		// 16 KiB pages (new databases only; set before WAL mode): a Commit's
		// journal entry takes a quarter of the WAL frames, and write calls.
		for _, p := range []string{"PRAGMA page_size = 16384", "PRAGMA journal_mode = WAL"} {
			if _, err := db.ExecContext(ctx, p); err != nil {
				db.Close()
				return nil, fmt.Errorf("open store %s: %w", path, err)
			}
		}
	}
	if o.ReadOnly {
		v, err := s.schemaVersion(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		if v != len(migrations) {
			db.Close()
			return nil, fmt.Errorf("open store %s: its schema is version %d and this fleettop reads version %d: run this fleettop's aggregator on it once to migrate it", path, v, len(migrations))
		}
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.load(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.lastFold = o.Clock()
	s.openedMs = s.lastFold.UnixMilli()
	if err := s.replayJournal(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.firstSeen = make(map[string]int64, len(s.nodes))
	for id, ns := range s.nodes {
		if ns.firstMs > 0 {
			s.firstSeen[id] = ns.firstMs
		}
	}
	return s, nil
}

// DB returns the underlying database for read-only queries by exporters.
func (s *Store) DB() *sql.DB { return s.db }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close is CloseContext without a deadline; it keeps Store an io.Closer.
func (s *Store) Close() error { return s.CloseContext(context.Background()) }

// CloseContext writes what Record accumulated and accrues the ledger up to
// the clock, then closes the database; a read-only store just closes. It
// honours ctx's deadline: a commit still running (or wedged) when ctx ends
// is interrupted and the database closed anyway. What was not committed is
// what the aggregator never acked, so collectors send it again.
func (s *Store) CloseContext(ctx context.Context) error {
	var err error
	if !s.opts.ReadOnly {
		err = s.Flush(ctx)
		if lerr := s.commitMu.lock(ctx); lerr == nil {
			for _, st := range s.stmts {
				st.Close()
			}
			clear(s.stmts)
			s.commitMu.unlock()
		} else if err == nil {
			err = fmt.Errorf("close store: %w", lerr)
		}
	}
	s.readerOnce.Do(func() {}) // a History opening the pool now finishes first; none opens later
	if s.reader != nil {
		err = errors.Join(err, s.reader.Close())
	}
	return errors.Join(err, s.db.Close())
}

// ctxMutex is a mutex whose Lock gives up when a context ends. The zero
// value is unlocked.
type ctxMutex struct {
	once sync.Once
	ch   chan struct{}
}

func (m *ctxMutex) init() { m.once.Do(func() { m.ch = make(chan struct{}, 1) }) }

func (m *ctxMutex) lock(ctx context.Context) error {
	m.init()
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *ctxMutex) Lock() { m.init(); m.ch <- struct{}{} }

func (m *ctxMutex) unlock() { <-m.ch }

func (m *ctxMutex) Unlock() { m.unlock() }

func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	v, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this fleettop (%d)", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate to %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_ms) VALUES (?, ?)`,
			i+1, s.opts.Clock().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to %d: %w", i+1, err)
		}
	}
	return nil
}

// LastSeqs returns the durable last applied sequence of every known node.
func (s *Store) LastSeqs(ctx context.Context) (map[string]uint64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, last_seq FROM nodes`)
	if err != nil {
		return nil, fmt.Errorf("read last seqs: %w", err)
	}
	defer rows.Close()
	m := map[string]uint64{}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, fmt.Errorf("read last seqs: %w", err)
		}
		m[id] = uint64(seq)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read last seqs: %w", err)
	}
	if !s.opts.ReadOnly {
		s.commitMu.Lock()
		for id, seq := range s.durable { // committed to the journal, not yet folded
			m[id] = max(m[id], seq)
		}
		s.commitMu.Unlock()
	}
	return m, nil
}

// quickCheck runs PRAGMA quick_check (the integrity check without the
// index-content comparison: every page read once) and turns anything but
// "ok" into ErrCorrupt.
func (s *Store) quickCheck(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `PRAGMA quick_check(5)`)
	if err != nil {
		return fmt.Errorf("%w (%v): restore %s from a backup, or move it aside to start with an empty history", ErrCorrupt, err, s.path)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return fmt.Errorf("%w (%v): restore %s from a backup, or move it aside to start with an empty history", ErrCorrupt, err, s.path)
		}
		if r != "ok" {
			problems = append(problems, r)
		}
	}
	if err := rows.Err(); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w (%s): restore %s from a backup, or move it aside to start with an empty history", ErrCorrupt, strings.Join(problems, "; "), s.path)
	}
	return nil
}

// IntegrityCheck runs PRAGMA integrity_check and returns its verdict ("ok").
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	var r string
	if err := s.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&r); err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return r, nil
}
