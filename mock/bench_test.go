package mock

import (
	"context"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// BenchmarkCollect measures one simulated node's Collect (8 devices, host,
// processes) per GPU sample.
func BenchmarkCollect(b *testing.B) {
	sc, err := New(Config{Seed: 1, Start: testStart, Nodes: 40})
	if err != nil {
		b.Fatal(err)
	}
	srcs := make([]*Source, len(sc.Nodes))
	gpus := 0
	for i, n := range sc.Nodes {
		srcs[i] = NewSource(n, SourceOptions{})
		if _, err := srcs[i].Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		gpus += len(n.Info.Devices)
	}
	var s fleet.Sample
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t := testStart.Add(time.Duration(i/len(srcs)) * time.Second)
		s.Devices, s.Procs, s.Events = s.Devices[:0], s.Procs[:0], s.Events[:0]
		s.Time = t
		if err := srcs[i%len(srcs)].Collect(context.Background(), &s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(float64(gpus)/float64(len(srcs))), "ns/gpu-sample")
}

// BenchmarkWireStream measures the collector→aggregator payload of the
// mock's own stream (the realistic noise, not wiretest's smooth drift): 200
// nodes of the default scenario sampled at 1 Hz with the collector's few
// milliseconds of timer jitter, process lists sent when they change (as the
// agent does), one record per Samples frame, one encoder and decoder per
// node. Bytes are whole frames per GPU-sample over 5 minutes after a
// 1-minute warm-up; the time is the encoder's plus the decoder's.
func BenchmarkWireStream(b *testing.B) {
	const nodes, warm, secs = 200, 60, 360
	sc, err := New(Config{Seed: 1, Start: testStart, Nodes: nodes})
	if err != nil {
		b.Fatal(err)
	}
	type conn struct {
		frames [][]byte
		gpus   int
	}
	conns := make([]conn, len(sc.Nodes))
	total, gpus := 0, 0
	for i, n := range sc.Nodes {
		src := NewSource(n, SourceOptions{})
		if _, err := src.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		enc := wire.NewEncoder()
		smp := NewAgentSampler(src)
		var s fleet.Sample
		for k := range secs {
			jitter := time.Duration(hash2(uint64(i), uint64(k))%5000) * time.Microsecond
			if err := smp.Sample(context.Background(), &s, uint64(k+1), testStart.Add(time.Duration(k)*time.Second+jitter)); err != nil {
				b.Fatal(err)
			}
			f, err := enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{s}})
			if err != nil {
				b.Fatal(err)
			}
			conns[i].frames = append(conns[i].frames, f)
			if k >= warm {
				total += len(f)
				gpus += len(s.Devices)
			}
		}
		conns[i].gpus = len(n.Info.Devices)
	}
	// Decoding cost, per GPU-sample, over the whole recorded stream.
	b.ResetTimer()
	decoded := 0
	for i := 0; i < b.N; i++ {
		c := &conns[i%len(conns)]
		dec := wire.NewDecoder()
		for _, f := range c.frames {
			if _, err := dec.Decode(f); err != nil {
				b.Fatal(err)
			}
		}
		decoded += len(c.frames) * c.gpus
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(decoded), "decode-ns/gpu-sample")
	b.ReportMetric(float64(total)/float64(gpus), "B/gpu-sample")
}
