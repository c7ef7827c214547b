package collector

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Spool record framing, in segment files:
//
//	u32 length of (seq + payload), little endian
//	u32 CRC-32C of (seq + payload)
//	u64 seq
//	payload (wire.AppendRecord)
//
// A record whose header or body is short, or whose CRC does not match, ends
// the valid part of a segment: a crash mid-write leaves at most a torn tail,
// which OpenSpool truncates, so nothing torn is ever read back.
const (
	spoolHeader      = 16
	spoolMaxRecord   = 4 << 20 // larger lengths are corruption, not records
	spoolSegSuffix   = ".seg"
	spoolAckFile     = "ack"
	defaultSyncEvery = 5 * time.Second
	// DefaultSpoolMaxBytes bounds the spool by default. Measured
	// (BenchmarkAgentSample, docs/BENCHMARKS.md "Collector"): an 8-GPU record
	// is 397 B (813 B when it carries the process list), plus 16 B of
	// framing; 2 hours at 1 Hz is 7,200 records, 2.8 MiB (5.7 MiB if every
	// record carried processes). 64 MiB holds about 45 hours (at least 22).
	DefaultSpoolMaxBytes = 64 << 20
	// memCacheBytes bounds the in-memory copy of recent records that a
	// disk spool keeps so that live streaming does not read files back.
	memCacheBytes = 256 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// SpoolOptions tune a spool. The zero value is usable.
type SpoolOptions struct {
	// MaxBytes bounds the spool; when an append goes past it the oldest
	// segments (acknowledged or not) are dropped and counted. Default
	// DefaultSpoolMaxBytes.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started.
	// Default MaxBytes/16, between 64 KiB and 8 MiB.
	SegmentBytes int64
	// SyncEvery groups fsyncs: appended data is synced at most this often
	// (and on Close). A process crash loses nothing written (it is in the page
	// cache); a power loss loses at most this much. Default 5 s.
	SyncEvery time.Duration
	Clock     func() time.Time
	Logger    *slog.Logger
}

// SpoolStats describes a spool's contents.
type SpoolStats struct {
	Bytes    int64  // bytes held (on disk, or in memory for a memory spool)
	First    uint64 // oldest sequence held, 0 when empty
	Next     uint64 // sequence the next Append must carry
	Acked    uint64 // highest acknowledged sequence
	Unacked  uint64 // records held after Acked
	Dropped  uint64 // records dropped unacknowledged because the spool was full
	Resets   uint64 // times Reset dropped everything and moved the numbering
	Repaired int64  // bytes of torn tail truncated at open
}

// Spool is the collector's buffer of sequenced records not yet acknowledged
// by the aggregator. It owns the numbering, the acknowledged prefix and the
// counters; a spoolStore holds the records: on disk (diskStore: append-only
// segment files in a directory, bounded in bytes, with the acknowledged
// prefix remembered in an ack file) or in memory (memStore, for simulated
// collectors). Safe for concurrent use.
type Spool struct {
	mu    sync.Mutex
	c     spoolCounters // shared with store; guarded by mu
	store spoolStore
	log   *slog.Logger
}

// spoolCounters is the numbering and accounting of a Spool. Its store reads
// acked and next, counts what it drops in dropped, and sets acked, next and
// repaired when it loads.
type spoolCounters struct {
	next, acked uint64
	dropped     uint64
	resets      uint64
	repaired    int64
}

// spoolStore holds a Spool's records. The Spool calls every method with its
// mutex held; read may release it (once, through unlock) before slow work.
type spoolStore interface {
	// append holds record seq (the Spool's next), then drops the oldest
	// records while the store is over its bound, counting in dropped those
	// not acknowledged. An error means the record is not held.
	append(seq uint64, payload []byte) error
	// cut tells the store that the sequence after the last append was
	// lost: the next append does not follow it.
	cut()
	// ack forgets what the acknowledged prefix (counters.acked) now covers.
	ack()
	// reset forgets every record; counters.acked is the new prefix, and
	// durable when reset returns.
	reset() error
	// first returns the oldest sequence held (it may be acknowledged), 0
	// when none is; bytes the size held.
	first() uint64
	bytes() int64
	// read calls fn for up to maxRecs held records in [want, limit), in
	// order, until fn fails, and returns the sequence after the last one
	// passed (want when none was). payload is valid only during the call.
	read(want, limit uint64, maxRecs int, fn func(seq uint64, payload []byte) error, unlock func()) (uint64, error)
	// sync makes appended data durable; unless force, only once SyncEvery
	// has passed since the last sync.
	sync(force bool) error
	close() error
}

// OpenSpool opens (creating if needed) the spool in dir, truncating a torn
// last record. dir "" gives a memory-only spool.
func OpenSpool(dir string, o SpoolOptions) (*Spool, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultSpoolMaxBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = min(max(o.MaxBytes/16, 64<<10), 8<<20)
	}
	if o.SyncEvery <= 0 {
		o.SyncEvery = defaultSyncEvery
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Spool{c: spoolCounters{next: 1}, log: o.Logger}
	if dir == "" {
		s.store = newMemStore(&s.c, o)
		return s, nil
	}
	st, err := openDiskStore(dir, &s.c, o)
	if err != nil {
		return nil, err
	}
	s.store = st
	return s, nil
}

// Lose reserves sequence seq (which must be NextSeq()) for a record that
// could not be spooled (it could not be encoded, or the disk refused it):
// the numbering moves on, so the aggregator sees the gap instead of a
// later record silently taking the lost one's number. Counted in Dropped.
func (s *Spool) Lose(seq uint64, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == s.c.next {
		s.loseLocked(seq, why)
	}
}

func (s *Spool) loseLocked(seq uint64, why string) {
	s.c.next = seq + 1
	s.c.dropped++
	s.store.cut()
	if s.c.dropped == 1 || s.c.dropped%1000 == 0 {
		s.log.Warn("spool: a record was lost; its sequence is reserved so the aggregator counts the gap",
			"seq", seq, "why", why, "dropped_total", s.c.dropped)
	}
}

// ErrSeq reports an Append whose sequence is not the spool's next.
var ErrSeq = errors.New("spool: sequence out of order")

// Append adds the record seq, which must be NextSeq().
func (s *Spool) Append(seq uint64, payload []byte) error {
	if len(payload) > spoolMaxRecord-8 {
		return fmt.Errorf("spool: record of %d bytes is too large", len(payload))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq != s.c.next {
		return fmt.Errorf("%w: got %d, want %d", ErrSeq, seq, s.c.next)
	}
	if err := s.store.append(seq, payload); err != nil {
		s.loseLocked(seq, err.Error())
		return err
	}
	s.c.next = seq + 1
	return s.store.sync(false)
}

// Ack records that every sequence up to seq is durably applied upstream;
// whole segments at or below it are deleted. The ack is written with the next
// grouped sync.
func (s *Spool) Ack(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.c.acked {
		return
	}
	if seq >= s.c.next {
		seq = s.c.next - 1
	}
	s.c.acked = seq
	s.store.ack()
}

// Reset forgets every record and makes next the next sequence: used when the
// aggregator already holds sequences past everything spooled (a wiped spool).
// It is never silent: every reset is logged with its reason and what it
// dropped, and counted in SpoolStats.Resets.
func (s *Spool) Reset(next uint64, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.resets++
	var unacked uint64
	if first := s.firstLocked(); first != 0 {
		unacked = s.c.next - first
	}
	s.log.Warn("spool reset: every held record dropped and the numbering moved",
		"reason", reason, "from_next", s.c.next, "to_next", next, "unacked_dropped", unacked, "resets_total", s.c.resets)
	s.c.next = next
	s.c.acked = next - 1
	return s.store.reset()
}

// NextSeq returns the sequence the next Append must carry.
func (s *Spool) NextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.next
}

// Stats returns the spool's counters.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SpoolStats{Next: s.c.next, Acked: s.c.acked, Dropped: s.c.dropped, Resets: s.c.resets, Repaired: s.c.repaired}
	st.First = s.firstLocked()
	if st.First != 0 {
		st.Unacked = s.c.next - max(st.First, s.c.acked+1)
	}
	st.Bytes = s.store.bytes()
	return st
}

func (s *Spool) firstLocked() uint64 {
	first := s.store.first()
	if first != 0 && first <= s.c.acked {
		first = s.c.acked + 1
	}
	if first >= s.c.next {
		return 0
	}
	return first
}

// ReadFrom calls fn with up to max records, in order, starting at the first
// held sequence ≥ from. payload is valid only during the call. It returns the
// sequence after the last record passed to fn (from, when none was).
//
// It reads the records held when it is called. A disk spool reads its files
// without holding the spool's lock, so sampling goes on during a long resend;
// fn may even call Append.
func (s *Spool) ReadFrom(from uint64, maxRecs int, fn func(seq uint64, payload []byte) error) (uint64, error) {
	s.mu.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			s.mu.Unlock()
		}
	}
	defer unlock()
	want := max(from, s.c.acked+1)
	if want >= s.c.next {
		return from, nil
	}
	next, err := s.store.read(want, s.c.next, maxRecs, fn, unlock)
	if next == want {
		next = from // nothing passed
	}
	return next, err
}

// Close syncs and closes the spool.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.close()
}

type memRec struct {
	seq     uint64
	payload []byte
}

// memRing is a byte-bounded run of records in order, oldest first: the
// whole of a memory spool, and a disk spool's cache of recent records (so
// that live streaming does not read files back).
type memRing struct {
	recs      []memRec
	size, max int64
	onEvict   func(memRec) // called for each record push drops to stay under max
}

// push appends a copy of the record; a record larger than the whole bound
// empties the ring instead.
func (m *memRing) push(seq uint64, payload []byte) {
	if int64(len(payload)) > m.max {
		m.clear()
		return
	}
	m.recs = append(m.recs, memRec{seq: seq, payload: append([]byte(nil), payload...)})
	m.size += int64(len(payload))
	drop := 0
	for m.size > m.max && drop < len(m.recs)-1 {
		m.size -= int64(len(m.recs[drop].payload))
		if m.onEvict != nil {
			m.onEvict(m.recs[drop])
		}
		drop++
	}
	m.shift(drop)
}

// dropThrough forgets the records up to and including seq.
func (m *memRing) dropThrough(seq uint64) {
	drop := 0
	for drop < len(m.recs) && m.recs[drop].seq <= seq {
		m.size -= int64(len(m.recs[drop].payload))
		drop++
	}
	m.shift(drop)
}

func (m *memRing) shift(n int) {
	if n == 0 {
		return
	}
	k := copy(m.recs, m.recs[n:])
	clear(m.recs[k:])
	m.recs = m.recs[:k]
}

func (m *memRing) clear() { m.recs, m.size = m.recs[:0], 0 }

func (m *memRing) first() uint64 {
	if len(m.recs) == 0 {
		return 0
	}
	return m.recs[0].seq
}

// covers reports whether the ring holds every record from want on.
func (m *memRing) covers(want uint64) bool { return len(m.recs) > 0 && want >= m.recs[0].seq }

// read passes the records in [want, limit), up to maxRecs, to fn.
func (m *memRing) read(want, limit uint64, maxRecs int, fn func(uint64, []byte) error) (uint64, error) {
	next, count := want, 0
	for _, r := range m.recs {
		if r.seq < want {
			continue
		}
		if r.seq >= limit || count == maxRecs {
			break
		}
		if err := fn(r.seq, r.payload); err != nil {
			return next, err
		}
		next, count = r.seq+1, count+1
	}
	return next, nil
}

// memStore keeps a spool's records in memory, bounded by MaxBytes: the
// oldest go first, counted in dropped when not acknowledged.
type memStore struct {
	c    *spoolCounters
	log  *slog.Logger
	ring memRing
}

var _ spoolStore = (*memStore)(nil)

func newMemStore(c *spoolCounters, o SpoolOptions) *memStore {
	m := &memStore{c: c, log: o.Logger}
	m.ring.max = o.MaxBytes
	m.ring.onEvict = func(r memRec) {
		if r.seq > m.c.acked {
			m.c.dropped++
			if m.c.dropped == 1 || m.c.dropped%1000 == 0 {
				m.log.Warn("spool full: dropping the oldest unacknowledged records", "dropped_total", m.c.dropped)
			}
		}
	}
	return m
}

func (m *memStore) append(seq uint64, payload []byte) error {
	m.ring.push(seq, payload)
	return nil
}

func (m *memStore) cut()          {}
func (m *memStore) ack()          { m.ring.dropThrough(m.c.acked) }
func (m *memStore) reset() error  { m.ring.clear(); return nil }
func (m *memStore) first() uint64 { return m.ring.first() }
func (m *memStore) bytes() int64  { return m.ring.size }
func (m *memStore) sync(bool) error {
	return nil
}
func (m *memStore) close() error { return nil }

func (m *memStore) read(want, limit uint64, maxRecs int, fn func(uint64, []byte) error, _ func()) (uint64, error) {
	return m.ring.read(want, limit, maxRecs, fn)
}

type segment struct {
	first, last uint64 // last < first: empty
	size        int64
	path        string
}

// diskStore keeps a spool's records in segment files in a directory,
// bounded by MaxBytes, with a memory cache of the most recent ones.
type diskStore struct {
	dir  string
	o    SpoolOptions
	c    *spoolCounters
	segs []segment
	act  *os.File // active (last) segment, open for append; nil until needed
	ackF *os.File // the ack file, overwritten in place; nil until needed

	cache memRing

	dirty, ackDirty bool
	lastSync        time.Time
	frame           []byte
}

var _ spoolStore = (*diskStore)(nil)

func openDiskStore(dir string, c *spoolCounters, o SpoolOptions) (*diskStore, error) {
	d := &diskStore{dir: dir, o: o, c: c}
	d.cache.max = memCacheBytes
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if err := d.load(); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	d.lastSync = o.Clock()
	return d, nil
}
func (d *diskStore) load() error {
	if b, err := os.ReadFile(filepath.Join(d.dir, spoolAckFile)); err == nil {
		if v, ok := decodeAck(b); ok {
			d.c.acked = v
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, spoolSegSuffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, spoolSegSuffix), 10, 64)
		if err != nil || first == 0 {
			continue
		}
		d.segs = append(d.segs, segment{first: first, path: filepath.Join(d.dir, name)})
	}
	sort.Slice(d.segs, func(i, j int) bool { return d.segs[i].first < d.segs[j].first })
	for i := range d.segs {
		sg := &d.segs[i]
		if i < len(d.segs)-1 {
			st, err := os.Stat(sg.path)
			if err != nil {
				return err
			}
			sg.size = st.Size()
			sg.last = d.segs[i+1].first - 1
			continue
		}
		if err := d.repairLast(sg); err != nil {
			return err
		}
	}
	// The last segment may have lost every record to the repair.
	if n := len(d.segs); n > 0 && d.segs[n-1].last < d.segs[n-1].first {
		os.Remove(d.segs[n-1].path)
		d.segs = d.segs[:n-1]
	}
	if n := len(d.segs); n > 0 {
		d.c.next = d.segs[n-1].last + 1
	}
	if d.c.acked >= d.c.next {
		d.c.next = d.c.acked + 1
	}
	// Acknowledged segments go, but the last one stays even when all of it
	// is acknowledged: it carries the sequence on, so a lost ack (the ack
	// file is not fsynced, see writeAck) can never restart the numbering.
	d.trimAcked()
	return nil
}

// repairLast scans the last segment, finds its last valid record and cuts
// everything after it.
func (d *diskStore) repairLast(sg *segment) error {
	f, err := os.OpenFile(sg.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	sg.last = sg.first - 1
	var good int64
	expect := sg.first
	err = scanRecords(bufio.NewReaderSize(f, 64<<10), func(seq uint64, _ []byte, end int64) bool {
		if seq != expect {
			return false
		}
		sg.last, good, expect = seq, end, seq+1
		return true
	})
	if err != nil {
		return err
	}
	if good < st.Size() {
		d.c.repaired += st.Size() - good
		d.o.Logger.Warn("spool: truncated a torn record", "segment", filepath.Base(sg.path), "bytes", st.Size()-good)
		if err := f.Truncate(good); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	sg.size = good
	return nil
}

// scanRecords calls fn for each valid record of r, with the offset just past
// it, until fn returns false, the data ends, or a record is torn or corrupt.
// Only read errors other than a short tail are returned.
func scanRecords(r *bufio.Reader, fn func(seq uint64, payload []byte, end int64) bool) error {
	var hdr [spoolHeader]byte
	var buf []byte
	var off int64
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return err
		}
		n := binary.LittleEndian.Uint32(hdr[0:])
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if n < 8 || n > spoolMaxRecord {
			return nil
		}
		if cap(buf) < int(n)-8 {
			buf = make([]byte, int(n)-8)
		}
		body := buf[:n-8]
		if _, err := io.ReadFull(r, body); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return err
		}
		c := crc32.Update(0, crcTable, hdr[8:16])
		if crc32.Update(c, crcTable, body) != sum {
			return nil
		}
		off += int64(spoolHeader) + int64(n) - 8
		if !fn(binary.LittleEndian.Uint64(hdr[8:]), body, off) {
			return nil
		}
	}
}

func appendFrame(dst []byte, seq uint64, payload []byte) []byte {
	var hdr [spoolHeader]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(payload)+8))
	binary.LittleEndian.PutUint64(hdr[8:], seq)
	c := crc32.Update(0, crcTable, hdr[8:16])
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Update(c, crcTable, payload))
	dst = append(dst, hdr[:]...)
	return append(dst, payload...)
}

// cut closes the active segment: the next record starts a new one, so
// every segment keeps consecutive sequences. The cache starts again too: it
// must reach back without a gap to answer a read.
func (d *diskStore) cut() {
	d.cache.clear()
	if d.act != nil {
		d.act.Close()
		d.act = nil
	}
}

func (d *diskStore) append(seq uint64, payload []byte) error {
	size := int64(spoolHeader + len(payload))
	n := len(d.segs)
	if d.act == nil || n == 0 || d.segs[n-1].size+size > d.o.SegmentBytes && d.segs[n-1].size > 0 {
		if err := d.rotate(seq); err != nil {
			return err
		}
		n = len(d.segs)
	}
	d.frame = appendFrame(d.frame[:0], seq, payload)
	if _, err := d.act.Write(d.frame); err != nil {
		// Cut whatever part of the record reached the file, so the segment
		// stays a sequence of whole records.
		d.act.Truncate(d.segs[n-1].size)
		return fmt.Errorf("spool: write: %w", err)
	}
	sg := &d.segs[n-1]
	if sg.last < sg.first {
		sg.first = seq
	}
	sg.last = seq
	sg.size += size
	d.dirty = true
	d.cache.push(seq, payload)
	d.enforceLimit()
	return nil
}

// rotate closes the active segment and opens the one that ends the list
// (reusing an open-for-append last segment after a restart) or a new one
// starting at seq.
func (d *diskStore) rotate(seq uint64) error {
	n := len(d.segs)
	if d.act == nil && n > 0 && d.segs[n-1].size < d.o.SegmentBytes && d.segs[n-1].last+1 == seq {
		f, err := os.OpenFile(d.segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			d.act = f
			return nil
		}
	}
	if d.act != nil {
		if err := d.act.Sync(); err != nil {
			return fmt.Errorf("spool: sync: %w", err)
		}
		d.act.Close()
		d.act = nil
	}
	path := filepath.Join(d.dir, fmt.Sprintf("%020d%s", seq, spoolSegSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	d.act = f
	d.segs = append(d.segs, segment{first: seq, last: seq - 1, path: path})
	syncDir(d.dir)
	return nil
}

// enforceLimit drops the oldest segments while the spool is over MaxBytes.
func (d *diskStore) enforceLimit() {
	total := d.bytes()
	for total > d.o.MaxBytes && len(d.segs) > 1 {
		sg := d.segs[0]
		lost := uint64(0)
		if sg.last > d.c.acked {
			lost = sg.last - max(d.c.acked, sg.first-1)
		}
		os.Remove(sg.path)
		d.segs = d.segs[1:]
		total -= sg.size
		d.c.dropped += lost
		d.cache.dropThrough(sg.last)
		if lost > 0 {
			d.o.Logger.Warn("spool full: dropped the oldest unacknowledged records",
				"records", lost, "first_seq", sg.first, "last_seq", sg.last, "dropped_total", d.c.dropped)
		}
	}
}

func (d *diskStore) ack() {
	d.ackDirty = true
	d.trimAcked()
}

// trimAcked deletes the segments wholly acknowledged, but the last.
func (d *diskStore) trimAcked() {
	d.cache.dropThrough(d.c.acked)
	for len(d.segs) > 1 && d.segs[0].last <= d.c.acked {
		os.Remove(d.segs[0].path)
		d.segs = d.segs[1:]
	}
}

func (d *diskStore) reset() error {
	d.cut()
	for _, sg := range d.segs {
		os.Remove(sg.path)
	}
	d.segs = nil
	d.cache.clear()
	d.ackDirty = true
	if err := d.sync(true); err != nil {
		return err
	}
	// With every segment gone the ack is the only record of the sequence:
	// make it durable.
	if err := d.ackF.Sync(); err != nil {
		return fmt.Errorf("spool: sync ack: %w", err)
	}
	return nil
}

func (d *diskStore) first() uint64 {
	if len(d.segs) > 0 && d.segs[0].last >= d.segs[0].first {
		return d.segs[0].first
	}
	return 0
}

func (d *diskStore) bytes() int64 {
	var total int64
	for _, sg := range d.segs {
		total += sg.size
	}
	return total
}

// read serves from the cache when it reaches back to want. Otherwise it
// opens the segments that hold [want, limit) under the spool's lock (an open
// file outlives its removal by a later ack or trim), releases the lock, and
// scans them.
func (d *diskStore) read(want, limit uint64, maxRecs int, fn func(uint64, []byte) error, unlock func()) (uint64, error) {
	if d.cache.covers(want) {
		return d.cache.read(want, limit, maxRecs, fn)
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, sg := range d.segs {
		if sg.last < want || sg.last < sg.first || sg.first >= limit {
			continue
		}
		f, err := os.Open(sg.path)
		if err != nil {
			return want, fmt.Errorf("spool: read: %w", err)
		}
		files = append(files, f)
	}
	unlock()
	next, count := want, 0
	for _, f := range files {
		if count == maxRecs {
			break
		}
		var ferr error
		err := scanRecords(bufio.NewReaderSize(f, 64<<10), func(seq uint64, p []byte, _ int64) bool {
			if seq < want {
				return true
			}
			if seq >= limit || count == maxRecs {
				return false
			}
			if ferr = fn(seq, p); ferr != nil {
				return false
			}
			next, count = seq+1, count+1
			return true
		})
		if ferr != nil {
			return next, ferr
		}
		if err != nil {
			return next, fmt.Errorf("spool: read: %w", err)
		}
	}
	return next, nil
}

func (d *diskStore) sync(force bool) error {
	now := d.o.Clock()
	if !force && now.Sub(d.lastSync) < d.o.SyncEvery {
		return nil
	}
	d.lastSync = now
	if d.dirty && d.act != nil {
		if err := d.act.Sync(); err != nil {
			return fmt.Errorf("spool: sync: %w", err)
		}
		d.dirty = false
	}
	if d.ackDirty {
		if err := d.writeAck(); err != nil {
			return fmt.Errorf("spool: write ack: %w", err)
		}
		d.ackDirty = false
	}
	return nil
}

// writeAck overwrites the ack file in place, without fsync. The ack needs no
// durability: a lost or torn ack (its CRC fails, so it reads as none) only
// makes the collector resend records the aggregator already has, and the
// aggregator drops those by sequence. Records themselves are synced above.
// At thousands of agents per process (fleettop mock) this was the largest
// cost of a sync group: open, write, fsync and rename of a temporary file.
func (d *diskStore) writeAck() error {
	if d.ackF == nil {
		f, err := os.OpenFile(filepath.Join(d.dir, spoolAckFile), os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			return err
		}
		d.ackF = f
	}
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], d.c.acked)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], crcTable))
	_, err := d.ackF.WriteAt(b[:], 0)
	return err
}

func (d *diskStore) close() error {
	err := d.sync(true)
	if d.act != nil {
		if cerr := d.act.Close(); err == nil {
			err = cerr
		}
		d.act = nil
	}
	if d.ackF != nil {
		if cerr := d.ackF.Close(); err == nil {
			err = cerr
		}
		d.ackF = nil
	}
	return err
}

func decodeAck(b []byte) (uint64, bool) {
	if len(b) != 12 || crc32.Checksum(b[:8], crcTable) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b), true
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
