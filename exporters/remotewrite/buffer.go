package remotewrite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The on-disk buffer: an append-only log of records, one per interval, in
// numbered segment files, and a cursor at the first record not yet
// delivered. Each record is
//
//	u32 payload length | u32 CRC-32C of payload | payload
//	payload: i64 timestamp (ms) | u32 requests | per request: u32 samples | u32 length | snappy-compressed WriteRequest
//
// A segment is deleted once the cursor has passed it; when the buffer
// outgrows its limit the oldest segment goes, counted as dropped samples.

var crcTable = crc32.MakeTable(crc32.Castagnoli)

const (
	recHeader  = 8
	cursorFile = "cursor"
	segSuffix  = ".seg"
)

type pos struct {
	seg uint64
	off int64
}

// record is one interval's requests.
type record struct {
	ts      int64 // ms
	reqs    [][]byte
	samples []int
}

func (r *record) total() int {
	n := 0
	for _, s := range r.samples {
		n += s
	}
	return n
}

type buffer struct {
	dir      string
	maxBytes int64
	segMax   int64

	mu      sync.Mutex
	segs    []uint64         // on disk, ascending; the last is being written
	sizes   map[uint64]int64 // bytes per segment
	w       *os.File
	cursor  pos
	pending int // records at or after the cursor
	total   int64
	notify  chan struct{}
}

// openBuffer opens (or creates) the buffer in dir and starts a new segment.
func openBuffer(dir string, maxBytes int64) (*buffer, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	b := &buffer{dir: dir, maxBytes: maxBytes, segMax: 64 << 20, sizes: map[uint64]int64{}, notify: make(chan struct{}, 1)}
	if maxBytes/4 < b.segMax {
		b.segMax = max(maxBytes/4, 1<<16)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		seg, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		b.segs = append(b.segs, seg)
		b.sizes[seg] = info.Size()
		b.total += info.Size()
	}
	slices.Sort(b.segs)
	if data, err := os.ReadFile(filepath.Join(dir, cursorFile)); err == nil && len(data) == 16 {
		b.cursor = pos{binary.LittleEndian.Uint64(data), int64(binary.LittleEndian.Uint64(data[8:]))}
	}
	if len(b.segs) > 0 && (b.cursor.seg < b.segs[0] || !slices.Contains(b.segs, b.cursor.seg)) {
		b.cursor = pos{seg: b.segs[0]}
	}
	for _, seg := range b.segs {
		if seg < b.cursor.seg {
			continue
		}
		from := int64(0)
		if seg == b.cursor.seg {
			from = b.cursor.off
		}
		n, _ := b.countRecords(seg, from)
		b.pending += n
	}
	next := uint64(1)
	if len(b.segs) > 0 {
		next = b.segs[len(b.segs)-1] + 1
	}
	if len(b.segs) == 0 {
		b.cursor = pos{seg: next}
	}
	if err := b.startSegment(next); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *buffer) segPath(seg uint64) string {
	return filepath.Join(b.dir, fmt.Sprintf("%010d%s", seg, segSuffix))
}

// startSegment opens segment seg for appending. Caller holds b.mu (or owns b).
func (b *buffer) startSegment(seg uint64) error {
	f, err := os.OpenFile(b.segPath(seg), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	if b.w != nil {
		_ = b.w.Close()
	}
	b.w = f
	b.segs = append(b.segs, seg)
	b.sizes[seg] = 0
	return nil
}

// countRecords counts the whole records of seg from off on.
func (b *buffer) countRecords(seg uint64, off int64) (records int, samples int) {
	f, err := os.Open(b.segPath(seg))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	for {
		rec, n, err := readRecord(f, off)
		if err != nil {
			return records, samples
		}
		records++
		samples += rec.total()
		off += n
	}
}

// append writes one record and syncs it; it returns the samples dropped to
// keep the buffer under its limit.
func (b *buffer) append(r *record) (dropped int, err error) {
	payload := encodeRecord(r)
	buf := make([]byte, recHeader, recHeader+len(payload))
	binary.LittleEndian.PutUint32(buf, uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(payload, crcTable))
	buf = append(buf, payload...)
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.segs[len(b.segs)-1]
	if b.sizes[cur] > 0 && b.sizes[cur]+int64(len(buf)) > b.segMax {
		if err := b.startSegment(cur + 1); err != nil {
			return 0, err
		}
		cur++
	}
	if _, err := b.w.Write(buf); err != nil {
		return 0, err
	}
	if err := b.w.Sync(); err != nil {
		return 0, err
	}
	b.sizes[cur] += int64(len(buf))
	b.total += int64(len(buf))
	b.pending++
	for b.total > b.maxBytes && len(b.segs) > 1 {
		dropped += b.dropOldest()
	}
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return dropped, nil
}

// dropOldest deletes the oldest segment, moving the cursor past it.
// Caller holds b.mu.
func (b *buffer) dropOldest() (dropped int) {
	seg := b.segs[0]
	if b.cursor.seg <= seg {
		from := int64(0)
		if b.cursor.seg == seg {
			from = b.cursor.off
		}
		n, s := b.countRecords(seg, from)
		b.pending -= n
		dropped = s
		b.cursor = pos{seg: b.segs[1]}
		b.saveCursor()
	}
	b.removeSeg(seg)
	return dropped
}

func (b *buffer) removeSeg(seg uint64) {
	_ = os.Remove(b.segPath(seg))
	b.total -= b.sizes[seg]
	delete(b.sizes, seg)
	b.segs = slices.DeleteFunc(b.segs, func(s uint64) bool { return s == seg })
}

// next reads the record at the cursor: ok false when there is none yet.
// A torn or corrupt record (a crash while writing) skips the rest of its
// segment.
func (b *buffer) next() (r *record, next pos, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		c := b.cursor
		if !slices.Contains(b.segs, c.seg) {
			return nil, c, false
		}
		last := c.seg == b.segs[len(b.segs)-1]
		if c.off < b.sizes[c.seg] {
			f, err := os.Open(b.segPath(c.seg))
			if err == nil {
				rec, n, err := readRecord(f, c.off)
				f.Close()
				if err == nil {
					return rec, pos{c.seg, c.off + n}, true
				}
			}
			if last {
				return nil, c, false // being written: cannot happen under b.mu; wait for more
			}
		} else if last {
			return nil, c, false
		}
		// end (or unreadable rest) of a finished segment: on to the next
		i := slices.Index(b.segs, c.seg)
		b.cursor = pos{seg: b.segs[i+1]}
		b.removeSeg(c.seg)
		b.saveCursor()
	}
}

// commit moves the cursor past a delivered (or dropped) record.
func (b *buffer) commit(p pos) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.seg < b.cursor.seg || p.seg == b.cursor.seg && p.off <= b.cursor.off {
		return // the buffer dropped it meanwhile
	}
	b.cursor = p
	b.pending--
	b.saveCursor()
}

// saveCursor writes the cursor atomically. Caller holds b.mu. A cursor lost
// in a crash only resends what was delivered (receivers accept duplicates).
func (b *buffer) saveCursor() {
	var data [16]byte
	binary.LittleEndian.PutUint64(data[:], b.cursor.seg)
	binary.LittleEndian.PutUint64(data[8:], uint64(b.cursor.off))
	tmp := filepath.Join(b.dir, cursorFile+".tmp")
	if os.WriteFile(tmp, data[:], 0o640) == nil {
		_ = os.Rename(tmp, filepath.Join(b.dir, cursorFile))
	}
}

// stats returns the records pending and the bytes on disk.
func (b *buffer) stats() (pending int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending, b.total
}

func (b *buffer) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.w == nil {
		return nil
	}
	err := b.w.Close()
	b.w = nil
	return err
}

func encodeRecord(r *record) []byte {
	n := 12
	for _, q := range r.reqs {
		n += 8 + len(q)
	}
	p := make([]byte, 0, n)
	p = binary.LittleEndian.AppendUint64(p, uint64(r.ts))
	p = binary.LittleEndian.AppendUint32(p, uint32(len(r.reqs)))
	for i, q := range r.reqs {
		p = binary.LittleEndian.AppendUint32(p, uint32(r.samples[i]))
		p = binary.LittleEndian.AppendUint32(p, uint32(len(q)))
		p = append(p, q...)
	}
	return p
}

var errCorrupt = errors.New("corrupt record")

// readRecord reads the record at off; it returns the bytes it spans.
func readRecord(f *os.File, off int64) (*record, int64, error) {
	var h [recHeader]byte
	if _, err := f.ReadAt(h[:], off); err != nil {
		return nil, 0, err
	}
	n := binary.LittleEndian.Uint32(h[:])
	if n < 12 || n > 1<<31 {
		return nil, 0, errCorrupt
	}
	p := make([]byte, n)
	if _, err := f.ReadAt(p, off+recHeader); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, io.ErrUnexpectedEOF
		}
		return nil, 0, err
	}
	if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(h[4:]) {
		return nil, 0, errCorrupt
	}
	r := &record{ts: int64(binary.LittleEndian.Uint64(p))}
	k := int(binary.LittleEndian.Uint32(p[8:]))
	p = p[12:]
	for i := 0; i < k; i++ {
		if len(p) < 8 {
			return nil, 0, errCorrupt
		}
		s, l := binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:])
		p = p[8:]
		if uint32(len(p)) < l {
			return nil, 0, errCorrupt
		}
		r.samples = append(r.samples, int(s))
		r.reqs = append(r.reqs, p[:l:l])
		p = p[l:]
	}
	return r, int64(recHeader) + int64(n), nil
}
