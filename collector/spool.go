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

type segment struct {
	first, last uint64 // last < first: empty
	size        int64
	path        string
}

type memRec struct {
	seq     uint64
	payload []byte
}

// Spool is the collector's durable buffer of sequenced records not yet
// acknowledged by the aggregator: append-only segment files in a directory,
// bounded in bytes, with the acknowledged prefix remembered in an ack file.
// With an empty directory it is a bounded in-memory buffer (for simulated
// collectors). Safe for concurrent use.
type Spool struct {
	mu   sync.Mutex
	dir  string
	o    SpoolOptions
	segs []segment
	act  *os.File // active (last) segment, open for append; nil until needed
	ackF *os.File // the ack file, overwritten in place; nil until needed

	next, acked uint64
	dropped     uint64
	resets      uint64
	repaired    int64

	mem      []memRec // recent records, oldest first
	memBytes int64
	memMax   int64

	dirty, ackDirty bool
	lastSync        time.Time
	frame           []byte
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
	s := &Spool{dir: dir, o: o, next: 1, memMax: memCacheBytes}
	if dir == "" {
		s.memMax = o.MaxBytes
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	s.lastSync = o.Clock()
	return s, nil
}

func (s *Spool) load() error {
	if b, err := os.ReadFile(filepath.Join(s.dir, spoolAckFile)); err == nil {
		if v, ok := decodeAck(b); ok {
			s.acked = v
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ents, err := os.ReadDir(s.dir)
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
		s.segs = append(s.segs, segment{first: first, path: filepath.Join(s.dir, name)})
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i].first < s.segs[j].first })
	for i := range s.segs {
		sg := &s.segs[i]
		if i < len(s.segs)-1 {
			st, err := os.Stat(sg.path)
			if err != nil {
				return err
			}
			sg.size = st.Size()
			sg.last = s.segs[i+1].first - 1
			continue
		}
		if err := s.repairLast(sg); err != nil {
			return err
		}
	}
	// The last segment may have lost every record to the repair.
	if n := len(s.segs); n > 0 && s.segs[n-1].last < s.segs[n-1].first {
		os.Remove(s.segs[n-1].path)
		s.segs = s.segs[:n-1]
	}
	if n := len(s.segs); n > 0 {
		s.next = s.segs[n-1].last + 1
	}
	if s.acked >= s.next {
		s.next = s.acked + 1
	}
	// Acknowledged segments go, but the last one stays even when all of it
	// is acknowledged: it carries the sequence on, so a lost ack (the ack
	// file is not fsynced, see writeAck) can never restart the numbering.
	s.trimAcked()
	return nil
}

// repairLast scans the last segment, finds its last valid record and cuts
// everything after it.
func (s *Spool) repairLast(sg *segment) error {
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
		s.repaired += st.Size() - good
		s.o.Logger.Warn("spool: truncated a torn record", "segment", filepath.Base(sg.path), "bytes", st.Size()-good)
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

// Lose reserves sequence seq (which must be NextSeq()) for a record that
// could not be spooled (it could not be encoded, or the disk refused it):
// the numbering moves on, so the aggregator sees the gap instead of a
// later record silently taking the lost one's number. Counted in Dropped.
func (s *Spool) Lose(seq uint64, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == s.next {
		s.loseLocked(seq, why)
	}
}

func (s *Spool) loseLocked(seq uint64, why string) {
	s.next = seq + 1
	s.dropped++
	// The next record starts a new segment, so every segment keeps
	// consecutive sequences.
	if s.act != nil {
		s.act.Close()
		s.act = nil
	}
	if s.dropped == 1 || s.dropped%1000 == 0 {
		s.o.Logger.Warn("spool: a record was lost; its sequence is reserved so the aggregator counts the gap",
			"seq", seq, "why", why, "dropped_total", s.dropped)
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
	if seq != s.next {
		return fmt.Errorf("%w: got %d, want %d", ErrSeq, seq, s.next)
	}
	size := int64(spoolHeader + len(payload))
	if s.dir != "" {
		if err := s.appendDisk(seq, payload, size); err != nil {
			s.loseLocked(seq, err.Error())
			return err
		}
	}
	s.next = seq + 1
	s.memAppend(seq, payload)
	if s.dir != "" {
		s.enforceLimit()
		if now := s.o.Clock(); now.Sub(s.lastSync) >= s.o.SyncEvery {
			if err := s.syncLocked(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Spool) appendDisk(seq uint64, payload []byte, size int64) error {
	n := len(s.segs)
	if s.act == nil || n == 0 || s.segs[n-1].size+size > s.o.SegmentBytes && s.segs[n-1].size > 0 {
		if err := s.rotate(seq); err != nil {
			return err
		}
		n = len(s.segs)
	}
	s.frame = appendFrame(s.frame[:0], seq, payload)
	if _, err := s.act.Write(s.frame); err != nil {
		// Cut whatever part of the record reached the file, so the segment
		// stays a sequence of whole records.
		s.act.Truncate(s.segs[n-1].size)
		return fmt.Errorf("spool: write: %w", err)
	}
	sg := &s.segs[n-1]
	if sg.last < sg.first {
		sg.first = seq
	}
	sg.last = seq
	sg.size += size
	s.dirty = true
	return nil
}

// rotate closes the active segment and opens the one that ends the list
// (reusing an open-for-append last segment after a restart) or a new one
// starting at seq.
func (s *Spool) rotate(seq uint64) error {
	n := len(s.segs)
	if s.act == nil && n > 0 && s.segs[n-1].size < s.o.SegmentBytes && s.segs[n-1].last+1 == seq {
		f, err := os.OpenFile(s.segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			s.act = f
			return nil
		}
	}
	if s.act != nil {
		if err := s.act.Sync(); err != nil {
			return fmt.Errorf("spool: sync: %w", err)
		}
		s.act.Close()
		s.act = nil
	}
	path := filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, spoolSegSuffix))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	s.act = f
	s.segs = append(s.segs, segment{first: seq, last: seq - 1, path: path})
	syncDir(s.dir)
	return nil
}

func (s *Spool) memAppend(seq uint64, payload []byte) {
	if int64(len(payload)) > s.memMax {
		s.mem, s.memBytes = s.mem[:0], 0
		return
	}
	if len(s.mem) > 0 && s.mem[len(s.mem)-1].seq+1 != seq {
		s.mem, s.memBytes = s.mem[:0], 0
	}
	s.mem = append(s.mem, memRec{seq: seq, payload: append([]byte(nil), payload...)})
	s.memBytes += int64(len(payload))
	drop := 0
	for s.memBytes > s.memMax && drop < len(s.mem)-1 {
		s.memBytes -= int64(len(s.mem[drop].payload))
		if s.dir == "" && s.mem[drop].seq > s.acked {
			s.dropped++
			if s.dropped == 1 || s.dropped%1000 == 0 {
				s.o.Logger.Warn("spool full: dropping the oldest unacknowledged records", "dropped_total", s.dropped)
			}
		}
		drop++
	}
	s.shiftMem(drop)
}

func (s *Spool) shiftMem(n int) {
	if n == 0 {
		return
	}
	k := copy(s.mem, s.mem[n:])
	clear(s.mem[k:])
	s.mem = s.mem[:k]
}

// enforceLimit drops the oldest segments while the spool is over MaxBytes.
func (s *Spool) enforceLimit() {
	var total int64
	for _, sg := range s.segs {
		total += sg.size
	}
	for total > s.o.MaxBytes && len(s.segs) > 1 {
		sg := s.segs[0]
		lost := uint64(0)
		if sg.last > s.acked {
			lost = sg.last - max(s.acked, sg.first-1)
		}
		os.Remove(sg.path)
		s.segs = s.segs[1:]
		total -= sg.size
		s.dropped += lost
		drop := 0
		for drop < len(s.mem) && s.mem[drop].seq <= sg.last {
			s.memBytes -= int64(len(s.mem[drop].payload))
			drop++
		}
		s.shiftMem(drop)
		if lost > 0 {
			s.o.Logger.Warn("spool full: dropped the oldest unacknowledged records",
				"records", lost, "first_seq", sg.first, "last_seq", sg.last, "dropped_total", s.dropped)
		}
	}
}

// Ack records that every sequence up to seq is durably applied upstream;
// whole segments at or below it are deleted. The ack is written with the next
// grouped sync.
func (s *Spool) Ack(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.acked {
		return
	}
	if seq >= s.next {
		seq = s.next - 1
	}
	s.acked = seq
	s.ackDirty = true
	s.trimAcked()
}

func (s *Spool) trimAcked() {
	drop := 0
	for drop < len(s.mem) && s.mem[drop].seq <= s.acked {
		s.memBytes -= int64(len(s.mem[drop].payload))
		drop++
	}
	s.shiftMem(drop)
	for len(s.segs) > 1 && s.segs[0].last <= s.acked {
		os.Remove(s.segs[0].path)
		s.segs = s.segs[1:]
	}
}

// Reset forgets every record and makes next the next sequence: used when the
// aggregator already holds sequences past everything spooled (a wiped spool).
// It is never silent: every reset is logged with its reason and what it
// dropped, and counted in SpoolStats.Resets.
func (s *Spool) Reset(next uint64, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resets++
	var unacked uint64
	if first := s.firstLocked(); first != 0 {
		unacked = s.next - first
	}
	s.o.Logger.Warn("spool reset: every held record dropped and the numbering moved",
		"reason", reason, "from_next", s.next, "to_next", next, "unacked_dropped", unacked, "resets_total", s.resets)
	if s.act != nil {
		s.act.Close()
		s.act = nil
	}
	for _, sg := range s.segs {
		os.Remove(sg.path)
	}
	s.segs = nil
	s.mem, s.memBytes = s.mem[:0], 0
	s.next = next
	s.acked = next - 1
	s.ackDirty = true
	if s.dir == "" {
		return nil
	}
	if err := s.syncLocked(); err != nil {
		return err
	}
	// With every segment gone the ack is the only record of the sequence:
	// make it durable.
	if err := s.ackF.Sync(); err != nil {
		return fmt.Errorf("spool: sync ack: %w", err)
	}
	return nil
}

// NextSeq returns the sequence the next Append must carry.
func (s *Spool) NextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// Stats returns the spool's counters.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SpoolStats{Next: s.next, Acked: s.acked, Dropped: s.dropped, Resets: s.resets, Repaired: s.repaired}
	st.First = s.firstLocked()
	if st.First != 0 {
		st.Unacked = s.next - max(st.First, s.acked+1)
	}
	if s.dir == "" {
		st.Bytes = s.memBytes
	} else {
		for _, sg := range s.segs {
			st.Bytes += sg.size
		}
	}
	return st
}

func (s *Spool) firstLocked() uint64 {
	var first uint64
	if s.dir == "" {
		if len(s.mem) > 0 {
			first = s.mem[0].seq
		}
	} else if len(s.segs) > 0 && s.segs[0].last >= s.segs[0].first {
		first = s.segs[0].first
	}
	if first != 0 && first <= s.acked {
		first = s.acked + 1
	}
	if first >= s.next {
		return 0
	}
	return first
}

// ReadFrom calls fn with up to max records, in order, starting at the first
// held sequence ≥ from. payload is valid only during the call. It returns the
// sequence after the last record passed to fn (from, when none was).
func (s *Spool) ReadFrom(from uint64, maxRecs int, fn func(seq uint64, payload []byte) error) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := from
	count := 0
	want := max(from, s.acked+1)
	if want >= s.next {
		return next, nil
	}
	// From memory when the cache reaches back far enough.
	if len(s.mem) > 0 && want >= s.mem[0].seq || s.dir == "" {
		for _, r := range s.mem {
			if r.seq < from || r.seq <= s.acked {
				continue
			}
			if count == maxRecs {
				break
			}
			if err := fn(r.seq, r.payload); err != nil {
				return next, err
			}
			next, count = r.seq+1, count+1
		}
		return next, nil
	}
	for _, sg := range s.segs {
		if sg.last < from || sg.last < sg.first || count == maxRecs {
			continue
		}
		f, err := os.Open(sg.path)
		if err != nil {
			return next, fmt.Errorf("spool: read: %w", err)
		}
		var ferr error
		err = scanRecords(bufio.NewReaderSize(f, 64<<10), func(seq uint64, p []byte, _ int64) bool {
			if seq < from || seq <= s.acked {
				return true
			}
			if count == maxRecs {
				return false
			}
			if ferr = fn(seq, p); ferr != nil {
				return false
			}
			next, count = seq+1, count+1
			return true
		})
		f.Close()
		if ferr != nil {
			return next, ferr
		}
		if err != nil {
			return next, fmt.Errorf("spool: read: %w", err)
		}
	}
	return next, nil
}

func (s *Spool) syncLocked() error {
	if s.dir == "" {
		return nil
	}
	s.lastSync = s.o.Clock()
	if s.dirty && s.act != nil {
		if err := s.act.Sync(); err != nil {
			return fmt.Errorf("spool: sync: %w", err)
		}
		s.dirty = false
	}
	if s.ackDirty {
		if err := s.writeAck(); err != nil {
			return fmt.Errorf("spool: write ack: %w", err)
		}
		s.ackDirty = false
	}
	return nil
}

// writeAck overwrites the ack file in place, without fsync. The ack needs no
// durability: a lost or torn ack (its CRC fails, so it reads as none) only
// makes the collector resend records the aggregator already has, and the
// aggregator drops those by sequence. Records themselves are synced above.
// At thousands of agents per process (fleettop mock) this was the largest
// cost of a sync group: open, write, fsync and rename of a temporary file.
func (s *Spool) writeAck() error {
	if s.ackF == nil {
		f, err := os.OpenFile(filepath.Join(s.dir, spoolAckFile), os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			return err
		}
		s.ackF = f
	}
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:], s.acked)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], crcTable))
	_, err := s.ackF.WriteAt(b[:], 0)
	return err
}

// Close syncs and closes the spool.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.syncLocked()
	if s.act != nil {
		if cerr := s.act.Close(); err == nil {
			err = cerr
		}
		s.act = nil
	}
	if s.ackF != nil {
		if cerr := s.ackF.Close(); err == nil {
			err = cerr
		}
		s.ackF = nil
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
