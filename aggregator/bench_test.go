package aggregator

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/store"
	"github.com/fleettop/fleettop/wire"
	"github.com/fleettop/fleettop/wire/wiretest"
)

const benchGPUs = 8

// nopRecorder makes nothing durable: it isolates the aggregator's own cost.
type nopRecorder struct{}

var _ Recorder = nopRecorder{}

func (nopRecorder) LastSeqs(context.Context) (map[string]uint64, error) { return nil, nil }
func (nopRecorder) Record(*fleet.Node, uint64, *fleet.Sample)           {}
func (nopRecorder) Commit(context.Context, map[string]uint64) error     { return nil }

// encodeStream pre-encodes a Hello and n one-record Samples frames of a
// realistic 8-GPU node at 1 Hz, as one connection's encoder would.
func encodeStream(tb testing.TB, id string, seed uint64, n int) (hello []byte, frames [][]byte) {
	tb.Helper()
	st := wiretest.NewStream(seed, id, benchGPUs)
	enc := wire.NewEncoder()
	hello, err := enc.AppendFrame(nil, &wire.Hello{Proto: wire.Version, Node: st.Node()})
	if err != nil {
		tb.Fatal(err)
	}
	t0 := time.Unix(1_770_000_000, 0)
	frames = make([][]byte, n)
	for i := range frames {
		rec := st.Next(t0.Add(time.Duration(i) * time.Second))
		frames[i], err = enc.AppendFrame(nil, &wire.Samples{Samples: []fleet.Sample{rec}})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return hello, frames
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngestApply measures the server side of ingest without the
// socket: decode one frame, dedup, apply to live state, record and observe.
// One op is one 8-GPU record.
// attach installs node nd in s under a session of its own, as a Hello
// would, without a connection; the session applies records to it.
func attach(s *Server, nd fleet.Node) *session {
	n := s.getOrCreate(nd.ID)
	ss := &session{s: s}
	ss.node.Store(n)
	n.mu.Lock()
	n.setNode(nd)
	n.sess = ss
	n.mu.Unlock()
	return ss
}

func BenchmarkIngestApply(b *testing.B) {
	for _, name := range []string{"nop", "store"} {
		b.Run("recorder="+name, func(b *testing.B) {
			var rec Recorder = nopRecorder{}
			if name == "store" {
				st, err := store.Open(filepath.Join(b.TempDir(), "fleettop.db"), store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				rec = st
			}
			toks, _ := ParseTokens(strings.NewReader(testTokens), "tokens")
			s, err := New(Config{Tokens: toks, Recorder: rec, FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			hello, frames := encodeStream(b, "bench-1", 1, b.N)
			dec := wire.NewDecoder()
			f, err := dec.Decode(hello)
			if err != nil {
				b.Fatal(err)
			}
			ss := attach(s, f.(*wire.Hello).Node)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				f, err := dec.Decode(frames[i])
				if err != nil {
					b.Fatal(err)
				}
				if err := ss.apply(f.(*wire.Samples).Samples); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if got := ss.node.Load().seq.Load(); got != uint64(b.N) {
				b.Fatalf("applied up to %d, want %d", got, b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchGPUs), "ns/gpu-sample")
		})
	}
}

// BenchmarkIngestLoopback drives real collector sessions over loopback
// websockets with pre-encoded frames: socket read, decode, dedup, apply,
// commit and acks. The process CPU (client writes included, so an upper
// bound for the aggregator) is reported per GPU-sample.
func BenchmarkIngestLoopback(b *testing.B) {
	const conns = 16
	ts := startServer(b, nil, func(c *Config) { c.Recorder = nopRecorder{}; c.FlushInterval = 100 * time.Millisecond })
	per := (b.N + conns - 1) / conns
	type stream struct {
		c      *collector
		hello  []byte
		frames [][]byte
	}
	streams := make([]stream, conns)
	for i := range streams {
		hello, frames := encodeStream(b, fmt.Sprintf("bench-%d", i), uint64(i+1), per)
		c := dialCollector(b, ts, secretAll)
		c.sendRaw(hello)
		if _, ok := c.mustRecv().(*wire.Welcome); !ok {
			b.Fatal("no welcome")
		}
		streams[i] = stream{c, hello, frames}
	}
	var bytes int
	for _, f := range streams[0].frames {
		bytes += len(f)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for i := range streams {
		st := streams[i]
		wg.Go(func() {
			ctx := context.Background()
			for _, f := range st.frames {
				if err := st.c.conn.Write(ctx, websocket.MessageBinary, f); err != nil {
					b.Error(err)
					return
				}
			}
			// The last record's ack proves every record was applied and committed.
			for {
				f, err := st.c.recv()
				if err != nil {
					b.Error(err)
					return
				}
				if a, ok := f.(*wire.Ack); ok && a.Seq == uint64(len(st.frames)) {
					return
				}
			}
		})
	}
	wg.Wait()
	cpu := cpuTime() - cpu0
	b.StopTimer()
	total := float64(conns * per * benchGPUs)
	b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/gpu-sample")
	b.ReportMetric(float64(bytes)/float64(per*benchGPUs), "B/gpu-sample")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLiveMemoryPerGPU measures the heap held by the live state of
// 1,000 8-GPU nodes after a few records each (procs, host, events included),
// per GPU, in all and beyond the sparkline ring.
func BenchmarkLiveMemoryPerGPU(b *testing.B) {
	const nodes = 1000
	toks, _ := ParseTokens(strings.NewReader(testTokens), "tokens")
	for range b.N {
		s, err := New(Config{Tokens: toks, Recorder: nopRecorder{}, FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range nodes {
			st := wiretest.NewStream(uint64(i+1), fmt.Sprintf("mem-node-%05d", i), benchGPUs)
			nd := st.Node()
			ss := attach(s, nd)
			for k := range 3 {
				rec := st.Next(time.Unix(1_770_000_000+int64(k), 0))
				if err := ss.apply([]fleet.Sample{rec}); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perGPU := float64(after.HeapAlloc-before.HeapAlloc) / (nodes * benchGPUs)
		b.ReportMetric(perGPU, "B/gpu")
		b.ReportMetric(perGPU-float64(unsafe.Sizeof(history{})), "B/gpu-beyond-ring")
		runtime.KeepAlive(s)
		s.Close(context.Background())
	}
}

// BenchmarkWatchPublish is the watch hub's work for one publication when
// all of 1,000 8-GPU nodes changed (the worst case): rows rebuilt, one sort,
// one page of rows encoded, shared by every viewer of the default
// subscription.
func BenchmarkWatchPublish(b *testing.B) {
	const nodes = 1000
	toks, _ := ParseTokens(strings.NewReader(testTokens), "tokens")
	s, err := New(Config{Tokens: toks, Recorder: nopRecorder{}, FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	for i := range nodes {
		st := wiretest.NewStream(uint64(i+1), fmt.Sprintf("watch-node-%05d", i), benchGPUs)
		nd := st.Node()
		ss := attach(s, nd)
		rec := st.Next(time.Unix(1_770_000_000, 0))
		if err := ss.apply([]fleet.Sample{rec}); err != nil {
			b.Fatal(err)
		}
	}
	h := &watchHub{s: s, kick: make(chan struct{}, 1), join: make(chan struct{}, 1),
		groups: map[string]*watchGroup{}, rows: map[*nodeState]*rowEntry{}}
	g := h.enter(wire.DefaultSubscription())
	h.publish(false, false)
	list := s.nodeList()
	var size int
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, n := range list {
			s.touch(n)
		}
		h.publish(false, false)
		pub, _ := g.latest()
		size = len(pub.delta)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nodes*benchGPUs), "ns/gpu")
	b.ReportMetric(float64(size), "delta-B")
}
