package wire_test

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
	"github.com/fleettop/fleettop/wire/wiretest"
)

// A collector that still speaks protocol 1 is decoded by this build: its
// values (already at the sensors' resolution) arrive unchanged.
func TestDecodesProtocol1Stream(t *testing.T) {
	st := wiretest.NewStream(11, "old-node", 8)
	enc, err := wire.NewEncoderVersion(1)
	if err != nil {
		t.Fatal(err)
	}
	dec := wire.NewDecoder()
	b, err := enc.AppendFrame(nil, &wire.Hello{Proto: 1, Node: st.Node()})
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0xF1 {
		t.Fatalf("protocol-1 hello starts with %#x", b[0])
	}
	f, err := dec.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if h := f.(*wire.Hello); h.Proto != 1 {
		t.Fatalf("hello proto %d", h.Proto)
	}
	for i := range 100 {
		s := st.Next(t0.Add(time.Duration(i)*time.Second + time.Duration(i%7)*time.Millisecond))
		if i%10 == 0 {
			s.ProcsSet = true
			s.Procs = []fleet.Process{{Device: 1, PID: 42, Name: "python", UsedMemory: uint64(i) << 20, Job: fleet.Job{ID: "j"}}}
		}
		want := quantized(s)
		if b, err = enc.AppendFrame(b[:0], &wire.Samples{Samples: []fleet.Sample{s}}); err != nil {
			t.Fatal(err)
		}
		f, err := dec.Decode(b)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if got := f.(*wire.Samples).Samples[0]; !reflect.DeepEqual(cloneSample(got), cloneSample(want)) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	if _, err := wire.NewEncoderVersion(3); err == nil {
		t.Fatal("NewEncoderVersion(3) did not fail")
	}
}

// A frame of the other protocol on an established stream is refused: the
// delta state of the two does not mix.
func TestRefusesMixedProtocols(t *testing.T) {
	st := wiretest.NewStream(12, "n", 2)
	dec := wire.NewDecoder()
	b, _ := wire.NewEncoder().AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{st.Next(t0)}})
	if _, err := dec.Decode(b); err != nil {
		t.Fatal(err)
	}
	old, _ := wire.NewEncoderVersion(1)
	b, _ = old.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{st.Next(t0.Add(time.Second))}})
	_, err := dec.Decode(b)
	wantErr(t, err, wire.ErrMalformed, "protocol 1 frame on a protocol 2 stream")
}

// Protocol 2 skips metrics it does not know (a newer collector's appended
// metrics): each travels as one varint.
func TestSkipsUnknownMetrics(t *testing.T) {
	oneRecord := []any{1, int64(1), int64(1000)}
	// device 0: changed {util, bit 40}, present {util, bit 40}; util +51 %, bit 40 some value
	present := uint64(1) | 1<<40
	hdr := (present << 1) | 1
	b := frame(wire.TypeSamples, append(oneRecord, byte(0), 1, 0, hdr, present, int64(51), uint64(123456))...)
	f, err := wire.NewDecoder().Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	d := f.(*wire.Samples).Samples[0].Devices[0]
	if d.Present != 1 || d.Values[fleet.MetricUtil] != 0.51 {
		t.Fatalf("got present %#x util %v, want util 0.51 only", d.Present, d.Values[fleet.MetricUtil])
	}
}

// Process lists are coded against the previous list: processes that stay,
// change memory (whole MiB or not), come, go and move all round-trip.
func TestProcessListDeltas(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	t.Logf("seed 13")
	enc, dec := wire.NewEncoder(), wire.NewDecoder()
	var procs []fleet.Process
	var buf []byte
	for i := range 2000 {
		switch r.IntN(6) {
		case 0:
			procs = append(procs, fleet.Process{Device: r.IntN(8), PID: r.Uint32(), Name: "p", UsedMemory: r.Uint64(), Job: fleet.Job{ID: "j", Team: "t"}})
		case 1:
			if len(procs) > 0 {
				k := r.IntN(len(procs))
				procs = append(procs[:k:k], procs[k+1:]...)
			}
		case 2:
			r.Shuffle(len(procs), func(a, b int) { procs[a], procs[b] = procs[b], procs[a] })
		}
		procs = append([]fleet.Process(nil), procs...)
		for k := range procs {
			switch r.IntN(4) {
			case 0:
				procs[k].UsedMemory += uint64(r.IntN(100)) << 20
			case 1:
				procs[k].UsedMemory -= uint64(r.IntN(1000))
			case 2:
				procs[k].UsedMemory = r.Uint64()
			}
		}
		s := fleet.Sample{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), ProcsSet: true, Procs: procs}
		var err error
		if buf, err = enc.AppendFrame(buf[:0], &wire.Samples{Samples: []fleet.Sample{s}}); err != nil {
			t.Fatal(err)
		}
		f, err := dec.Decode(buf)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		got := f.(*wire.Samples).Samples[0]
		if want := quantized(s); !reflect.DeepEqual(cloneSample(got), cloneSample(want)) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got.Procs, want.Procs)
		}
		// The caller may repair what it got (wire.SanitizeSampleAfter does):
		// the next list is still decoded against the list that was sent.
		for k := range got.Procs {
			got.Procs[k].UsedMemory, got.Procs[k].Name = 0, "repaired"
		}
	}
}

// In a frame of several records, each record's process list is its own.
func TestProcessListsInOneFrame(t *testing.T) {
	enc, dec := wire.NewEncoder(), wire.NewDecoder()
	var recs []fleet.Sample
	for i := range 3 {
		recs = append(recs, fleet.Sample{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), ProcsSet: true,
			Procs: []fleet.Process{{Device: i, PID: uint32(100 + i), Name: "p", UsedMemory: uint64(i+1) << 30}}})
	}
	b, err := enc.AppendFrame(nil, &wire.Samples{Samples: recs})
	if err != nil {
		t.Fatal(err)
	}
	f, err := dec.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range f.(*wire.Samples).Samples {
		if want := quantized(recs[i]); !reflect.DeepEqual(got.Procs, want.Procs) {
			t.Fatalf("record %d: got %+v, want %+v", i, got.Procs, want.Procs)
		}
	}
}
