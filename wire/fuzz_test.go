package wire_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
	"github.com/fleettop/fleettop/wire/wiretest"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus under testdata/fuzz")

// cloneFrame deep-copies a decoded frame out of the decoder's buffers.
func cloneFrame(f wire.Frame) wire.Frame {
	switch f := f.(type) {
	case *wire.Samples:
		c := &wire.Samples{}
		for _, s := range f.Samples {
			c.Samples = append(c.Samples, cloneSample(s))
		}
		return c
	case *wire.Welcome:
		c := *f
		return &c
	case *wire.Ack:
		c := *f
		return &c
	case *wire.Close:
		c := *f
		return &c
	}
	return f // *Hello is never aliased
}

// FuzzDecode feeds two frames to one decoder (so the second is decoded
// against the delta state the first left). Whatever decodes must re-encode
// and decode to the same frame.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, a, b []byte) {
		dec := wire.NewDecoder()
		fa, err := dec.Decode(a)
		if err == nil {
			got := cloneFrame(fa)
			enc, err := wire.NewEncoder().AppendFrame(nil, got)
			if err != nil {
				t.Fatalf("decoded frame does not re-encode: %v\n%+v", err, got)
			}
			again, err := wire.NewDecoder().Decode(enc)
			if err != nil {
				t.Fatalf("re-encoded frame does not decode: %v", err)
			}
			if !reflect.DeepEqual(cloneFrame(again), got) {
				t.Fatalf("round trip changed the frame:\n got %+v\nwant %+v", again, got)
			}
		}
		_, _ = dec.Decode(b)
	})
}

// FuzzDecodeRecord checks that spool records never panic the decoder and
// that whatever decodes round-trips.
func FuzzDecodeRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var s fleet.Sample
		if err := wire.DecodeRecord(b, &s); err != nil {
			return
		}
		enc, err := wire.AppendRecord(nil, &s)
		if err != nil {
			t.Fatalf("decoded record does not re-encode: %v\n%+v", err, s)
		}
		var again fleet.Sample
		if err := wire.DecodeRecord(enc, &again); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", again, s)
		}
	})
}

// seedCorpus builds the fuzz seeds from real encoded frames of a realistic
// stream, so the fuzzer starts from deep inside the format.
func seedCorpus(t *testing.T) map[string][][]byte {
	st := wiretest.NewStream(5, "seed-node", 4)
	enc := wire.NewEncoder()
	must := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hello := must(enc.AppendFrame(nil, &wire.Hello{Proto: wire.Version, Node: st.Node()}))
	first := st.Next(t0)
	first.Events = []fleet.Event{{Time: t0, Kind: fleet.EventXID, Severity: fleet.SevCritical, Device: 1, Code: 79, Message: "GPU has fallen off the bus"}}
	s1 := must(enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{first}}))
	second := st.Next(t0.Add(time.Second))
	second.Devices[2].Clear(fleet.MetricPower)
	second.Devices = second.Devices[1:]
	s2 := must(enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{second, st.Next(t0.Add(2 * time.Second))}}))
	welcome := must(enc.AppendFrame(nil, &wire.Welcome{Proto: wire.Version, ResumeFrom: 42}))
	ack := must(enc.AppendFrame(nil, &wire.Ack{Seq: 41}))
	closeF := must(enc.AppendFrame(nil, &wire.Close{Code: wire.CloseConflict, Reason: "another session took over"}))
	status := must(enc.AppendFrame(nil, &wire.Status{Sources: []fleet.SourceStatus{{Name: "nvml", Reason: "driver/library version mismatch"}, {Name: "host", Up: true}}}))
	rec1 := must(wire.AppendRecord(nil, &first))
	rec2 := must(wire.AppendRecord(nil, &second))
	return map[string][][]byte{
		"FuzzDecode/hello-then-samples": {hello, s1},
		"FuzzDecode/samples-then-delta": {s1, s2},
		"FuzzDecode/welcome-then-ack":   {welcome, ack},
		"FuzzDecode/close":              {closeF, nil},
		"FuzzDecode/status":             {status, nil},
		"FuzzDecodeRecord/with-events":  {rec1},
		"FuzzDecodeRecord/layout":       {rec2},
	}
}

func corpusFile(values [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range values {
		fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
	}
	return b.Bytes()
}

// TestFuzzSeedCorpus keeps testdata/fuzz in step with the encoder: the seeds
// are golden files, so a change of the encoding shows up here (refresh with
// go test ./wire -run TestFuzzSeedCorpus -update).
func TestFuzzSeedCorpus(t *testing.T) {
	for name, values := range seedCorpus(t) {
		path := filepath.Join("testdata", "fuzz", name)
		want := corpusFile(values)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create the seed corpus)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: the encoding changed (run with -update)", path)
		}
	}
}
