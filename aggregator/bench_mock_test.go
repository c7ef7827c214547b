package aggregator

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/mock"
	"github.com/fleettop/fleettop/store"
	"github.com/fleettop/fleettop/wire"
)

// encodeMockStream pre-encodes a Hello and n one-record Samples frames of
// node k of `fleettop mock`'s scenario at 1 Hz, as its collector would send
// them (process lists only when they change), and returns its GPU count.
func encodeMockStream(tb testing.TB, k, n int) (hello []byte, frames [][]byte, gpus int) {
	tb.Helper()
	t0 := time.Unix(1_770_000_000, 0)
	sc, err := mock.New(mock.Config{Seed: 1, Start: t0.Add(-time.Hour), Nodes: k + 1})
	if err != nil {
		tb.Fatal(err)
	}
	nd := sc.Nodes[k]
	src := mock.NewSource(nd, mock.SourceOptions{Now: func() time.Time { return t0 }})
	if _, err := src.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	node := nd.Info
	node.Lease.End = time.Time{}
	enc := wire.NewEncoder()
	if hello, err = enc.AppendFrame(nil, &wire.Hello{Proto: wire.Version, Node: node}); err != nil {
		tb.Fatal(err)
	}
	smp := mock.NewAgentSampler(src)
	var s fleet.Sample
	for i := range n {
		at := t0.Add(time.Duration(i)*time.Second + time.Duration(i*7919%4000)*time.Microsecond)
		if err := smp.Sample(context.Background(), &s, uint64(i+1), at); err != nil {
			tb.Fatal(err)
		}
		f, err := enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{s}})
		if err != nil {
			tb.Fatal(err)
		}
		frames = append(frames, f)
	}
	return hello, frames, len(node.Devices)
}

// BenchmarkIngestMockStream is IngestApply on `fleettop mock`'s stream (its
// noise, process lists, events) with the SQLite store's Record: decode,
// validate, dedup, apply, record, observe. One op is one record. It reports
// the process's CPU time (not wall time, which a shared machine inflates)
// per GPU-sample, and the wire bytes per GPU-sample.
func BenchmarkIngestMockStream(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "fleettop.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	toks, _ := ParseTokens(strings.NewReader(testTokens), "tokens")
	s, err := New(Config{Tokens: toks, Recorder: st, FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	hello, frames, gpus := encodeMockStream(b, 0, b.N)
	dec := wire.NewDecoder()
	f, err := dec.Decode(hello)
	if err != nil {
		b.Fatal(err)
	}
	h := f.(*wire.Hello)
	ss := attach(s, h.Node)
	bytes := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := range b.N {
		bytes += len(frames[i])
		f, err := dec.Decode(frames[i])
		if err != nil {
			b.Fatal(err)
		}
		if err := ss.apply(f.(*wire.Samples).Samples); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N*gpus), "cpu-µs/gpu-sample")
	b.ReportMetric(float64(bytes)/float64(b.N*gpus), "B/gpu-sample")
}
