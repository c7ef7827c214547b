package wire_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
	"github.com/fleettop/fleettop/wire/wiretest"
)

// frame builds raw frame bytes: header then the given parts, each a byte,
// an int (uvarint), an int64 (zig-zag varint) or a string (length-prefixed).
func frame(t wire.Type, parts ...any) []byte { return frameV(wire.Version, t, parts...) }

// frameV is frame for protocol version v.
func frameV(v byte, t wire.Type, parts ...any) []byte {
	b := []byte{0xF0 | v, byte(t)}
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case int:
			b = binary.AppendUvarint(b, uint64(p))
		case uint64:
			b = binary.AppendUvarint(b, p)
		case int64:
			b = binary.AppendVarint(b, p)
		case string:
			b = binary.AppendUvarint(b, uint64(len(p)))
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic(fmt.Sprintf("frame: part %T", p))
		}
	}
	return b
}

// helloBody is a minimal Hello body up to (not including) the labels.
func helloHead() []any {
	return []any{1, "id", "", "", "", "", "", "", int64(0), "", "", byte(0)}
}

func TestDecodeRejects(t *testing.T) {
	oneRecord := []any{1, int64(1), int64(1000)}
	hello := func(tail ...any) []byte { return frame(wire.TypeHello, append(helloHead(), tail...)...) }
	big := make([]byte, wire.MaxFrameSize+1)
	big[0], big[1] = 0xF0|wire.Version, byte(wire.TypeAck)
	for _, tc := range []struct {
		name     string
		in       []byte
		sentinel error
		msg      string
	}{
		{"empty", nil, wire.ErrMalformed, "shorter than its 2-byte header"},
		{"bad magic", []byte{0x12, 3}, wire.ErrMalformed, "not a fleettop frame"},
		{"record as frame", []byte{0xE0 | wire.Version, 3}, wire.ErrMalformed, "not a fleettop frame"},
		{"future version", []byte{0xF3, 3, 1}, wire.ErrVersion, "version 3, this build speaks 1 to 2"},
		{"version 0", []byte{0xF0, 3, 1}, wire.ErrVersion, "version 0, this build speaks 1 to 2"},
		{"unknown type", []byte{0xF1, 9}, wire.ErrMalformed, "unknown frame type 9"},
		{"too big", big, wire.ErrTooBig, "exceeds 1048576"},
		{"no records", frame(wire.TypeSamples, 0), wire.ErrMalformed, "samples: no records"},
		{"too many records", frame(wire.TypeSamples, 300), wire.ErrTooBig, "samples: record count 300 exceeds 256"},
		{"count beyond input", frame(wire.TypeSamples, 200), wire.ErrMalformed, "record count 200 exceeds the 0 bytes left"},
		{"too many devices", frame(wire.TypeSamples, append(oneRecord, byte(0), 300, make([]byte, 400))...), wire.ErrTooBig, "record 0: device count 300 exceeds 64"},
		{"device index", frame(wire.TypeSamples, append(oneRecord, byte(0), 1, 70, 0)...), wire.ErrMalformed, "device index 70 outside 0..63"},
		{"device repeated", frame(wire.TypeSamples, append(oneRecord, byte(0), 2, 3, 3, 0, 0)...), wire.ErrMalformed, "device index 3 repeated"},
		{"record flags", frame(wire.TypeSamples, append(oneRecord, byte(0x30))...), wire.ErrMalformed, "unknown record flags 0x30"},
		{"present bits v1", frameV(1, wire.TypeSamples, append(oneRecord, byte(0), 1, 0, 1, 1<<31)...), wire.ErrMalformed, "device 0: present mask 0x80000000 has unknown metric bits"},
		{"present bit 63", frame(wire.TypeSamples, append(oneRecord, byte(0), 1, 0, 1, uint64(1)<<63)...), wire.ErrMalformed, "device 0: present mask 0x8000000000000000 has unknown metric bits"},
		{"change outside present", frame(wire.TypeSamples, append(oneRecord, byte(0), 1, 5, 2)...), wire.ErrMalformed, "device 5: change mask 0x1 outside present mask 0x0"},
		{"value range", frame(wire.TypeSamples, append(oneRecord, byte(0), 1, 0, 3, 1, int64(1)<<54)...), wire.ErrMalformed, "device 0: util out of range"},
		{"host bits v1", frameV(1, wire.TypeSamples, append(oneRecord, byte(1), 0, 1, 1<<9)...), wire.ErrMalformed, "host: present mask 0x200"},
		{"process tag", frame(wire.TypeSamples, append(oneRecord, byte(2), 0, 1, byte(7))...), wire.ErrMalformed, "process 0: unknown process tag 7"},
		{"process not sent", frame(wire.TypeSamples, append(oneRecord, byte(2), 0, 1, byte(1))...), wire.ErrMalformed, "refers to a previous process that was not sent"},
		{"empty events", frame(wire.TypeSamples, append(oneRecord, byte(4), 0, 0)...), wire.ErrMalformed, "events flagged but none follow"},
		{"too many events", frame(wire.TypeSamples, append(oneRecord, byte(4), 0, 257)...), wire.ErrTooBig, "event count 257 exceeds 256"},
		{"event device", frame(wire.TypeSamples, append(oneRecord, byte(4), 0, 1, int64(0), "xid", "critical", int64(-2), int64(79), "")...), wire.ErrMalformed, "event 0: event device -2 outside -1..63"},
		{"too many procs", frame(wire.TypeSamples, append(oneRecord, byte(2), 0, 1025)...), wire.ErrTooBig, "process count 1025 exceeds 1024"},
		{"pid", frame(wire.TypeSamples, append(oneRecord, byte(2), 0, 1, byte(0), int64(0), uint64(1)<<33, "", 0, "", "", "", "")...), wire.ErrMalformed, "pid 8589934592 exceeds 32 bits"},
		{"long string", frame(wire.TypeSamples, append(oneRecord, byte(2), 0, 1, byte(0), int64(0), 1, strings.Repeat("x", 2000))...), wire.ErrTooBig, "process 0: name length 2000 exceeds 1024"},
		{"trailing", frame(wire.TypeAck, 1, int64(5), byte(0)), wire.ErrMalformed, "ack: 1 trailing bytes"},
		{"trailing clock", frame(wire.TypeClock, int64(0), int64(0), int64(5), byte(0)), wire.ErrMalformed, "clock: 1 trailing bytes"},
		{"short clock", frame(wire.TypeClock, int64(0), int64(0)), wire.ErrMalformed, "clock:"},
		{"trailing samples", frame(wire.TypeSamples, append(oneRecord, byte(0), 0, byte(9))...), wire.ErrMalformed, "samples: 1 trailing bytes"},
		{"varint overflow", frame(wire.TypeAck, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}), wire.ErrMalformed, "overflows 64 bits"},
		{"close code", frame(wire.TypeClose, 70000, ""), wire.ErrMalformed, "close: code 70000 exceeds 65535"},
		{"close reason", frame(wire.TypeClose, 1000, strings.Repeat("r", 1025)), wire.ErrTooBig, "close: reason length 1025 exceeds 1024"},
		{"welcome proto", frame(wire.TypeWelcome, 1<<17, 1), wire.ErrMalformed, "welcome: protocol 131072"},
		{"truncated ack", frame(wire.TypeAck, []byte{0x80}), wire.ErrMalformed, "ack: truncated at byte 3"},
		{"labels order", hello(2, "b", "x", "a", "y"), wire.ErrMalformed, `hello: label "a" out of order`},
		{"labels repeated", hello(2, "a", "x", "a", "y"), wire.ErrMalformed, `label "a" out of order or repeated`},
		{"too many labels", hello(65), wire.ErrTooBig, "hello: label count 65 exceeds 64"},
		{"lease flags", frame(wire.TypeHello, 1, "id", "", "", "", "", "", "", int64(0), "", "", byte(8)), wire.ErrMalformed, "unknown lease flags 0x08"},
		{"hello devices", hello(0, "", "", "", "", 65), wire.ErrTooBig, "hello: device count 65 exceeds 64"},
		{"hello device repeated", hello(0, "", "", "", "", 2, 1, "u", "nvidia", "m", "", 0, int64(0), byte(0), 1), wire.ErrMalformed, "device index 1 repeated"},
		{"hello device flags", hello(0, "", "", "", "", 1, 1, "u", "nvidia", "m", "", 0, int64(0), byte(4)), wire.ErrMalformed, "device 1: unknown device flags 0x04"},
		{"hello lease gpus", hello(0, "", "", "", "", 0, 65, 0), wire.ErrMalformed, "hello: lease gpus 65 exceeds 64"},
		{"hello sources", hello(0, "", "", "", "", 0, 8, 33), wire.ErrTooBig, "hello: source count 33 exceeds 32"},
		{"status flags", frame(wire.TypeStatus, 1, "nvml", byte(4), ""), wire.ErrMalformed, "status: source 0: unknown source flags 0x04"},
		{"status trailing", frame(wire.TypeStatus, 0, byte(1)), wire.ErrMalformed, "status: 1 trailing bytes"},
		{"hello MIG instance without profile", hello(0, "", "", "", "", 1, 1, "u", "nvidia", "m", "", 0, int64(0), byte(2), 0, 1, 0, ""), wire.ErrMalformed, "empty profile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wire.NewDecoder().Decode(tc.in)
			wantErr(t, err, tc.sentinel, tc.msg)
		})
	}
}

func TestDecoderStopsAfterSamplesError(t *testing.T) {
	enc, dec := wire.NewEncoder(), wire.NewDecoder()
	st := wiretest.NewStream(1, "n", 2)
	good, err := enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{st.Next(t0)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Decode(good[:len(good)-1]); err == nil {
		t.Fatal("truncated frame decoded")
	}
	_, err = dec.Decode(good)
	wantErr(t, err, wire.ErrMalformed, "delta state lost")
	// Control frames still decode, so the session can be closed cleanly.
	b, _ := enc.AppendFrame(nil, &wire.Ack{Seq: 3})
	if _, err := dec.Decode(b); err != nil {
		t.Fatalf("ack after samples error: %v", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	dev := func(idx int, m fleet.Metric, v float64) fleet.DeviceSample {
		d := fleet.DeviceSample{Index: idx}
		d.Set(m, v)
		return d
	}
	rec := func(devs ...fleet.DeviceSample) fleet.Sample { return fleet.Sample{Seq: 1, Time: t0, Devices: devs} }
	manyDevs := make([]fleet.DeviceSample, 65)
	for i := range manyDevs {
		manyDevs[i].Index = i % 64
	}
	for _, tc := range []struct {
		name     string
		f        wire.Frame
		sentinel error
		msg      string
	}{
		{"nil", nil, wire.ErrMalformed, "cannot encode frame <nil>"},
		{"nil samples", (*wire.Samples)(nil), wire.ErrMalformed, "cannot encode"},
		{"no records", &wire.Samples{}, wire.ErrMalformed, "samples: no records"},
		{"too many records", &wire.Samples{Samples: make([]fleet.Sample, 257)}, wire.ErrTooBig, "record count 257 exceeds 256"},
		{"NaN", &wire.Samples{Samples: []fleet.Sample{rec(dev(0, fleet.MetricUtil, math.NaN()))}}, wire.ErrMalformed, "record 0 (seq 1): device 0: util value NaN is not finite"},
		{"Inf", &wire.Samples{Samples: []fleet.Sample{rec(dev(2, fleet.MetricPower, math.Inf(1)))}}, wire.ErrMalformed, "device 2: power value +Inf"},
		{"range", &wire.Samples{Samples: []fleet.Sample{rec(dev(0, fleet.MetricMemUsed, 1e300))}}, wire.ErrMalformed, "mem_used value 1e+300 is not finite or out of range"},
		{"index", &wire.Samples{Samples: []fleet.Sample{rec(dev(64, fleet.MetricUtil, 0))}}, wire.ErrMalformed, "device index 64 outside 0..63"},
		{"negative index", &wire.Samples{Samples: []fleet.Sample{rec(dev(-1, fleet.MetricUtil, 0))}}, wire.ErrMalformed, "device index -1"},
		{"repeated", &wire.Samples{Samples: []fleet.Sample{rec(dev(1, fleet.MetricUtil, 0), dev(1, fleet.MetricTemp, 0))}}, wire.ErrMalformed, "device index 1 repeated"},
		{"devices", &wire.Samples{Samples: []fleet.Sample{rec(manyDevs...)}}, wire.ErrTooBig, "device count 65 exceeds 64"},
		{"present bits", &wire.Samples{Samples: []fleet.Sample{rec(fleet.DeviceSample{Present: 1 << 30})}}, wire.ErrMalformed, "present mask 0x40000000 has unknown metric bits"},
		{"host NaN", &wire.Samples{Samples: []fleet.Sample{{Seq: 1, Host: func() *fleet.HostSample {
			h := &fleet.HostSample{}
			h.Set(fleet.HostLoad1, math.NaN())
			return h
		}()}}}, wire.ErrMalformed, "host: host metric load1 value NaN"},
		{"procs", &wire.Samples{Samples: []fleet.Sample{{ProcsSet: true, Procs: make([]fleet.Process, 1025)}}}, wire.ErrTooBig, "process count 1025 exceeds 1024"},
		{"proc device", &wire.Samples{Samples: []fleet.Sample{{ProcsSet: true, Procs: []fleet.Process{{Device: 99}}}}}, wire.ErrMalformed, "process 0: process device 99 outside -1..63"},
		{"proc name", &wire.Samples{Samples: []fleet.Sample{{ProcsSet: true, Procs: []fleet.Process{{Name: strings.Repeat("p", 1025)}}}}}, wire.ErrTooBig, "process 0: name length 1025 exceeds 1024"},
		{"events", &wire.Samples{Samples: []fleet.Sample{{Events: make([]fleet.Event, 257)}}}, wire.ErrTooBig, "event count 257 exceeds 256"},
		{"event message", &wire.Samples{Samples: []fleet.Sample{{Events: []fleet.Event{{Message: strings.Repeat("m", 2048)}}}}}, wire.ErrTooBig, "event 0: message length 2048"},
		{"labels", &wire.Hello{Node: fleet.Node{Labels: manyLabels(65)}}, wire.ErrTooBig, "hello: label count 65 exceeds 64"},
		{"label value", &wire.Hello{Node: fleet.Node{Labels: map[string]string{"k": strings.Repeat("v", 1025)}}}, wire.ErrTooBig, "hello: label k length 1025"},
		{"hello devices", &wire.Hello{Node: fleet.Node{Devices: []fleet.Device{{Index: 3}, {Index: 3}}}}, wire.ErrMalformed, "hello: device index 3 repeated"},
		{"power limit", &wire.Hello{Node: fleet.Node{Devices: []fleet.Device{{PowerLimit: math.NaN()}}}}, wire.ErrMalformed, "device 0: power limit NaN"},
		{"node id", &wire.Hello{Node: fleet.Node{ID: strings.Repeat("n", 1025)}}, wire.ErrTooBig, "hello: node id length 1025"},
		{"lease gpus", &wire.Hello{Node: fleet.Node{Lease: fleet.Lease{GPUs: 65}}}, wire.ErrMalformed, "hello: lease gpus 65 outside 0..64"},
		{"sources", &wire.Status{Sources: make([]fleet.SourceStatus, 33)}, wire.ErrTooBig, "status: source count 33 exceeds 32"},
		{"source reason", &wire.Status{Sources: []fleet.SourceStatus{{Name: "nvml", Reason: strings.Repeat("r", 1025)}}}, wire.ErrTooBig, "status: source 0: source reason length 1025"},
		{"close reason", &wire.Close{Reason: strings.Repeat("r", 1025)}, wire.ErrTooBig, "close: reason length 1025"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := wire.NewEncoder().AppendFrame(dst, tc.f)
			wantErr(t, err, tc.sentinel, tc.msg)
			if string(got) != "keep" {
				t.Fatalf("failed encode changed dst to %q", got)
			}
		})
	}
	if _, err := wire.AppendRecord(nil, &fleet.Sample{Devices: []fleet.DeviceSample{dev(0, fleet.MetricFan, math.Inf(-1))}}); err == nil {
		t.Fatal("record with -Inf encoded")
	}
}

func manyLabels(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprint("k", i)] = "v"
	}
	return m
}

// A frame that fails to encode (here: one too big, after the delta state
// was already advanced for its first records) must leave the encoder as it
// was, so the next frame still decodes against the peer's state.
func TestEncoderRollsBackFailedFrame(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	enc, dec := wire.NewEncoder(), wire.NewDecoder()
	st := wiretest.NewStream(9, "n", 8)
	send := func(s fleet.Sample) {
		t.Helper()
		b, err := enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{s}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := dec.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := f.(*wire.Samples).Samples[0], quantized(s); !reflect.DeepEqual(got, want) {
			t.Fatalf("after rollback:\n got %+v\nwant %+v", got, want)
		}
	}
	send(st.Next(t0))
	var huge wire.Samples
	for i := range wire.MaxSamples {
		s := fleet.Sample{Seq: uint64(100 + i), Time: t0.Add(time.Duration(i) * time.Hour)}
		for d := range wire.MaxDevices {
			ds := fleet.DeviceSample{Index: d}
			for m := range fleet.NumMetrics {
				ds.Set(m, float64(r.Int64N(1<<35)))
			}
			s.Devices = append(s.Devices, ds)
		}
		huge.Samples = append(huge.Samples, s)
	}
	_, err := enc.AppendFrame(nil, &huge)
	wantErr(t, err, wire.ErrTooBig, "exceeds 1048576")
	bad := st.Next(t0.Add(time.Second))
	bad.Devices[7].Set(fleet.MetricTemp, math.NaN())
	if _, err := enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{st.Next(t0.Add(2 * time.Second)), bad}}); err == nil {
		t.Fatal("NaN encoded")
	}
	for i := range 5 {
		send(st.Next(t0.Add(time.Duration(3+i) * time.Second)))
	}
}

// Every proper prefix of a valid frame or record is an error, never a panic
// and never a success.
func TestTruncatedInput(t *testing.T) {
	st := wiretest.NewStream(11, "node-11", 8)
	enc := wire.NewEncoder()
	var frames [][]byte
	add := func(f wire.Frame) {
		b, err := enc.AppendFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
	}
	hello := wire.Hello{Proto: wire.Version, Node: st.Node()}
	add(&hello)
	first := st.Next(t0)
	first.Events = []fleet.Event{{Time: t0, Kind: fleet.EventXID, Severity: fleet.SevCritical, Device: 2, Code: 79, Message: "fell off the bus"}}
	add(&wire.Samples{Samples: []fleet.Sample{first}})
	add(&wire.Samples{Samples: []fleet.Sample{st.Next(t0.Add(time.Second)), st.Next(t0.Add(2 * time.Second))}})
	add(&wire.Welcome{Proto: 1, ResumeFrom: 1 << 33})
	add(&wire.Ack{Seq: 1 << 20})
	add(&wire.Close{Code: wire.CloseGoingAway, Reason: "shutting down"})
	for i, full := range frames {
		for n := range len(full) {
			dec := wire.NewDecoder()
			for _, prev := range frames[:i] { // bring the decoder to the state the frame expects
				if _, err := dec.Decode(prev); err != nil {
					t.Fatal(err)
				}
			}
			_, err := dec.Decode(full[:n])
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("frame %d cut to %d of %d bytes: err %v, want ErrMalformed", i, n, len(full), err)
			}
		}
	}
	rec, err := wire.AppendRecord(nil, &first)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(rec) {
		var s fleet.Sample
		if err := wire.DecodeRecord(rec[:n], &s); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("record cut to %d of %d bytes: err %v", n, len(rec), err)
		}
	}
}
