package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
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
// node: a few open minutes per GPU, found by a linear scan while they are
// few (see pendIndexed).
type pending struct {
	nodes map[string]*pendNode
}

type pendNode struct {
	seq             uint64
	firstMs, lastMs int64
	buckets         []bucket
	at              map[bkey]int // buckets' indexes, once there are pendIndexed
}

// pendIndexed is how many buckets a node has before they are found through
// a map: a node's bucket count is small (its GPUs and MIG instances times
// the minutes open since the fold), but a corrupt journal entry can name
// any number, and a linear scan each would make replaying it quadratic.
const pendIndexed = 256

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
	if pn.at != nil {
		k := bkey{b.idx, b.minute}
		if i, ok := pn.at[k]; ok {
			pn.buckets[i].merge(b)
			return
		}
		pn.at[k] = len(pn.buckets)
		pn.buckets = append(pn.buckets, *b)
		return
	}
	for i := range pn.buckets {
		if o := &pn.buckets[i]; o.idx == b.idx && o.minute == b.minute {
			o.merge(b)
			return
		}
	}
	pn.buckets = append(pn.buckets, *b)
	if len(pn.buckets) == pendIndexed {
		pn.at = make(map[bkey]int, 2*pendIndexed)
		for i := range pn.buckets {
			pn.at[bkey{pn.buckets[i].idx, pn.buckets[i].minute}] = i
		}
	}
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

// Journal entry formats. The first (v0, until December 2026) is a run of
// node records, each beginning with its id's length as a uvarint. An entry
// of a later format begins with journalMagic, the uvarint 0 written in two
// bytes, which no v0 entry can begin with: binary.AppendUvarint writes 0 as
// the single byte 0x00 and follows a first byte 0x80 with a non-zero one.
// A version byte follows the magic. Open replays entries of either format,
// so a journal left by a crash before an upgrade is not lost.
//
// Format v1 keeps every field of every bucket, bit for bit, in a fifth of
// v0's bytes or less (the WAL pages each Commit writes): a part of a bucket
// that repeats the previous bucket's costs a flag bit instead of its bytes,
// and a float takes the shortest of four forms.
//
//	entry  = magic version node+
//	node   = id:string seq:uvarint uvarint(buckets<<1 | timed)
//	         [varint(firstMs − the previous timed node's) varint(lastMs − its)]
//	         bucket*
//	bucket = flags:byte [modes:uint16le] [idx:varint] [varint(minute − the previous bucket's)]
//	         [samples:uvarint reportedMs:varint utilN memN powerN:uvarint tempSet:byte]
//	         [job:ref team:ref] utilSum utilMax memSum powerSum energy tempMax
//	ref    = uvarint(0) string (the entry's next string) | uvarint(k) (its k-th, from 1)
//
// A part in brackets is there when its flag (jSameModes, jIdxNext, ...) is
// clear; "previous" is the entry's previous bucket, but for jIdxNext, which
// means the node's previous bucket's idx + 1 (0 for its first bucket).
// modes holds two bits per float, the first float's lowest: fZero (no
// bytes: +0; utilMax: utilSum's value; energy: powerSum × reportedMs / 1000,
// as one sample's), fSteps (n steps of 1/stepScales[e]: uvarint(zigzag(n)<<3
// | e); the wire quantises samples to such steps, wire/quant.go), fShort
// (uvarint of the bits with their bytes reversed: the mantissa's trailing
// zero bytes are left out) or fRaw (8 bytes, little-endian). The encoder
// checks every shortcut against the exact bits, so none rests on what the
// buckets are expected to hold.
var journalMagic = [2]byte{0x80, 0x00}

const journalV1 = 1

// Flags of a v1 bucket.
const (
	jSameModes   = 1 << iota   // the floats are written as the previous bucket's
	jIdxNext                   // idx is the node's previous bucket's + 1
	jSameMinute                // minute is the previous bucket's
	jSameCounts                // samples, reportedMs, utilN, memN, powerN and tempSet are the previous bucket's
	jSameStrings               // job and team are the previous bucket's
	jFlags       = 1<<iota - 1 // all of them; a decoder refuses other bits
)

// How a v1 float is written.
const (
	fZero = iota
	fSteps
	fShort
	fRaw
	fModes = 1<<(2*6) - 1 // the bits six floats' modes take
)

// stepScales are the steps per unit fSteps tries, the one with the fewest
// steps first: whole MiB (memory in bytes), then decimals.
var stepScales = [8]float64{0x1p-20, 1, 10, 100, 1e3, 1e4, 1e5, 1e6}

// steps returns zigzag(n)<<3 | e for v == float64(n)/stepScales[e] exactly,
// |n| ≤ 2^53, or false.
func steps(v float64) (uint64, bool) {
	want := math.Float64bits(v)
	for e, sc := range stepScales {
		r := math.Round(v * sc)
		if !(math.Abs(r) <= 1<<53) { // NaN and ±Inf too
			continue
		}
		if n := int64(r); math.Float64bits(float64(n)/sc) == want {
			return uint64(n<<1^n>>63)<<3 | uint64(e), true
		}
	}
	return 0, false
}

func unsteps(u uint64) float64 {
	z := u >> 3
	return float64(int64(z>>1)^-int64(z&1)) / stepScales[u&7]
}

// oneSampleEnergy is a bucket's energy when it holds one power reading of
// reportedMs (as bucket.add computes it; the conversion keeps any
// architecture from fusing the operations).
func oneSampleEnergy(b *bucket) float64 {
	return float64(b.powerSum*float64(b.reportedMs)) / 1000
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// floatMode returns the shortest way to write v other than fZero's
// shortcuts, and its payload.
func floatMode(v float64) (mode uint16, payload uint64) {
	b := math.Float64bits(v)
	mode, payload, n := uint16(fRaw), b, 8
	if r := bits.ReverseBytes64(b); uvarintLen(r) < n {
		mode, payload, n = fShort, r, uvarintLen(r)
	}
	if d, ok := steps(v); ok && uvarintLen(d) <= n {
		mode, payload = fSteps, d
	}
	return mode, payload
}

// journalEnc writes one journal entry in format v1.
type journalEnc struct {
	buf             []byte
	strs            map[string]uint64 // strings the entry defined → their ref
	firstMs, lastMs int64             // the previous timed node's
	prevIdx         int
	prev            bucket // the previous bucket (idx aside)
	prevModes       uint16
}

// reset starts an empty entry in buf's storage.
func (e *journalEnc) reset(buf []byte) {
	clear(e.strs)
	*e = journalEnc{buf: buf[:0], strs: e.strs}
	if e.strs == nil {
		e.strs = map[string]uint64{}
	}
}

// node begins the record of node id (seq, its sample times, 0 for none, and
// the number of buckets that follow).
func (e *journalEnc) node(id string, seq uint64, firstMs, lastMs int64, buckets int) {
	if len(e.buf) == 0 {
		e.buf = append(e.buf, journalMagic[0], journalMagic[1], journalV1)
	}
	e.buf = appendString(e.buf, id)
	e.buf = binary.AppendUvarint(e.buf, seq)
	timed := firstMs != 0 || lastMs != 0
	n := uint64(buckets) << 1
	if timed {
		n |= 1
	}
	e.buf = binary.AppendUvarint(e.buf, n)
	if timed {
		e.buf = binary.AppendVarint(e.buf, firstMs-e.firstMs)
		e.buf = binary.AppendVarint(e.buf, lastMs-e.lastMs)
		e.firstMs, e.lastMs = firstMs, lastMs
	}
	e.prevIdx = -1
}

func (e *journalEnc) ref(s string) {
	if k, ok := e.strs[s]; ok {
		e.buf = binary.AppendUvarint(e.buf, k)
		return
	}
	e.strs[s] = uint64(len(e.strs) + 1)
	e.buf = append(e.buf, 0)
	e.buf = appendString(e.buf, s)
}

func sameCounts(a, b *bucket) bool {
	return a.samples == b.samples && a.reportedMs == b.reportedMs && a.utilN == b.utilN &&
		a.memN == b.memN && a.powerN == b.powerN && a.tempSet == b.tempSet
}

// bucket writes one of the current node's buckets.
func (e *journalEnc) bucket(b *bucket) {
	p := &e.prev
	var flags byte
	if b.idx == e.prevIdx+1 {
		flags |= jIdxNext
	}
	if b.minute == p.minute {
		flags |= jSameMinute
	}
	if sameCounts(b, p) {
		flags |= jSameCounts
	}
	if b.job == p.job && b.team == p.team {
		flags |= jSameStrings
	}
	floats := [6]float64{b.utilSum, b.utilMax, b.memSum, b.powerSum, b.energy, b.tempMax}
	shortcut := [6]float64{0, b.utilSum, 0, 0, oneSampleEnergy(b), 0} // what fZero stands for
	var modes uint16
	var payload [6]uint64
	for i, v := range floats {
		var mode uint16
		if math.Float64bits(v) != math.Float64bits(shortcut[i]) {
			mode, payload[i] = floatMode(v)
		}
		modes |= mode << (2 * i)
	}
	if modes == e.prevModes {
		flags |= jSameModes
	}
	e.buf = append(e.buf, flags)
	if flags&jSameModes == 0 {
		e.buf = binary.LittleEndian.AppendUint16(e.buf, modes)
	}
	if flags&jIdxNext == 0 {
		e.buf = binary.AppendVarint(e.buf, int64(b.idx))
	}
	if flags&jSameMinute == 0 {
		e.buf = binary.AppendVarint(e.buf, b.minute-p.minute)
	}
	if flags&jSameCounts == 0 {
		e.buf = binary.AppendUvarint(e.buf, uint64(b.samples))
		e.buf = binary.AppendVarint(e.buf, b.reportedMs)
		e.buf = binary.AppendUvarint(e.buf, uint64(b.utilN))
		e.buf = binary.AppendUvarint(e.buf, uint64(b.memN))
		e.buf = binary.AppendUvarint(e.buf, uint64(b.powerN))
		if b.tempSet {
			e.buf = append(e.buf, 1)
		} else {
			e.buf = append(e.buf, 0)
		}
	}
	if flags&jSameStrings == 0 {
		e.ref(b.job)
		e.ref(b.team)
	}
	for i, x := range payload {
		switch (modes >> (2 * i)) & 3 {
		case fSteps, fShort:
			e.buf = binary.AppendUvarint(e.buf, x)
		case fRaw:
			e.buf = binary.LittleEndian.AppendUint64(e.buf, x)
		}
	}
	e.prevIdx = b.idx
	e.prevModes = modes
	*p = *b
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

// fail marks the entry corrupt.
func (r *reader) fail() {
	r.err = errJournal
	r.b = nil
}

func (r *reader) uint16() uint16 {
	if len(r.b) < 2 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b)
	r.b = r.b[2:]
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
	if len(data) < 2 || data[0] != journalMagic[0] || data[1] != journalMagic[1] {
		return decodeJournalV0(data, p)
	}
	if len(data) < 3 || data[2] != journalV1 {
		return fmt.Errorf("unknown format: %w", errJournal)
	}
	return decodeJournalV1(data[3:], p)
}

// decodeJournalV0 reads the first format, written until December 2026.
func decodeJournalV0(data []byte, p *pending) error {
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

// decodeJournalV1 reads format v1 after its magic and version (see
// journalEnc).
func decodeJournalV1(data []byte, p *pending) error {
	r := &reader{b: data}
	if len(data) == 0 {
		return errJournal // an entry holds a node at least
	}
	var strs []string
	ref := func() string {
		k := r.uvarint()
		switch {
		case r.err != nil:
			return ""
		case k == 0:
			s := r.string()
			strs = append(strs, s)
			return s
		case k <= uint64(len(strs)):
			return strs[k-1]
		}
		r.fail()
		return ""
	}
	var firstMs, lastMs int64
	var prev bucket
	var modes uint16
	for len(r.b) > 0 && r.err == nil {
		id := r.string()
		seq := r.uvarint()
		n := r.uvarint()
		if n&1 == 1 {
			firstMs += r.varint()
			lastMs += r.varint()
		}
		if r.err != nil {
			break
		}
		pn := p.node(id)
		pn.seq = max(pn.seq, seq)
		if n&1 == 1 {
			pn.addTimes(firstMs, lastMs)
		}
		prevIdx := -1
		for j := uint64(0); j < n>>1 && r.err == nil; j++ {
			flags := r.byte1()
			if flags&^jFlags != 0 {
				r.fail()
			}
			if flags&jSameModes == 0 {
				if modes = r.uint16(); modes&^fModes != 0 {
					r.fail()
				}
			}
			b := prev
			b.idx = prevIdx + 1
			if flags&jIdxNext == 0 {
				b.idx = int(r.varint())
			}
			if flags&jSameMinute == 0 {
				b.minute += r.varint()
			}
			if flags&jSameCounts == 0 {
				b.samples = int64(r.uvarint())
				b.reportedMs = r.varint()
				b.utilN = int64(r.uvarint())
				b.memN = int64(r.uvarint())
				b.powerN = int64(r.uvarint())
				switch r.byte1() {
				case 0:
					b.tempSet = false
				case 1:
					b.tempSet = true
				default:
					r.fail()
				}
			}
			if flags&jSameStrings == 0 {
				b.job = ref()
				b.team = ref()
			}
			for i, f := range [6]*float64{&b.utilSum, &b.utilMax, &b.memSum, &b.powerSum, &b.energy, &b.tempMax} {
				switch (modes >> (2 * i)) & 3 {
				case fZero:
					switch i {
					case 1:
						*f = b.utilSum
					case 4:
						*f = oneSampleEnergy(&b)
					default:
						*f = 0
					}
				case fSteps:
					*f = unsteps(r.uvarint())
				case fShort:
					*f = math.Float64frombits(bits.ReverseBytes64(r.uvarint()))
				default:
					*f = r.float()
				}
			}
			if r.err == nil {
				pn.addBucket(&b)
				prev, prevIdx = b, b.idx
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
