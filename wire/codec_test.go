package wire_test

import (
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
	"github.com/fleettop/fleettop/wire/wiretest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// cloneSample deep-copies s, since decoded samples alias the decoder.
func cloneSample(s fleet.Sample) fleet.Sample {
	c := s
	c.Devices = append([]fleet.DeviceSample(nil), s.Devices...)
	if s.Host != nil {
		h := *s.Host
		c.Host = &h
	}
	c.Procs = append([]fleet.Process(nil), s.Procs...)
	c.Events = append([]fleet.Event(nil), s.Events...)
	return c
}

func quantized(s fleet.Sample) fleet.Sample {
	c := cloneSample(s)
	wire.QuantizeSample(&c)
	return c
}

func quantizedNode(n fleet.Node) fleet.Node {
	n.Devices = append([]fleet.Device(nil), n.Devices...)
	wire.QuantizeNode(&n)
	return n
}

// randomSample draws a sample that exercises every part of the record:
// absent metrics, changing device layouts, host on and off, processes and
// events, sequence jumps and values of every size and sign.
func randomSample(r *rand.Rand, seq uint64, at time.Time) fleet.Sample {
	s := fleet.Sample{Seq: seq, Time: at}
	n := r.IntN(9)
	if r.IntN(10) == 0 {
		n = r.IntN(wire.MaxDevices + 1)
	}
	for _, idx := range r.Perm(wire.MaxDevices)[:n] {
		d := fleet.DeviceSample{Index: idx}
		if r.IntN(3) == 0 {
			idx = idx % 8 // favour a stable layout
			d.Index = idx
		}
		for m := range fleet.NumMetrics {
			if r.IntN(5) == 0 {
				continue
			}
			var v float64
			switch r.IntN(4) {
			case 0:
				v = r.Float64()
			case 1:
				v = float64(r.IntN(1 << 36))
			case 2:
				v = -r.Float64() * 1000
			default:
				v = r.NormFloat64() * 1e6
			}
			d.Set(m, v)
		}
		s.Devices = append(s.Devices, d)
	}
	// drop repeated indices introduced by "% 8"
	seen := map[int]bool{}
	kept := s.Devices[:0]
	for _, d := range s.Devices {
		if !seen[d.Index] {
			seen[d.Index] = true
			kept = append(kept, d)
		}
	}
	s.Devices = kept
	if r.IntN(3) > 0 {
		h := &fleet.HostSample{}
		for m := range fleet.NumHostMetrics {
			if r.IntN(4) > 0 {
				h.Set(m, r.Float64()*float64(int64(1)<<r.IntN(36)))
			}
		}
		s.Host = h
	}
	if r.IntN(4) == 0 {
		s.ProcsSet = true
		for range r.IntN(5) {
			s.Procs = append(s.Procs, fleet.Process{
				Device: r.IntN(9) - 1, PID: r.Uint32(), Name: randString(r), UsedMemory: r.Uint64(),
				Job: fleet.Job{ID: randString(r), Source: "slurm", Team: randString(r), DataClass: randString(r)},
			})
			if r.IntN(2) == 0 {
				s.Procs[len(s.Procs)-1].Util = fleet.Some(r.Float64())
			}
		}
	}
	if r.IntN(4) == 0 {
		for range 1 + r.IntN(3) {
			s.Events = append(s.Events, fleet.Event{
				Time: at.Add(-time.Duration(r.IntN(5000)) * time.Millisecond), Kind: fleet.EventXID,
				Severity: fleet.SevCritical, Device: r.IntN(9) - 1, Code: r.Int64N(200) - 100, Message: randString(r),
			})
		}
	}
	return s
}

func randString(r *rand.Rand) string {
	const chars = "abcdefghijklmnopqrstuvwxyz-0123456789 é"
	b := make([]byte, r.IntN(12))
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

func TestRoundTripRandomStreams(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		enc, dec := wire.NewEncoder(), wire.NewDecoder()
		seq := uint64(r.IntN(1000))
		at := t0.Add(time.Duration(r.Int64N(1e12)))
		var buf []byte
		for frame := range 60 {
			var f wire.Samples
			for range 1 + r.IntN(4) {
				seq += 1 + uint64(r.IntN(2)*r.IntN(100))
				at = at.Add(time.Duration(r.Int64N(3e9)) - 5e8)
				f.Samples = append(f.Samples, randomSample(r, seq, at))
			}
			var err error
			buf, err = enc.AppendFrame(buf[:0], &f)
			if err != nil {
				t.Fatalf("seed %d frame %d: encode: %v", seed, frame, err)
			}
			got, err := dec.Decode(buf)
			if err != nil {
				t.Fatalf("seed %d frame %d: decode: %v", seed, frame, err)
			}
			gs := got.(*wire.Samples)
			if len(gs.Samples) != len(f.Samples) {
				t.Fatalf("seed %d frame %d: %d records, want %d", seed, frame, len(gs.Samples), len(f.Samples))
			}
			for i := range f.Samples {
				want := quantized(f.Samples[i])
				if !reflect.DeepEqual(gs.Samples[i], want) {
					t.Fatalf("seed %d frame %d record %d:\n got %+v\nwant %+v", seed, frame, i, gs.Samples[i], want)
				}
			}
		}
	}
}

func TestRoundTripRealisticStream(t *testing.T) {
	st := wiretest.NewStream(7, "node-7", 8)
	enc, dec := wire.NewEncoder(), wire.NewDecoder()
	hello := &wire.Hello{Proto: wire.Version, Node: st.Node()}
	b, err := enc.AppendFrame(nil, hello)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dec.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.(*wire.Hello), (&wire.Hello{Proto: wire.Version, Node: quantizedNode(st.Node())}); !reflect.DeepEqual(got, want) {
		t.Fatalf("hello:\n got %+v\nwant %+v", got, want)
	}
	for i := range 200 {
		s := st.Next(t0.Add(time.Duration(i) * time.Second))
		b, err = enc.AppendFrame(b[:0], &wire.Samples{Samples: []fleet.Sample{s}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := dec.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got := f.(*wire.Samples).Samples[0]
		// The stream reports at hardware resolution, so nothing is lost.
		if !reflect.DeepEqual(got, cloneSample(s)) && !reflect.DeepEqual(got, quantized(s)) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got, quantized(s))
		}
		for d := range s.Devices {
			for m := range fleet.NumMetrics {
				if got.Devices[d].Values[m] != s.Devices[d].Values[m] {
					t.Fatalf("record %d device %d %s: got %v, sent %v (hardware resolution must be lossless)",
						i, d, m, got.Devices[d].Values[m], s.Devices[d].Values[m])
				}
			}
		}
	}
}

func TestControlFramesRoundTrip(t *testing.T) {
	enc, dec := wire.NewEncoder(), wire.NewDecoder()
	for _, f := range []wire.Frame{
		&wire.Welcome{Proto: wire.Version, ResumeFrom: 1 << 40},
		&wire.Ack{Seq: 12345678},
		&wire.Ack{Seq: 9, Time: t0.Add(1234 * time.Millisecond)},
		&wire.Clock{Sent: t0.Add(-time.Hour)},
		&wire.Clock{Origin: t0, Received: t0.Add(-40 * 24 * time.Hour), Sent: t0.Add(-40*24*time.Hour + time.Millisecond)},
		&wire.Close{Code: wire.CloseForbidden, Reason: "token not allowed for node gpu-7"},
		&wire.Close{Code: wire.CloseNormal},
		&wire.Hello{Proto: 7, Node: fleet.Node{ID: "bare"}},
		&wire.Hello{Proto: wire.Version, Node: fleet.Node{ID: "blind", Lease: fleet.Lease{GPUs: 8},
			Sources: []fleet.SourceStatus{{Name: "nvml", Reason: "nvml: driver/library version mismatch"}, {Name: "host", Up: true}}}},
		&wire.Status{Sources: []fleet.SourceStatus{{Name: "nvml", Up: true}, {Name: "jobs", Reason: "permission denied"}}},
		&wire.Status{},
		&wire.Hello{Proto: wire.Version, Node: fleet.Node{
			ID: "gpu-sg-07", Hostname: "gpu-sg-07.internal", Region: "Singapore", Site: "SG1", Provider: "acme",
			Jurisdiction: "SG", Driver: "550.54.15", CUDA: "12.4", BootID: "b00t", AgentVersion: "v1.2.3",
			Lease: fleet.Lease{
				ID: "L-1", PricePerGPUHour: fleet.Money{Micros: -1_234_567, Currency: "SGD"}, Billing: fleet.BillPerStartedHour,
				Reserved: true, GPUs: 2, Start: t0.Add(-time.Hour), End: t0.Add(30 * 24 * time.Hour),
			},
			Sources: []fleet.SourceStatus{{Name: "nvml", Up: true}, {Name: "ascend", Up: true}},
			Labels:  map[string]string{"team": "vision", "rack": "r7", "": "empty key", "zone": ""},
			Devices: []fleet.Device{
				{Index: 3, UUID: "GPU-3", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H200", PCIBusID: "0000:3b:00.0", MemoryTotal: 141 << 30, PowerLimit: 700.125, MIG: true},
				{Index: 0, UUID: "NPU-0", Vendor: fleet.VendorAscend, Model: "Ascend 910B", MemoryTotal: 64 << 30},
				{Index: 4, UUID: "MIG-4", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H200 MIG 3g.71gb", MemoryTotal: 71 << 30,
					Instance: fleet.MIGInstance{Parent: 3, GPUInstanceID: 2, ComputeInstanceID: 0, Profile: "3g.71gb"}},
			},
		}},
	} {
		b, err := enc.AppendFrame(nil, f)
		if err != nil {
			t.Fatalf("%T: %v", f, err)
		}
		got, err := dec.Decode(b)
		if err != nil {
			t.Fatalf("%T: %v", f, err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("got %+v, want %+v", got, f)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	var got fleet.Sample
	for i := range 500 {
		s := randomSample(r, r.Uint64(), t0.Add(time.Duration(r.Int64N(1e15))))
		b, err := wire.AppendRecord(nil, &s)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if err := wire.DecodeRecord(b, &got); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if want := quantized(s); !reflect.DeepEqual(cloneSample(got), cloneSample(want)) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestQuantizeIsIdempotent(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for range 10000 {
		v := r.NormFloat64() * math.Pow(10, float64(r.IntN(12)))
		for m := range fleet.NumMetrics {
			q := wire.Quantize(m, v)
			if wire.Quantize(m, q) != q {
				t.Fatalf("%s: Quantize(%v) = %v, again %v", m, v, q, wire.Quantize(m, q))
			}
		}
	}
	if got := wire.Quantize(fleet.MetricPower, 123.4567891); got != 123.457 {
		t.Fatalf("power quantised to %v, want 123.457", got)
	}
	if got := wire.Quantize(fleet.MetricTemp, 41.26); got != 41 {
		t.Fatalf("temp quantised to %v, want 41 (NVML reports whole °C)", got)
	}
	if got := wire.Quantize(fleet.MetricUtil, 0.514); got != 0.51 {
		t.Fatalf("util quantised to %v, want 0.51 (NVML reports whole percent)", got)
	}
}

func wantErr(t *testing.T, err error, sentinel error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v containing %q", sentinel, substr)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q lacks %q", err, substr)
	}
}

// Link traffic travels at GPM's own step, whole MiB/s, and NVLink rx is
// predicted from tx's change (collectives send and receive alike), so a
// GPU whose rx moves with its tx pays for one of the two.
func TestLinkTrafficCoding(t *testing.T) {
	const mib = 1 << 20
	frame := func(enc *wire.Encoder, i int, tx, rx float64) []byte {
		d := fleet.DeviceSample{Index: 0}
		d.Set(fleet.MetricNVLinkTx, tx)
		d.Set(fleet.MetricNVLinkRx, rx)
		d.Set(fleet.MetricPCIeRx, 123.4*mib+5) // GPM's MiB/s times 2^20: not whole bytes
		b, err := enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Devices: []fleet.DeviceSample{d}}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	twin, apart := wire.NewEncoder(), wire.NewEncoder()
	dec := wire.NewDecoder()
	var nTwin, nApart int
	for i := range 50 {
		tx := float64(1000+(i*7919)%50000) * mib
		b := frame(twin, i, tx, tx)
		nTwin += len(b)
		nApart += len(frame(apart, i, tx, float64(1000+(i*104729)%50000)*mib))
		f, err := dec.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got := f.(*wire.Samples).Samples[0].Devices[0]
		if v, _ := got.Get(fleet.MetricNVLinkRx); v != tx {
			t.Fatalf("record %d: nvlink rx %v, sent %v", i, v, tx)
		}
		if v, _ := got.Get(fleet.MetricPCIeRx); v != 123*mib {
			t.Fatalf("record %d: pcie rx %v, want 123 MiB/s", i, v)
		}
	}
	if nTwin >= nApart-50 { // rx costs at least a byte a record when it moves on its own
		t.Fatalf("twin stream %d B, independent %d B: rx is not predicted from tx", nTwin, nApart)
	}
}

// fullNode sets every field a Hello carries, a MIG instance included.
func fullNode() fleet.Node {
	n := fleet.Node{
		ID: "node-1", Hostname: "gpu-01.example", Region: "Singapore", Site: "sg-1", Provider: "acme",
		Jurisdiction: "SG", BootID: "0b1c2d3e-aaaa", AgentVersion: "v1.2.3 (abc)",
		Lease: fleet.Lease{ID: "lease 7", PricePerGPUHour: fleet.Money{Micros: 2_500_000, Currency: "USD"},
			Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		Labels:  map[string]string{"team": "Recherche et développement", "k8s.io/zone": "a"},
		Devices: []fleet.Device{{Index: 0, UUID: "GPU-1234-abcd", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", PCIBusID: "00000000:17:00.0", MemoryTotal: 80 << 30, PowerLimit: 700}},
	}
	n.Driver, n.CUDA = "550.54.15", "12.4"
	n.Lease.Reserved, n.Lease.GPUs = true, 8
	n.Lease.Billing = fleet.BillPerStartedHour
	n.Devices = append(n.Devices,
		fleet.Device{Index: 1, UUID: "GPU-5678", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", MemoryTotal: 80 << 30, PowerLimit: 699.5, MIG: true},
		fleet.Device{Index: 9, UUID: "MIG-9", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 MIG 3g.40gb", MemoryTotal: 40 << 30,
			Instance: fleet.MIGInstance{Parent: 1, GPUInstanceID: 2, ComputeInstanceID: 0, Profile: "3g.40gb"}},
		fleet.Device{Index: 3, UUID: "NPU-3", Vendor: fleet.VendorAscend, Model: "Ascend 910B", MemoryTotal: 64 << 30, PowerLimit: 350})
	n.Sources = []fleet.SourceStatus{{Name: "nvml", Up: true}, {Name: "host", Reason: "gopsutil: no /proc"}}
	return n
}

// TestHelloGolden holds the Hello encoding to its bytes in both protocols,
// so that a change to the field tables cannot change what collectors
// already in the field send or expect.
func TestHelloGolden(t *testing.T) {
	for _, v := range []uint8{1, 2} {
		name := filepath.Join("testdata", "hello-v"+string('0'+v)+".hex")
		h := &wire.Hello{Proto: uint16(v), Node: fullNode()}
		enc, err := wire.NewEncoderVersion(uint16(v))
		if err != nil {
			t.Fatal(err)
		}
		b, err := enc.AppendFrame(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		got := hex.EncodeToString(b)
		if *update {
			if err := os.WriteFile(name, []byte(got+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got != strings.TrimSpace(string(want)) {
			t.Fatalf("protocol %d Hello encodes as\n%s\nwant (%s)\n%s", v, got, name, want)
		}
		f, err := wire.NewDecoder().Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		wantNode := fullNode()
		wantNode.Lease.Start, wantNode.Lease.End = wantNode.Lease.Start.UTC(), wantNode.Lease.End.UTC()
		if v < 2 {
			wantNode.Lease.GPUs, wantNode.Sources = 0, nil
		}
		if got := f.(*wire.Hello).Node; !reflect.DeepEqual(got, wantNode) {
			t.Fatalf("protocol %d: decoded %+v\nwant %+v", v, got, wantNode)
		}
	}
}

// Decoders that Release each frame share their buffers and still decode
// their own streams exactly: two streams of different shapes, interleaved.
func TestReleaseSharesBuffers(t *testing.T) {
	type conn struct {
		st  *wiretest.Stream
		enc *wire.Encoder
		dec *wire.Decoder
		buf []byte
	}
	conns := []*conn{
		{st: wiretest.NewStream(21, "eight", 8), enc: wire.NewEncoder(), dec: wire.NewDecoder()},
		{st: wiretest.NewStream(22, "two", 2), enc: wire.NewEncoder(), dec: wire.NewDecoder()},
	}
	for i := range 300 {
		for k, c := range conns {
			s := c.st.Next(t0.Add(time.Duration(i) * time.Second))
			var err error
			if c.buf, err = c.enc.AppendFrame(c.buf[:0], &wire.Samples{Samples: []fleet.Sample{s}}); err != nil {
				t.Fatal(err)
			}
			f, err := c.dec.Decode(c.buf)
			if err != nil {
				t.Fatalf("stream %d, record %d: %v", k, i, err)
			}
			got := f.(*wire.Samples).Samples[0]
			if !reflect.DeepEqual(got, cloneSample(s)) && !reflect.DeepEqual(got, quantized(s)) {
				t.Fatalf("stream %d, record %d:\n got %+v\nwant %+v", k, i, got, quantized(s))
			}
			c.dec.Release()
		}
	}
}

// Two nodes' Hellos share the strings many nodes hold alike (region,
// provider, model, labels) and keep their own ids.
func TestHelloSharesCommonStrings(t *testing.T) {
	decode := func(id string) fleet.Node {
		n := fullNode()
		n.ID, n.Hostname = id, id+".example"
		enc, err := wire.NewEncoderVersion(2)
		if err != nil {
			t.Fatal(err)
		}
		b, err := enc.AppendFrame(nil, &wire.Hello{Proto: 2, Node: n})
		if err != nil {
			t.Fatal(err)
		}
		f, err := wire.NewDecoder().Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return f.(*wire.Hello).Node
	}
	a, b := decode("node-a"), decode("node-b")
	same := func(what, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are not one string", what, x, y)
		}
	}
	same("region", a.Region, b.Region)
	same("provider", a.Provider, b.Provider)
	same("jurisdiction", a.Jurisdiction, b.Jurisdiction)
	same("device model", a.Devices[0].Model, b.Devices[0].Model)
	for k, v := range a.Labels {
		same("label "+k, v, b.Labels[k])
	}
	if a.ID == b.ID || a.Hostname == b.Hostname {
		t.Fatalf("ids decoded alike: %q %q", a.ID, b.ID)
	}
}
