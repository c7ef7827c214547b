package wire_test

import (
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
	"github.com/fleettop/fleettop/wire/wiretest"
)

const benchGPUs = 8

// benchStream returns n one-record Samples frames of a steady 1 Hz 8-GPU
// node (15 metrics per GPU plus a host sample, processes in the first).
func benchStream(n int) []wire.Samples {
	st := wiretest.NewStream(42, "bench-node", benchGPUs)
	frames := make([]wire.Samples, n)
	for i := range frames {
		frames[i].Samples = []fleet.Sample{st.Next(t0.Add(time.Duration(i) * time.Second))}
	}
	return frames
}

func BenchmarkEncode8GPU(b *testing.B) {
	frames := benchStream(3600)
	enc := wire.NewEncoder()
	var buf []byte
	total := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(frames)
		if j == 0 {
			enc = wire.NewEncoder()
		}
		var err error
		buf, err = enc.AppendFrame(buf[:0], &frames[j])
		if err != nil {
			b.Fatal(err)
		}
		total += len(buf)
	}
	b.ReportMetric(float64(total)/float64(b.N*benchGPUs), "B/gpu-sample")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchGPUs), "ns/gpu-sample")
}

func BenchmarkDecode8GPU(b *testing.B) {
	frames := benchStream(3600)
	enc := wire.NewEncoder()
	encoded := make([][]byte, len(frames))
	total := 0
	for i := range frames {
		var err error
		if encoded[i], err = enc.AppendFrame(nil, &frames[i]); err != nil {
			b.Fatal(err)
		}
		total += len(encoded[i])
	}
	dec := wire.NewDecoder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(encoded)
		if j == 0 {
			dec = wire.NewDecoder()
		}
		if _, err := dec.Decode(encoded[j]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)/float64(len(frames)*benchGPUs), "B/gpu-sample")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchGPUs), "ns/gpu-sample")
}

func BenchmarkRecord8GPU(b *testing.B) {
	frames := benchStream(64)
	var buf []byte
	var s fleet.Sample
	total := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		if buf, err = wire.AppendRecord(buf[:0], &frames[i%len(frames)].Samples[0]); err != nil {
			b.Fatal(err)
		}
		if err := wire.DecodeRecord(buf, &s); err != nil {
			b.Fatal(err)
		}
		total += len(buf)
	}
	b.ReportMetric(float64(total)/float64(b.N*benchGPUs), "B/gpu-sample")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchGPUs), "ns/gpu-sample")
}

// BenchmarkSanitizeSample validates an 8-GPU record with 8 processes, every
// process checked ("all") or repeating the previous record's list ("after":
// the aggregator's case, strings equal but not shared).
func BenchmarkSanitizeSample(b *testing.B) {
	s := benchStream(1)[0].Samples[0]
	s.ProcsSet, s.Procs = true, nil
	for i := range benchGPUs {
		s.Procs = append(s.Procs, fleet.Process{Device: i, PID: uint32(4000 + i), Name: "python3 train.py --config llama-70b.yaml",
			UsedMemory: 40 << 30, Job: fleet.Job{ID: "slurm-881234", Source: "slurm", Team: "research", DataClass: "internal"}})
	}
	prev := make([]fleet.Process, len(s.Procs))
	for i, p := range s.Procs {
		p.Name = string([]byte(p.Name))
		p.Job.ID, p.Job.Team = string([]byte(p.Job.ID)), string([]byte(p.Job.Team))
		prev[i] = p
	}
	for _, bc := range []struct {
		name string
		prev []fleet.Process
	}{{"all", nil}, {"after", prev}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := wire.SanitizeSampleAfter(&s, bc.prev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchGPUs), "ns/gpu-sample")
		})
	}
}

// TestDecodeSamplesAllocatesNothing: a Samples frame decodes into the
// decoder's own buffers; the aggregator decodes 1,250 a second at 10,000
// GPUs. (A reader escaping through the Hello's field table once cost an
// allocation a frame.)
func TestDecodeSamplesAllocatesNothing(t *testing.T) {
	frames := benchStream(64)
	enc := wire.NewEncoder()
	encoded := make([][]byte, len(frames))
	for i := range frames {
		var err error
		if encoded[i], err = enc.AppendFrame(nil, &frames[i]); err != nil {
			t.Fatal(err)
		}
	}
	dec := wire.NewDecoder()
	for _, f := range encoded[:32] { // warm the decoder's buffers
		if _, err := dec.Decode(f); err != nil {
			t.Fatal(err)
		}
	}
	i := 32
	allocs := testing.AllocsPerRun(30, func() {
		if _, err := dec.Decode(encoded[i]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations a Samples frame, want 0", allocs)
	}
}
