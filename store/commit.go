package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// nodeBatch is what Commit drained from one node's accumulator.
type nodeBatch struct {
	id      string
	ident   *ident // nil: unchanged
	identAt int64
	firstMs int64
	lastMs  int64
	events  []fleet.Event
	alerts  []fleet.Alert
}

// drain takes everything Record accumulated since the last drain: sample
// deltas go straight into the pending set and, encoded, into jbuf's storage
// (the journal entry, one record per node that changed, its sequence
// included; empty if none did); identities and events come back as batches.
// It copies no bucket.
func (s *Store) drain(seqs map[string]uint64, jbuf []byte) ([]*nodeBatch, []byte) {
	je := &s.journalEnc
	je.reset(jbuf)
	s.accMu.RLock()
	accs := make([]*nodeAcc, 0, len(s.accs))
	for _, a := range s.accs {
		accs = append(accs, a)
	}
	s.accMu.RUnlock()
	var metas []*nodeBatch
	s.drains++
	for _, a := range accs {
		if a.pend == nil {
			a.pend = s.pend.node(a.id)
		}
		pn := a.pend
		a.mu.Lock()
		if a.identDirty || len(a.events) > 0 {
			nb := &nodeBatch{id: a.id, firstMs: a.firstMs, lastMs: a.lastMs, events: a.events}
			if a.identDirty {
				id := a.ident
				nb.ident = &id
				nb.identAt = a.identAt
				a.identDirty = false
			}
			a.events = nil
			metas = append(metas, nb)
		}
		n := len(a.old)
		for i := range a.cur {
			if a.cur[i].samples > 0 {
				n++
			}
		}
		if n == 0 {
			a.mu.Unlock()
			continue
		}
		// Persist the highest sequence this commit writes, not only the one
		// the caller read before calling: records applied in between are in
		// this transaction too, and must not be applied again after a crash.
		seq := max(seqs[a.id], a.maxSeq)
		seqs[a.id] = seq
		a.drained = s.drains
		je.node(a.id, seq, a.firstMs, a.lastMs, n)
		pn.addTimes(a.firstMs, a.lastMs)
		if len(a.old) > 0 {
			for k, b := range a.old {
				je.bucket(b)
				pn.addBucket(b)
				delete(a.old, k)
			}
		}
		for i := range a.cur {
			if b := &a.cur[i]; b.samples > 0 {
				je.bucket(b)
				pn.addBucket(b)
				b.reset(b.minute)
			}
		}
		a.mu.Unlock()
	}
	for id, seq := range seqs {
		s.accMu.RLock()
		a := s.accs[id]
		s.accMu.RUnlock()
		if a == nil || a.drained != s.drains {
			je.node(id, seq, 0, 0, 0) // no times, no buckets
		}
	}
	return metas, je.buf
}

// Commit makes everything recorded so far durable together with seqs (node
// id → highest applied sequence) in one transaction, and keeps the cost
// ledger accrued. If it fails, what it drained is written by the next
// Commit.
func (s *Store) Commit(ctx context.Context, seqs map[string]uint64) error {
	return s.commit(ctx, seqs, false, nil)
}

// Flush commits what Record accumulated and accrues every node's ledger up to
// the clock (Commit does that for the current hour only every LedgerEvery).
// It does so in transactions of CommitSlice each, so that what it did is
// kept if ctx ends first: at 12,500 nodes one transaction of everything ran
// past the aggregator's 30 s at shutdown, and nothing of it was kept.
func (s *Store) Flush(ctx context.Context) error {
	done := map[string]bool{} // nodes its earlier slices accrued
	for {
		if err := s.commit(ctx, nil, true, done); err != nil {
			return err
		}
		if err := s.commitMu.lock(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		left := s.ledgerLeft || len(s.retry) > 0
		s.commitMu.unlock()
		if !left {
			return nil
		}
	}
}

// commit writes one transaction; force (Flush) folds, accrues every node's
// ledger up to the clock but those in done (which it adds the nodes it
// accrues to), and writes every node's metadata, a CommitSlice at a time.
func (s *Store) commit(ctx context.Context, seqs map[string]uint64, force bool, done map[string]bool) error {
	if s.opts.ReadOnly {
		return fmt.Errorf("commit: store is read-only")
	}
	if err := s.commitMu.lock(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	defer s.commitMu.unlock()
	// drain raises each node's sequence to the highest it has recorded, in a
	// copy: the caller's map stays what it asked for. The copy is kept for
	// the next commit (a map of every node, each second).
	if s.seqBuf == nil {
		s.seqBuf = map[string]uint64{}
	}
	clear(s.seqBuf)
	maps.Copy(s.seqBuf, seqs)
	seqs = s.seqBuf
	metas, jbuf := s.drain(seqs, s.journalBuf[:0])
	s.journalBuf = jbuf
	batches := append(s.retry, metas...)
	s.retry = nil
	if alerts := s.takeAlerts(); len(alerts) > 0 {
		batches = append(batches, &nodeBatch{alerts: alerts})
	}
	// drain put every delta into the pending set at once, whatever becomes
	// of this Commit: the journal entry below or the next fold writes it.
	now := s.opts.Clock()
	fold := force || s.mustFold || s.ledgerLeft || now.Sub(s.lastFold) >= s.opts.FoldEvery
	fail := func(err error) error {
		s.retry = batches // ident, events and alerts are written again
		s.mustFold = true // what this Commit drained is only in memory now
		return fmt.Errorf("commit: %w", err)
	}
	if err := s.prepare(ctx); err != nil {
		return fail(err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	w := &writer{s: s, tx: tx, ctx: ctx, now: now.UnixMilli(), skip: done}
	if err := w.write(batches, seqs, fold, force); err != nil {
		tx.Rollback()
		return fail(err)
	}
	// ledgerSeq is odd while ledger rows this commit wrote are visible and
	// the tails that go with them are not yet published (see LiveLedger).
	seqs2 := w.seqlocks()
	for _, q := range seqs2 {
		q.Add(1)
	}
	if err := tx.Commit(); err != nil {
		for _, q := range seqs2 {
			q.Add(1)
		}
		return fail(err)
	}
	w.done()
	for _, q := range seqs2 {
		q.Add(1)
	}
	s.retry = w.deferred
	if done != nil {
		for _, id := range w.accruedIDs {
			done[id] = true
		}
	}
	if len(w.isolated) > 0 {
		s.isolatedRows.Add(uint64(len(w.isolated)))
		for id, err := range w.isolated {
			s.opts.Logger.Error("store: left out a node's rows that cannot be stored; the other nodes committed", "node", id, "err", err)
		}
	}
	if fold {
		s.pend.reset()
		s.lastFold = now
		s.mustFold = false
		s.ledgerLeft = w.ledgerLeft
	} else {
		for id, seq := range seqs {
			s.pend.addSeq(id, seq)
		}
	}
	for id, seq := range seqs {
		s.durable[id] = seq
	}
	return nil
}

// writer holds one Commit's transaction and prepared statements.
type writer struct {
	s   *Store
	tx  *sql.Tx
	ctx context.Context
	// staged changes to Store.nodes, applied only once the transaction commits
	staged map[string]*ledgerNode
	pruned bool
	local  map[string]*sql.Stmt // statements prepared on this transaction
	// isolated: nodes whose rows could not be stored, left out of this
	// commit so that the others commit and are acked (see isolate).
	isolated   map[string]error
	now        int64           // the clock (Unix ms) when the commit began: what it commits up to
	skip       map[string]bool // Flush: nodes its earlier slices accrued
	accruedIDs []string        // nodes this commit accrued
	accrued    bool            // ledger rows were written
	accruedOld bool            // ledger rows of hours before the current UTC day were written
	ledgerLeft bool            // CommitSlice ran out with ledger hours still due
	deferred   []*nodeBatch    // node metadata left for the next Commit (CommitSlice)
}

// seqlocks returns the seqlocks of the ledger rows this commit writes (see
// Store.liveRows).
func (w *writer) seqlocks() []*atomic.Uint64 {
	var out []*atomic.Uint64
	if w.accrued {
		out = append(out, &w.s.ledgerSeq)
	}
	if w.accruedOld {
		out = append(out, &w.s.oldSeq)
	}
	return out
}

// stmt returns q prepared for this transaction. The store has one
// connection, which the transaction holds: a statement seen for the first
// time is prepared on the transaction and queued, to be prepared on the
// database before the next Commit begins; from then on the transaction
// reuses it without preparing again.
func (w *writer) stmt(q string) (*sql.Stmt, error) {
	if st, ok := w.s.stmts[q]; ok {
		return w.tx.StmtContext(w.ctx, st), nil
	}
	if st, ok := w.local[q]; ok {
		return st, nil
	}
	w.s.unprepared[q] = true
	st, err := w.tx.PrepareContext(w.ctx, q)
	if err != nil {
		return nil, err
	}
	if w.local == nil {
		w.local = map[string]*sql.Stmt{}
	}
	w.local[q] = st
	return st, nil
}

// prepare prepares the statements queued by stmt; called outside any
// transaction.
func (s *Store) prepare(ctx context.Context) error {
	for q := range s.unprepared {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		s.stmts[q] = st
		delete(s.unprepared, q)
	}
	return nil
}

func (w *writer) exec(q string, args ...any) error {
	st, err := w.stmt(q)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(w.ctx, args...)
	return err
}

// state returns a staged copy of node id's durable state, creating it.
func (w *writer) state(id string) *ledgerNode {
	if ns, ok := w.staged[id]; ok {
		return ns
	}
	var ns *ledgerNode
	if cur, ok := w.s.nodes[id]; ok {
		c := *cur
		c.versions = slices.Clone(cur.versions)
		c.dirty = slices.Clone(cur.dirty)
		ns = &c
	} else {
		ns = &ledgerNode{id: id}
	}
	if w.staged == nil {
		w.staged = map[string]*ledgerNode{}
	}
	w.staged[id] = ns
	return ns
}

// upsertMinutes returns the statement that adds rows buckets to their
// minutes' rows; idle_ms is recomputed from the merged mean. Many rows per
// statement: the per-statement overhead dominates one small row.
func upsertMinutes(rows int, thr float64) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO rollup_minute (node_id, idx, minute_ms, samples, util_n, util_sum, util_max,
	mem_n, mem_sum, power_n, power_sum, energy_j, temp_max, reported_ms, idle_ms, job, team) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(`
ON CONFLICT (minute_ms, node_id, idx) DO UPDATE SET
	samples = samples + excluded.samples,
	util_n = util_n + excluded.util_n,
	util_sum = util_sum + excluded.util_sum,
	util_max = CASE WHEN excluded.util_n > 0 AND (util_n = 0 OR excluded.util_max > util_max) THEN excluded.util_max ELSE util_max END,
	mem_n = mem_n + excluded.mem_n,
	mem_sum = mem_sum + excluded.mem_sum,
	power_n = power_n + excluded.power_n,
	power_sum = power_sum + excluded.power_sum,
	energy_j = energy_j + excluded.energy_j,
	temp_max = CASE WHEN excluded.temp_max IS NULL THEN temp_max WHEN temp_max IS NULL THEN excluded.temp_max
		ELSE max(temp_max, excluded.temp_max) END,
	reported_ms = reported_ms + excluded.reported_ms,
	idle_ms = CASE WHEN util_n + excluded.util_n > 0 AND util_sum + excluded.util_sum < `)
	b.WriteString(strconv.FormatFloat(thr, 'g', -1, 64))
	b.WriteString(` * (util_n + excluded.util_n)
		THEN reported_ms + excluded.reported_ms ELSE 0 END,
	job = excluded.job,
	team = excluded.team`)
	return b.String()
}

// foldChunk is how many buckets one upsert statement carries.
const foldChunk = 64

// idleMs is a fresh bucket's idle time: all of it when its mean utilisation
// is under thr.
func (b *bucket) idleMs(thr float64) int64 {
	if b.utilN > 0 && b.utilSum < thr*float64(b.utilN) {
		return b.reportedMs
	}
	return 0
}

func (w *writer) write(batches []*nodeBatch, seqs map[string]uint64, fold, force bool) error {
	// Reports accrue leases from where each node's ledger ends up to here.
	// And the wall clock beside the store's own: a demo's simulated clock
	// runs hours behind, and a report must know which day is "today" there.
	if err := w.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('committed_ms', ?), ('committed_wall_ms', ?)`,
		strconv.FormatInt(w.now, 10), strconv.FormatInt(time.Now().UnixMilli(), 10)); err != nil {
		return fmt.Errorf("write commit time: %w", err)
	}
	start, done := time.Now(), 0 // wall time: CommitSlice bounds real work
	for _, nb := range batches {
		if nb.id == "" {
			if err := w.writeAlerts(nb.alerts); err != nil {
				return err
			}
			continue
		}
		if nb.ident != nil || len(nb.events) > 0 {
			if done > 0 && time.Since(start) >= w.s.opts.CommitSlice {
				w.deferred = append(w.deferred, nb) // in order, before the next Commit's own
				continue
			}
			done++
		}
		if err := w.isolate(nb.id, func() error { return w.writeNodeMeta(nb) }); err != nil {
			return fmt.Errorf("node %s: %w", nb.id, err)
		}
	}
	if !fold {
		if len(w.s.journalBuf) > 0 {
			if err := w.exec(`INSERT INTO journal (data) VALUES (?)`, w.s.journalBuf); err != nil {
				return fmt.Errorf("write journal: %w", err)
			}
		}
		return nil
	}
	if err := w.fold(seqs); err != nil {
		return err
	}
	if err := w.accrue(force); err != nil {
		return err
	}
	return w.prune()
}

// fold writes everything pending into the rollups and the nodes table and
// empties the journal.
func (w *writer) fold(seqs map[string]uint64) error {
	p := &w.s.pend
	thr := w.s.opts.IdleThreshold
	ids := make([]string, 0, len(p.nodes))
	for id := range p.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids) // rows in key order: fewer B-tree pages touched
	args := make([]any, 0, foldChunk*17)
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		var q string
		if rows == foldChunk {
			w.s.foldSQLOnce.Do(func() { w.s.foldSQL = upsertMinutes(foldChunk, thr) })
			q = w.s.foldSQL
		} else {
			q = upsertMinutes(rows, thr)
		}
		err := w.exec(q, args...)
		if err != nil && rowFault(err) && w.ctx.Err() == nil {
			// The failed statement wrote nothing: write the chunk again
			// node by node, leaving out the nodes whose rows fail.
			err = w.foldByNode(args, thr)
		}
		if err != nil {
			return fmt.Errorf("write minute rollups: %w", err)
		}
		args, rows = args[:0], 0
		return nil
	}
	for _, id := range ids {
		pn := p.nodes[id]
		if len(pn.buckets) == 0 {
			continue
		}
		ns := w.state(id)
		for i := range pn.buckets {
			b := &pn.buckets[i]
			var temp any
			if b.tempSet {
				temp = b.tempMax
			}
			args = append(args, id, b.idx, b.minute, b.samples, b.utilN, b.utilSum, b.utilMax,
				b.memN, b.memSum, b.powerN, b.powerSum, b.energy, temp, b.reportedMs, b.idleMs(thr), b.job, b.team)
			if rows++; rows == foldChunk {
				if err := flush(); err != nil {
					return err
				}
			}
			ns.touch(b.minute)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	write := func(id string, pn *pendNode) error {
		return w.exec(`INSERT INTO nodes (id, first_seen_ms, last_seen_ms, last_seq) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (id) DO UPDATE SET
				first_seen_ms = CASE WHEN first_seen_ms = 0 OR (excluded.first_seen_ms > 0 AND excluded.first_seen_ms < first_seen_ms)
					THEN excluded.first_seen_ms ELSE first_seen_ms END,
				last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
				last_seq = CASE WHEN excluded.last_seq > 0 THEN excluded.last_seq ELSE last_seq END`,
			id, pn.firstMs, pn.lastMs, int64(pn.seq))
	}
	for _, id := range ids {
		n := *p.nodes[id]
		if seq, ok := seqs[id]; ok {
			n.seq = seq
		}
		if err := write(id, &n); err != nil {
			return fmt.Errorf("write node %s: %w", id, err)
		}
	}
	for id, seq := range seqs {
		if _, ok := p.nodes[id]; !ok {
			if err := write(id, &pendNode{seq: seq}); err != nil {
				return fmt.Errorf("write node %s: %w", id, err)
			}
		}
	}
	if err := w.exec(`DELETE FROM journal`); err != nil {
		return fmt.Errorf("empty journal: %w", err)
	}
	return nil
}

// foldByNode writes a chunk of minute rows (17 arguments a row, the node id
// first) one node at a time; a node whose rows cannot be stored is left out
// and noted as isolated.
func (w *writer) foldByNode(args []any, thr float64) error {
	const cols = 17
	for i := 0; i < len(args); {
		id := args[i].(string)
		j := i
		for j < len(args) && args[j].(string) == id {
			j += cols
		}
		if err := w.exec(upsertMinutes((j-i)/cols, thr), args[i:j]...); err != nil {
			if !rowFault(err) || w.ctx.Err() != nil {
				return err
			}
			w.noteIsolated(id, err)
		}
		i = j
	}
	return nil
}

// writeNodeMeta writes what is rare (identity, lease, events) at once and
// stages the node's first sight for the ledger.
func (w *writer) writeNodeMeta(nb *nodeBatch) error {
	cur := w.s.nodes[nb.id]
	if st, ok := w.staged[nb.id]; ok {
		cur = st
	}
	newFirst := nb.firstMs > 0 && (cur == nil || cur.firstMs == 0 || nb.firstMs < cur.firstMs)
	if !newFirst && nb.ident == nil && len(nb.events) == 0 {
		return nil // the common case: nothing but samples, which the journal or fold writes
	}
	ns := w.state(nb.id)
	if newFirst {
		ns.firstMs = nb.firstMs
		// Now, not at the next fold: reports accrue the lease from here.
		if err := w.exec(`INSERT INTO nodes (id, first_seen_ms) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET
			first_seen_ms = CASE WHEN first_seen_ms = 0 OR ?2 < first_seen_ms THEN ?2 ELSE first_seen_ms END`,
			nb.id, nb.firstMs); err != nil {
			return fmt.Errorf("write node: %w", err)
		}
	}
	if nb.ident != nil {
		if err := w.writeIdent(ns, nb); err != nil {
			return err
		}
	}
	for _, e := range nb.events {
		if err := w.exec(`INSERT INTO events (node_id, time_ms, kind, severity, device, code, message)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, nb.id, e.Time.UnixMilli(), string(e.Kind), string(e.Severity),
			e.Device, e.Code, e.Message); err != nil {
			return fmt.Errorf("write event: %w", err)
		}
	}
	return nil
}

func (w *writer) writeIdent(ns *ledgerNode, nb *nodeBatch) error {
	n := &nb.ident.node
	labels, err := json.Marshal(n.Labels)
	if err != nil {
		return fmt.Errorf("encode labels: %w", err)
	}
	if n.Labels == nil {
		labels = []byte("{}")
	}
	model := ""
	if len(n.Devices) > 0 {
		model = n.Devices[0].Model
	}
	if err := w.exec(`INSERT INTO nodes (id, hostname, region, site, provider, jurisdiction, labels, team, model, gpus)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
		ON CONFLICT (id) DO UPDATE SET hostname = ?2, region = ?3, site = ?4, provider = ?5,
			jurisdiction = ?6, labels = ?7, team = ?8, model = ?9, gpus = ?10`,
		n.ID, n.Hostname, n.Region, n.Site, n.Provider, n.Jurisdiction, string(labels), n.Labels["team"],
		model, n.BilledGPUs()); err != nil {
		return fmt.Errorf("write node: %w", err)
	}
	ns.team = n.Labels["team"]
	ns.place = NodePlace{Region: n.Region, Provider: n.Provider, Jurisdiction: n.Jurisdiction, Model: model, Team: ns.team}
	if err := w.exec(`DELETE FROM devices WHERE node_id = ?`, n.ID); err != nil {
		return fmt.Errorf("write devices: %w", err)
	}
	for _, d := range n.Devices {
		if err := w.exec(`INSERT OR REPLACE INTO devices (node_id, idx, uuid, vendor, model, memory_total)
			VALUES (?, ?, ?, ?, ?, ?)`, n.ID, d.Index, d.UUID, string(d.Vendor), d.Model, int64(d.MemoryTotal)); err != nil {
			return fmt.Errorf("write devices: %w", err)
		}
	}
	v := leaseVersion{
		leaseID:  n.Lease.ID,
		gpus:     n.BilledGPUs(), // the contract, whatever the sensors see
		price:    nb.ident.price.Micros,
		currency: nb.ident.price.Currency,
		billing:  nb.ident.billing,
		reserved: n.Lease.Reserved,
		blind:    n.BlindGPUs(),
	}
	if !n.Lease.Start.IsZero() {
		v.start = n.Lease.Start.UnixMilli()
	}
	if !n.Lease.End.IsZero() {
		v.end = n.Lease.End.UnixMilli()
	}
	return w.writeLease(ns, v, nb.identAt)
}

// writeLease adds v as the node's newest lease version if it differs from
// the current one. A change seen at t takes effect at the next whole
// minute, so every minute has one price; the first version holds from the
// beginning of time.
func (w *writer) writeLease(ns *ledgerNode, v leaseVersion, seenMs int64) error {
	if k := len(ns.versions); k > 0 {
		last := ns.versions[k-1]
		v.version, v.effective = last.version, last.effective
		if v == last {
			return nil
		}
		v.version = last.version + 1
		v.effective = floorTo(seenMs+minuteMs-1, minuteMs)
		if v.effective <= last.effective { // two changes within a minute: the later wins
			v.version, v.effective = last.version, last.effective
			ns.versions = ns.versions[:k-1]
		}
	} else {
		v.version, v.effective = 1, 0
	}
	ns.versions = append(ns.versions, v)
	if err := w.exec(`INSERT OR REPLACE INTO leases (node_id, version, effective_ms, lease_id, gpus, price_micros,
		currency, billing, reserved, start_ms, end_ms, blind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ns.id, v.version, v.effective, v.leaseID, v.gpus, v.price, v.currency, string(v.billing),
		v.reserved, v.start, v.end, v.blind); err != nil {
		return fmt.Errorf("write lease: %w", err)
	}
	return nil
}

// done publishes the staged node states after a successful commit.
func (w *writer) done() {
	for id, ns := range w.staged {
		w.s.nodes[id] = ns
	}
	w.s.publish(w.staged)
	w.s.committedMs.Store(w.now)
	if w.pruned {
		w.s.lastPrune = w.s.opts.Clock()
	}
}

// RecordAlert queues an alert's start or end (the same ID and Start again
// with End set) for the next Commit. It does no I/O.
func (s *Store) RecordAlert(a fleet.Alert) {
	s.alertMu.Lock()
	s.alerts = append(s.alerts, a)
	s.alertMu.Unlock()
}

func (s *Store) takeAlerts() []fleet.Alert {
	s.alertMu.Lock()
	defer s.alertMu.Unlock()
	a := s.alerts
	s.alerts = nil
	return a
}

func (w *writer) writeAlerts(as []fleet.Alert) error {
	for _, a := range as {
		var end int64
		if !a.End.IsZero() {
			end = a.End.UnixMilli()
		}
		if err := w.exec(`INSERT INTO alerts (id, start_ms, end_ms, kind, severity, node_id, region, device, job, message)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id, start_ms) DO UPDATE SET end_ms = excluded.end_ms, severity = excluded.severity,
				message = excluded.message`,
			a.ID, a.Start.UnixMilli(), end, string(a.Kind), string(a.Severity), a.Node, a.Region, a.Device, a.Job,
			a.Message); err != nil {
			return fmt.Errorf("write alert: %w", err)
		}
	}
	return nil
}
