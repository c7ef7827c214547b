package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The journal keeps Commit cheap at fleet scale. A Commit between folds
// appends one row: a compact blob of the minute-bucket deltas, sequences
// and sample times drained since the previous Commit. About once a minute
// (FoldEvery) a Commit folds: it adds everything pending into rollup_minute,
// writes nodes' sequences and times, deletes the journal, and accrues the
// ledger. Open replays a journal left by a crash the same way. Every
// committed sample is thus durable in the journal or the rollups, and never
// in both once a fold has committed.

// pending is what was committed (or failed to) since the last fold, per
// node: a few open minutes per GPU, found by a linear scan.
type pending struct {
	nodes map[string]*pendNode
}

type pendNode struct {
	seq             uint64
	firstMs, lastMs int64
	buckets         []bucket
}

func newPending() pending { return pending{nodes: map[string]*pendNode{}} }

func (p *pending) node(id string) *pendNode {
	pn := p.nodes[id]
	if pn == nil {
		pn = &pendNode{}
		p.nodes[id] = pn
	}
	return pn
}

func (pn *pendNode) addTimes(firstMs, lastMs int64) {
	if firstMs > 0 && (pn.firstMs == 0 || firstMs < pn.firstMs) {
		pn.firstMs = firstMs
	}
	pn.lastMs = max(pn.lastMs, lastMs)
}

func (p *pending) addSeq(id string, seq uint64) {
	pn := p.node(id)
	pn.seq = max(pn.seq, seq)
}

func (pn *pendNode) addBucket(b *bucket) {
	for i := range pn.buckets {
		if o := &pn.buckets[i]; o.idx == b.idx && o.minute == b.minute {
			o.merge(b)
			return
		}
	}
	pn.buckets = append(pn.buckets, *b)
}

// reset empties the set after a fold, keeping every node's record (the
// accumulators point at them) and its bucket capacity.
func (p *pending) reset() {
	for _, pn := range p.nodes {
		*pn = pendNode{buckets: pn.buckets[:0]}
	}
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendFloat(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

func appendBucket(dst []byte, b *bucket) []byte {
	dst = binary.AppendUvarint(dst, uint64(b.idx))
	dst = binary.AppendVarint(dst, b.minute/minuteMs)
	dst = binary.AppendUvarint(dst, uint64(b.samples))
	dst = binary.AppendVarint(dst, b.reportedMs)
	dst = binary.AppendUvarint(dst, uint64(b.utilN))
	if b.utilN > 0 {
		dst = appendFloat(dst, b.utilSum)
		dst = appendFloat(dst, b.utilMax)
	}
	dst = binary.AppendUvarint(dst, uint64(b.memN))
	if b.memN > 0 {
		dst = appendFloat(dst, b.memSum)
	}
	dst = binary.AppendUvarint(dst, uint64(b.powerN))
	if b.powerN > 0 {
		dst = appendFloat(dst, b.powerSum)
	}
	dst = appendFloat(dst, b.energy)
	if b.tempSet {
		dst = append(dst, 1)
		dst = appendFloat(dst, b.tempMax)
	} else {
		dst = append(dst, 0)
	}
	dst = appendString(dst, b.job)
	return appendString(dst, b.team)
}

var errJournal = errors.New("corrupt journal entry")

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	r.advance(n)
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	r.advance(n)
	return v
}

// advance consumes the n bytes of a varint just read; n <= 0 (what
// encoding/binary returns for a short or overlong varint, with a value of 0)
// marks the entry corrupt.
func (r *reader) advance(n int) {
	if n <= 0 {
		r.err = errJournal
		r.b = nil
		return
	}
	r.b = r.b[n:]
}

func (r *reader) float() float64 {
	if len(r.b) < 8 {
		r.err = errJournal
		r.b = nil
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) byte1() byte {
	if len(r.b) < 1 {
		r.err = errJournal
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errJournal
		r.b = nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeJournal adds one journal entry (node records up to its end) to p.
func decodeJournal(data []byte, p *pending) error {
	r := &reader{b: data}
	for len(r.b) > 0 && r.err == nil {
		id := r.string()
		pn := p.node(id)
		pn.seq = max(pn.seq, r.uvarint())
		pn.addTimes(r.varint(), r.varint())
		nb := r.uvarint()
		for j := uint64(0); j < nb && r.err == nil; j++ {
			var b bucket
			b.idx = int(r.uvarint())
			b.minute = r.varint() * minuteMs
			b.samples = int64(r.uvarint())
			b.reportedMs = r.varint()
			if b.utilN = int64(r.uvarint()); b.utilN > 0 {
				b.utilSum, b.utilMax = r.float(), r.float()
			}
			if b.memN = int64(r.uvarint()); b.memN > 0 {
				b.memSum = r.float()
			}
			if b.powerN = int64(r.uvarint()); b.powerN > 0 {
				b.powerSum = r.float()
			}
			b.energy = r.float()
			if r.byte1() == 1 {
				b.tempSet, b.tempMax = true, r.float()
			}
			b.job, b.team = r.string(), r.string()
			if r.err == nil {
				pn.addBucket(&b)
			}
		}
	}
	return r.err
}

// replayJournal folds a journal left by a crash into the rollups.
func (s *Store) replayJournal(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT id, data FROM journal ORDER BY id`)
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int64
		var data []byte
		if err := rows.Scan(&id, &data); err != nil {
			return fmt.Errorf("replay journal: %w", err)
		}
		if err := decodeJournal(data, &s.pend); err != nil {
			return fmt.Errorf("replay journal entry %d: %w", id, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	rows.Close()
	if n == 0 {
		return nil
	}
	s.opts.Logger.Info("replaying the store's journal after an unclean stop", "entries", n)
	for id, pn := range s.pend.nodes {
		if pn.firstMs == 0 {
			continue
		}
		ns := s.nodes[id]
		if ns == nil {
			ns = &ledgerNode{id: id}
			s.nodes[id] = ns
		}
		if pn.firstMs > 0 && (ns.firstMs == 0 || pn.firstMs < ns.firstMs) {
			ns.firstMs = pn.firstMs
		}
	}
	s.mustFold = true
	return s.commit(ctx, nil, true, nil) // what CommitSlice leaves, the next Commits do
}
