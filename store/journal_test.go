package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"testing"
)

// journalNode is one node record of a journal entry as drain writes it.
type journalNode struct {
	id              string
	seq             uint64
	firstMs, lastMs int64
	buckets         []bucket
}

// appendNodeV0 writes n in the journal's first format (the release before
// format markers), as drain wrote it then.
func appendNodeV0(dst []byte, n *journalNode) []byte {
	dst = appendString(dst, n.id)
	dst = binary.AppendUvarint(dst, n.seq)
	dst = binary.AppendVarint(dst, n.firstMs)
	dst = binary.AppendVarint(dst, n.lastMs)
	dst = binary.AppendUvarint(dst, uint64(len(n.buckets)))
	for i := range n.buckets {
		dst = appendBucketV0(dst, &n.buckets[i])
	}
	return dst
}

// appendBucketV0 is the first format's bucket encoder.
func appendBucketV0(dst []byte, b *bucket) []byte {
	dst = binary.AppendUvarint(dst, uint64(b.idx))
	dst = binary.AppendVarint(dst, b.minute/minuteMs)
	dst = binary.AppendUvarint(dst, uint64(b.samples))
	dst = binary.AppendVarint(dst, b.reportedMs)
	dst = binary.AppendUvarint(dst, uint64(b.utilN))
	if b.utilN > 0 {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(b.utilSum))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(b.utilMax))
	}
	dst = binary.AppendUvarint(dst, uint64(b.memN))
	if b.memN > 0 {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(b.memSum))
	}
	dst = binary.AppendUvarint(dst, uint64(b.powerN))
	if b.powerN > 0 {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(b.powerSum))
	}
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(b.energy))
	if b.tempSet {
		dst = append(dst, 1)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(b.tempMax))
	} else {
		dst = append(dst, 0)
	}
	dst = appendString(dst, b.job)
	return appendString(dst, b.team)
}

const m0 = int64(1_772_359_200_000) // 2026-03-01 10:00 UTC

// journalV0Nodes is what journalV0Golden holds.
var journalV0Nodes = []journalNode{
	{id: "node-00001", seq: 42, firstMs: m0 - 5_000, lastMs: m0 + 61_000, buckets: []bucket{
		{idx: 0, minute: m0, samples: 2, reportedMs: 2_000, utilN: 2, utilSum: 0.75, utilMax: 0.5,
			memN: 2, memSum: 2 << 30, powerN: 2, powerSum: 612.5, energy: 612.5, tempMax: 61, tempSet: true,
			job: "train-7", team: "vision"},
		{idx: 1, minute: m0 + minuteMs, samples: 1, reportedMs: 1_000, utilN: 1, utilSum: 0.37, utilMax: 0.37,
			powerN: 1, powerSum: 300.123, energy: 300.123, job: "train-7", team: "vision"},
		{idx: 7, minute: m0, samples: 1, reportedMs: 5_000, team: "ml"},
	}},
	{id: "n2", seq: 7}, // a sequence only: no times, no buckets
}

// journalV0Golden is an entry written by the first format's encoder (the
// release before format markers), kept byte for byte: such an entry may be
// left by a crash before an upgrade and must still replay.
const journalV0Golden = "" +
	"0a6e6f64652d30303030312af0e5b88d956790edc08d95670300f0ef951c02a0" +
	"1f02000000000000e83f000000000000e03f02000000000000e0410200000000" +
	"002483400000000000248340010000000000804e4007747261696e2d37067669" +
	"73696f6e01f2ef951c01d00f01ae47e17a14aed73fae47e17a14aed73f000187" +
	"16d9cef7c172408716d9cef7c172400007747261696e2d3706766973696f6e07" +
	"f0ef951c01904e00000000000000000000000000026d6c026e3207000000"

// decodeEntry decodes one journal entry into a fresh pending set.
func decodeEntry(t *testing.T, data []byte) pending {
	t.Helper()
	p := newPending()
	if err := decodeJournal(data, &p); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return p
}

// checkPending checks that p holds exactly nodes.
func checkPending(t *testing.T, p pending, nodes []journalNode) {
	t.Helper()
	if len(p.nodes) != len(nodes) {
		t.Fatalf("%d nodes decoded, want %d", len(p.nodes), len(nodes))
	}
	for _, n := range nodes {
		pn := p.nodes[n.id]
		if pn == nil {
			t.Fatalf("node %q missing", n.id)
		}
		if pn.seq != n.seq || pn.firstMs != n.firstMs || pn.lastMs != n.lastMs {
			t.Errorf("node %q: seq %d, times %d–%d; want %d, %d–%d", n.id, pn.seq, pn.firstMs, pn.lastMs, n.seq, n.firstMs, n.lastMs)
		}
		if len(pn.buckets) != len(n.buckets) {
			t.Fatalf("node %q: %d buckets, want %d", n.id, len(pn.buckets), len(n.buckets))
		}
		for i := range n.buckets {
			if got, want := pn.buckets[i], n.buckets[i]; !sameBucket(&got, &want) {
				t.Errorf("node %q bucket %d:\n got %+v\nwant %+v", n.id, i, got, want)
			}
		}
	}
}

// sameBucket compares buckets with floats bit for bit (NaN and -0 included).
func sameBucket(a, b *bucket) bool {
	bits := func(c *bucket) [6]uint64 {
		return [6]uint64{math.Float64bits(c.utilSum), math.Float64bits(c.utilMax), math.Float64bits(c.memSum),
			math.Float64bits(c.powerSum), math.Float64bits(c.energy), math.Float64bits(c.tempMax)}
	}
	x, y := *a, *b
	x.utilSum, x.utilMax, x.memSum, x.powerSum, x.energy, x.tempMax = 0, 0, 0, 0, 0, 0
	y.utilSum, y.utilMax, y.memSum, y.powerSum, y.energy, y.tempMax = 0, 0, 0, 0, 0, 0
	return x == y && bits(a) == bits(b)
}

func TestJournalV0Replays(t *testing.T) {
	golden, err := hex.DecodeString(journalV0Golden)
	if err != nil {
		t.Fatal(err)
	}
	var enc []byte
	for i := range journalV0Nodes {
		enc = appendNodeV0(enc, &journalV0Nodes[i])
	}
	if !reflect.DeepEqual(enc, golden) {
		t.Fatalf("the first format's encoder no longer writes the golden entry:\n got %x\nwant %x", enc, golden)
	}
	checkPending(t, decodeEntry(t, golden), journalV0Nodes)
}

// corruptions returns damaged copies of a valid entry: every truncation and
// every single-byte change to 0x00, 0xff and 0x80.
func corruptions(data []byte) [][]byte {
	var out [][]byte
	for n := range len(data) {
		out = append(out, data[:n])
	}
	for i := range data {
		for _, v := range []byte{0x00, 0xff, 0x80} {
			c := append([]byte(nil), data...)
			c[i] = v
			out = append(out, c)
		}
	}
	return out
}

// TestJournalCorrupt: a damaged entry never panics the decoder, and a cut
// one (a torn write is impossible in SQLite, but a bad disk is not) fails
// with errJournal.
func TestJournalCorrupt(t *testing.T) {
	golden, _ := hex.DecodeString(journalV0Golden)
	for _, c := range corruptions(golden) {
		p := newPending()
		if err := decodeJournal(c, &p); err != nil && !errors.Is(err, errJournal) {
			t.Fatalf("decode %x: %v, want errJournal", c, err)
		}
	}
	first := len(appendNodeV0(nil, &journalV0Nodes[0]))
	for n := 1; n < len(golden); n++ {
		if n == first {
			continue // a cut between two node records leaves a valid entry
		}
		p := newPending()
		if err := decodeJournal(golden[:n], &p); !errors.Is(err, errJournal) {
			t.Errorf("cut at %d of %d: %v, want errJournal", n, len(golden), err)
		}
	}
}

// FuzzDecodeJournal: whatever the journal table holds, decoding never panics.
func FuzzDecodeJournal(f *testing.F) {
	golden, _ := hex.DecodeString(journalV0Golden)
	f.Add(golden)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := newPending()
		if err := decodeJournal(data, &p); err != nil && !errors.Is(err, errJournal) {
			t.Fatalf("%v, want errJournal", err)
		}
	})
}
