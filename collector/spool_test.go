package collector

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func payloadFor(seq uint64) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("rec-%d;", seq)), int(seq%7)+1)
}

func openT(t *testing.T, dir string, o SpoolOptions) *Spool {
	t.Helper()
	s, err := OpenSpool(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// diskOf returns the disk store under s.
func diskOf(t *testing.T, s *Spool) *diskStore {
	t.Helper()
	d, ok := s.store.(*diskStore)
	if !ok {
		t.Fatalf("spool store is %T, want a disk store", s.store)
	}
	return d
}

func appendN(t *testing.T, s *Spool, n int) {
	t.Helper()
	for range n {
		seq := s.NextSeq()
		if err := s.Append(seq, payloadFor(seq)); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll returns the sequences read from `from` and checks every payload.
func readAll(t *testing.T, s *Spool, from uint64) []uint64 {
	t.Helper()
	var got []uint64
	for {
		next, err := s.ReadFrom(from, 3, func(seq uint64, p []byte) error {
			if !bytes.Equal(p, payloadFor(seq)) {
				t.Fatalf("record %d misread: %q", seq, p)
			}
			got = append(got, seq)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if next == from {
			return got
		}
		from = next
	}
}

func seqRange(a, b uint64) []uint64 {
	var r []uint64
	for i := a; i <= b; i++ {
		r = append(r, i)
	}
	return r
}

func TestSpoolAppendReadAckReopen(t *testing.T) {
	for _, dir := range []string{"", "disk"} {
		t.Run(fmt.Sprintf("dir=%q", dir), func(t *testing.T) {
			if dir != "" {
				dir = t.TempDir()
			}
			o := SpoolOptions{SegmentBytes: 200}
			s := openT(t, dir, o)
			appendN(t, s, 20)
			if err := s.Append(99, []byte("x")); err == nil {
				t.Fatal("out-of-order append accepted")
			}
			if got := readAll(t, s, 1); fmt.Sprint(got) != fmt.Sprint(seqRange(1, 20)) {
				t.Fatalf("read %v", got)
			}
			if got := readAll(t, s, 15); fmt.Sprint(got) != fmt.Sprint(seqRange(15, 20)) {
				t.Fatalf("read from 15: %v", got)
			}
			s.Ack(12)
			if got := readAll(t, s, 1); fmt.Sprint(got) != fmt.Sprint(seqRange(13, 20)) {
				t.Fatalf("after ack: %v", got)
			}
			st := s.Stats()
			if st.First != 13 || st.Next != 21 || st.Unacked != 8 || st.Acked != 12 {
				t.Fatalf("stats %+v", st)
			}
			if dir == "" {
				return
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir, o)
			defer s.Close()
			if got := readAll(t, s, 1); fmt.Sprint(got) != fmt.Sprint(seqRange(13, 20)) {
				t.Fatalf("after reopen: %v", got)
			}
			if s.NextSeq() != 21 {
				t.Fatalf("next %d", s.NextSeq())
			}
			appendN(t, s, 2)
			if got := readAll(t, s, 19); fmt.Sprint(got) != fmt.Sprint(seqRange(19, 22)) {
				t.Fatalf("after reopen+append: %v", got)
			}
		})
	}
}

// TestSpoolTornWrite simulates a writer killed at every byte of its last
// record, and a tail of garbage: reopening must read back exactly the whole
// records before it, never a torn one, and must not lose the ack.
func TestSpoolTornWrite(t *testing.T) {
	src := t.TempDir()
	s := openT(t, src, SpoolOptions{SegmentBytes: 1 << 20})
	appendN(t, s, 10)
	s.Ack(4)
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(src, "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	full, _ := os.ReadFile(segs[0])
	ack, _ := os.ReadFile(filepath.Join(src, spoolAckFile))
	// Record boundaries, to know how many whole records a prefix holds.
	var ends []int
	off := 0
	for off < len(full) {
		n := int(uint32(full[off]) | uint32(full[off+1])<<8 | uint32(full[off+2])<<16 | uint32(full[off+3])<<24)
		off += 8 + n
		ends = append(ends, off)
	}
	whole := func(cut int) uint64 {
		k := sort.SearchInts(ends, cut+1)
		return uint64(k)
	}
	cases := map[string][]byte{}
	for cut := 0; cut <= len(full); cut++ {
		cases[fmt.Sprintf("cut-%d", cut)] = full[:cut]
	}
	garbage := append(append([]byte(nil), full...), 0xff, 0x01, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3)
	cases["garbage-tail"] = garbage
	flipped := append([]byte(nil), full...)
	flipped[len(flipped)-3] ^= 0x40 // corrupt the last record's payload
	cases["flipped-last"] = flipped
	for name, data := range cases {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, filepath.Base(segs[0])), data, 0o640)
		os.WriteFile(filepath.Join(dir, spoolAckFile), ack, 0o640)
		want := uint64(10)
		switch name {
		case "flipped-last":
			want = 9
		case "garbage-tail":
		default:
			var cut int
			fmt.Sscanf(name, "cut-%d", &cut)
			want = whole(cut)
		}
		r, err := OpenSpool(dir, SpoolOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := readAll(t, r, 1)
		var exp []uint64
		if want > 4 {
			exp = seqRange(5, want)
		}
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Fatalf("%s: read %v, want %v", name, got, exp)
		}
		st := r.Stats()
		if st.Acked != 4 || st.Next != max(want, 4)+1 {
			t.Fatalf("%s: stats %+v (want acked 4, next %d)", name, st, max(want, 4)+1)
		}
		// The repaired spool takes new records after the cut and reads them back.
		appendN(t, r, 2)
		r.Close()
		r = openT(t, dir, SpoolOptions{})
		got = readAll(t, r, 1)
		exp = append(exp, max(want, 4)+1, max(want, 4)+2)
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Fatalf("%s: after repair+append read %v, want %v", name, got, exp)
		}
		r.Close()
	}
}

func TestSpoolBoundedDropsOldest(t *testing.T) {
	for _, dir := range []string{"", "disk"} {
		t.Run(fmt.Sprintf("dir=%q", dir), func(t *testing.T) {
			if dir != "" {
				dir = t.TempDir()
			}
			s := openT(t, dir, SpoolOptions{MaxBytes: 1000, SegmentBytes: 250})
			defer s.Close()
			appendN(t, s, 100)
			st := s.Stats()
			if st.Dropped == 0 || st.Bytes > 1000 {
				t.Fatalf("stats %+v: want drops and at most 1000 bytes", st)
			}
			got := readAll(t, s, 1)
			if len(got) == 0 || got[len(got)-1] != 100 || uint64(len(got))+st.Dropped != 100 {
				t.Fatalf("read %v with %d dropped", got, st.Dropped)
			}
			if fmt.Sprint(got) != fmt.Sprint(seqRange(got[0], 100)) {
				t.Fatalf("not contiguous: %v", got)
			}
		})
	}
}

func TestSpoolReset(t *testing.T) {
	dir := t.TempDir()
	var logBuf bytes.Buffer
	s := openT(t, dir, SpoolOptions{Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	appendN(t, s, 3)
	if err := s.Reset(50, "aggregator ahead"); err != nil {
		t.Fatal(err)
	}
	// A reset is never silent: logged with its reason, and counted.
	if st := s.Stats(); st.Resets != 1 {
		t.Fatalf("resets %d, want 1", st.Resets)
	}
	if l := logBuf.String(); !strings.Contains(l, "spool reset") || !strings.Contains(l, `reason="aggregator ahead"`) || !strings.Contains(l, "unacked_dropped=3") {
		t.Fatalf("reset log %q", l)
	}
	appendN(t, s, 1)
	s.Close()
	s = openT(t, dir, SpoolOptions{})
	defer s.Close()
	if got := readAll(t, s, 1); fmt.Sprint(got) != "[50]" {
		t.Fatalf("read %v", got)
	}
}

func TestSpoolGroupsSyncs(t *testing.T) {
	now := time.Unix(1000, 0)
	s := openT(t, t.TempDir(), SpoolOptions{SyncEvery: time.Second, Clock: func() time.Time { return now }})
	defer s.Close()
	appendN(t, s, 3)
	if !diskOf(t, s).dirty {
		t.Fatal("synced before SyncEvery elapsed")
	}
	now = now.Add(time.Second)
	appendN(t, s, 1)
	if diskOf(t, s).dirty {
		t.Fatal("not synced after SyncEvery")
	}
}

func BenchmarkSpoolAppend(b *testing.B) {
	for _, dir := range []string{"", "disk"} {
		b.Run(map[string]string{"": "memory", "disk": "disk"}[dir], func(b *testing.B) {
			if dir != "" {
				dir = b.TempDir()
			}
			s, err := OpenSpool(dir, SpoolOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			p := bytes.Repeat([]byte{0x5a}, 1300) // about one 8-GPU record
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := s.Append(s.NextSeq(), p); err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					s.Ack(s.NextSeq() - 1)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
		})
	}
}

// A fully acknowledged spool restarts at the next sequence: the last
// segment stays to carry it. The ack file is overwritten in place without
// fsync, so a power cut may lose or tear it. That must only cost resending
// acknowledged records (the aggregator drops them by sequence), never
// restart the numbering.
func TestSpoolAckedRestartKeepsSequence(t *testing.T) {
	for _, tc := range []struct {
		ack  string
		read []uint64 // after the restart and one more record
	}{
		{"intact", []uint64{6}},
		{"torn", seqRange(1, 6)},
		{"missing", seqRange(1, 6)},
	} {
		t.Run(tc.ack, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, SpoolOptions{})
			appendN(t, s, 5)
			s.Ack(5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, spoolAckFile)
			switch tc.ack {
			case "torn":
				if err := os.WriteFile(p, []byte{1, 2, 3}, 0o640); err != nil {
					t.Fatal(err)
				}
			case "missing":
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			s = openT(t, dir, SpoolOptions{})
			defer s.Close()
			if s.NextSeq() != 6 {
				t.Fatalf("next %d after restart, want 6", s.NextSeq())
			}
			appendN(t, s, 1)
			if got := readAll(t, s, 1); fmt.Sprint(got) != fmt.Sprint(tc.read) {
				t.Fatalf("read %v, want %v", got, tc.read)
			}
		})
	}
}

// A record the disk refuses keeps its sequence reserved: the numbering moves
// on, so the aggregator counts the loss as a gap instead of the next record
// silently taking its number.
func TestSpoolLossReservesSequence(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, SpoolOptions{})
	appendN(t, s, 3)
	diskOf(t, s).act.Close() // the disk refuses the next write
	if err := s.Append(4, payloadFor(4)); err == nil {
		t.Fatal("append to a closed segment succeeded")
	}
	if st := s.Stats(); st.Next != 5 || st.Dropped != 1 {
		t.Fatalf("after a lost record: next %d dropped %d, want 5 and 1", st.Next, st.Dropped)
	}
	appendN(t, s, 2)
	if got := readAll(t, s, 1); fmt.Sprint(got) != "[1 2 3 5 6]" {
		t.Fatalf("read %v", got)
	}
	s.Lose(7, "could not encode")
	appendN(t, s, 1)
	s.Close()
	s = openT(t, dir, SpoolOptions{})
	defer s.Close()
	if got := readAll(t, s, 1); fmt.Sprint(got) != "[1 2 3 5 6 8]" {
		t.Fatalf("after reopen read %v", got)
	}
	if n := s.NextSeq(); n != 9 {
		t.Fatalf("next %d after reopen, want 9", n)
	}
}

// storesUnder opens a Spool over each implementation of spoolStore.
func storesUnder(t *testing.T, o SpoolOptions) map[string]*Spool {
	t.Helper()
	return map[string]*Spool{"memory": openT(t, "", o), "disk": openT(t, t.TempDir(), o)}
}

// TestSpoolStoreContract drives both stores through the spoolStore
// interface, as the Spool does: append, cut, ack, read, reset, counters.
func TestSpoolStoreContract(t *testing.T) {
	for name, s := range storesUnder(t, SpoolOptions{SegmentBytes: 200}) {
		t.Run(name, func(t *testing.T) {
			defer s.Close()
			st := s.store
			for seq := uint64(1); seq <= 10; seq++ {
				if err := st.append(seq, payloadFor(seq)); err != nil {
					t.Fatal(err)
				}
				s.c.next = seq + 1
			}
			if st.first() != 1 || st.bytes() == 0 {
				t.Fatalf("first %d bytes %d after 10 appends", st.first(), st.bytes())
			}
			read := func(want, limit uint64, maxRecs int) (got []uint64, next uint64) {
				unlocked := 0
				next, err := st.read(want, limit, maxRecs, func(seq uint64, p []byte) error {
					if !bytes.Equal(p, payloadFor(seq)) {
						t.Fatalf("record %d misread", seq)
					}
					got = append(got, seq)
					return nil
				}, func() { unlocked++ })
				if err != nil || unlocked > 1 {
					t.Fatalf("read: %v, unlocked %d times", err, unlocked)
				}
				return got, next
			}
			if got, next := read(3, 8, 100); fmt.Sprint(got) != fmt.Sprint(seqRange(3, 7)) || next != 8 {
				t.Fatalf("read [3,8): %v next %d", got, next)
			}
			if got, next := read(2, 11, 2); fmt.Sprint(got) != "[2 3]" || next != 4 {
				t.Fatalf("read 2 from 2: %v next %d", got, next)
			}
			// A lost sequence: the store is told, and the next record
			// follows the gap.
			st.cut()
			s.c.next = 12
			if err := st.append(12, payloadFor(12)); err != nil {
				t.Fatal(err)
			}
			s.c.next = 13
			if got, _ := read(9, 13, 100); fmt.Sprint(got) != "[9 10 12]" {
				t.Fatalf("read across a gap: %v", got)
			}
			s.c.acked = 10
			st.ack()
			if got, _ := read(11, 13, 100); fmt.Sprint(got) != "[12]" {
				t.Fatalf("read after ack: %v", got)
			}
			s.c.next, s.c.acked = 40, 39
			if err := st.reset(); err != nil {
				t.Fatal(err)
			}
			if st.first() != 0 || st.bytes() != 0 {
				t.Fatalf("after reset: first %d bytes %d", st.first(), st.bytes())
			}
			if got, next := read(1, 40, 100); got != nil || next != 1 {
				t.Fatalf("read after reset: %v next %d", got, next)
			}
			if err := st.sync(true); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A read that has to scan segment files does so without the spool's lock:
// sampling (Append) goes on during a long resend. With the lock held, the
// Append inside fn would deadlock.
func TestSpoolDiskReadDoesNotBlockAppend(t *testing.T) {
	s := openT(t, t.TempDir(), SpoolOptions{})
	defer s.Close()
	p := bytes.Repeat([]byte{0x5a}, 4<<10)
	n := int(2 * memCacheBytes / len(p)) // twice what the cache holds
	for range n {
		if err := s.Append(s.NextSeq(), p); err != nil {
			t.Fatal(err)
		}
	}
	if diskOf(t, s).cache.covers(1) {
		t.Fatal("the cache still holds record 1; the read would not touch the disk")
	}
	var got []uint64
	next, err := s.ReadFrom(1, n+10, func(seq uint64, _ []byte) error {
		got = append(got, seq)
		if seq == 1 {
			return s.Append(s.NextSeq(), p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// It reads what was held when it was called, not the record appended
	// during the read.
	if len(got) != n || next != uint64(n)+1 || s.NextSeq() != uint64(n)+2 {
		t.Fatalf("read %d records, next %d, spool next %d; want %d, %d, %d", len(got), next, s.NextSeq(), n, n+1, n+2)
	}
}
