package collector_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleettop/fleettop/aggregator"
	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
)

// fakeGPUs is a Source with n devices whose readings move every tick, and a
// process list that changes every 5 ticks.
type fakeGPUs struct {
	name string
	n    int
	tick int
}

var _ collector.Source = (*fakeGPUs)(nil)

func (f *fakeGPUs) Name() string { return f.name }
func (f *fakeGPUs) Start(context.Context) (collector.Inventory, error) {
	var inv collector.Inventory
	for i := range f.n {
		inv.Devices = append(inv.Devices, fleet.Device{Index: i, UUID: fmt.Sprintf("%s-%d", f.name, i), Vendor: fleet.VendorNVIDIA, Model: "Fake H100", MemoryTotal: 80 << 30})
	}
	inv.Driver = "550.54.15"
	return inv, nil
}
func (f *fakeGPUs) Collect(_ context.Context, s *fleet.Sample) error {
	f.tick++
	for i := range f.n {
		d := fleet.DeviceSample{Index: i}
		d.Set(fleet.MetricUtil, float64((f.tick+i)%100)/100)
		d.Set(fleet.MetricPower, 300+float64(i))
		d.Set(fleet.MetricTemp, 40)
		s.Devices = append(s.Devices, d)
	}
	s.Procs = append(s.Procs, fleet.Process{Device: 0, PID: uint32(1000 + f.tick/5)})
	return nil
}
func (f *fakeGPUs) Close() error { return nil }

type absent struct{}

func (absent) Name() string { return "nvml" }
func (absent) Start(context.Context) (collector.Inventory, error) {
	return collector.Inventory{}, fmt.Errorf("NVML not available: test: %w", collector.ErrNoData)
}
func (absent) Collect(context.Context, *fleet.Sample) error { return collector.ErrNoData }
func (absent) Close() error                                 { return nil }

// durableRecorder keeps only what Commit made durable: what a restarted
// aggregator would find. Pending records die with the aggregator.
type durableRecorder struct {
	mu      sync.Mutex
	pending []uint64
	durable []uint64
	last    map[string]uint64
}

func (r *durableRecorder) LastSeqs(context.Context) (map[string]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]uint64{}
	for k, v := range r.last {
		m[k] = v
	}
	return m, nil
}
func (r *durableRecorder) Record(n *fleet.Node, _ uint64, s *fleet.Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, s.Seq)
}
func (r *durableRecorder) Commit(_ context.Context, seqs map[string]uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.durable = append(r.durable, r.pending...)
	r.pending = r.pending[:0]
	for k, v := range seqs {
		r.last[k] = v
	}
	return nil
}
func (r *durableRecorder) crash() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = r.pending[:0]
}
func (r *durableRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.durable)
}

func startAggregator(t *testing.T, addr string, rec aggregator.Recorder) (*aggregator.Server, string) {
	t.Helper()
	tokens, err := aggregator.ParseTokens(strings.NewReader("collector fleet s3cret-collector *\n"), "tokens")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := aggregator.New(aggregator.Config{
		Tokens: tokens, Recorder: rec, Interval: 20 * time.Millisecond,
		FlushInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln := testutil.Listen(t, addr)
	go srv.Serve(ln)
	return srv, ln.Addr().String()
}

// TestEndToEndOutage streams into a real aggregator, stops the aggregator
// for a while, restarts it, and checks that every sequence arrived durably
// exactly once.
func TestEndToEndOutage(t *testing.T) {
	rec := &durableRecorder{last: map[string]uint64{}}
	srv, addr := startAggregator(t, "127.0.0.1:0", rec)
	var logs safeBuf
	agent, err := collector.NewAgent(collector.AgentConfig{
		Node:     fleet.Node{ID: "node-1", Hostname: "node-1", Region: "SG"},
		Sources:  []collector.Source{absent{}, &fakeGPUs{name: "a", n: 8}, &fakeGPUs{name: "b", n: 2}},
		Interval: 10 * time.Millisecond, SpoolDir: t.TempDir(), URL: "ws://" + addr, Token: "s3cret-collector",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx) }()
	testutil.WaitFor(t, "first records durable", func() bool { return rec.count() >= 20 })

	closeCtx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.Close(closeCtx)
	ccancel()
	rec.crash()
	// The agent notices the close on its own goroutine: wait for that
	// rather than assume 30 samples give it time on a loaded machine.
	testutil.WaitFor(t, "the agent to see the aggregator close", func() bool { return !agent.Connected() })
	// The collector keeps sampling into its spool while the aggregator is down.
	before := agent.Spool().NextSeq()
	testutil.WaitFor(t, "sampling during the outage", func() bool { return agent.Spool().NextSeq() > before+30 })

	srv, _ = startAggregator(t, addr, rec)
	target := agent.Spool().NextSeq() + 10
	testutil.WaitFor(t, "catch-up after restart", func() bool { return uint64(rec.count()) >= target })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	closeCtx, ccancel = context.WithTimeout(context.Background(), 5*time.Second)
	srv.Close(closeCtx)
	ccancel()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, s := range rec.durable {
		if s != uint64(i+1) {
			t.Fatalf("durable seq #%d is %d: gap or duplicate (%v…)", i, s, rec.durable[max(0, i-3):min(len(rec.durable), i+3)])
		}
	}
	n := agent.Node()
	if len(n.Devices) != 10 || n.Devices[9].Index != 9 || n.Devices[9].UUID != "b-1" {
		t.Fatalf("devices from two sources not uniquely indexed: %+v", n.Devices)
	}
	l := logs.String()
	for _, want := range []string{"source not available", "connected to aggregator", "disconnected from aggregator", "reconnected to aggregator"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if c := strings.Count(l, "cannot reach aggregator"); c > 1 {
		t.Errorf("logged every retry (%d lines):\n%s", c, l)
	}
}

// TestSampleIndexesAndProcs checks one-shot collection across sources.
func TestSampleIndexesAndProcs(t *testing.T) {
	agent, err := collector.NewAgent(collector.AgentConfig{
		Node:    fleet.Node{ID: "n"},
		Sources: []collector.Source{&fakeGPUs{name: "a", n: 2}, absent{}, &fakeGPUs{name: "b", n: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	agent.Start(context.Background())
	defer agent.Close()
	var s fleet.Sample
	errs := agent.CollectSample(context.Background(), &s)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	var idx []int
	for _, d := range s.Devices {
		idx = append(idx, d.Index)
	}
	if fmt.Sprint(idx) != "[0 1 2 3 4]" || s.Procs[1].Device != 2 {
		t.Fatalf("indexes %v procs %+v", idx, s.Procs)
	}
	if _, ok := agent.Unavailable()["nvml"]; !ok {
		t.Fatal("unavailable source not reported")
	}
}

func TestNewAgentRejectsBadURL(t *testing.T) {
	if _, err := collector.NewAgent(collector.AgentConfig{Node: fleet.Node{ID: "n"}, URL: "http://x"}); err == nil {
		t.Fatal("accepted http:// aggregator URL")
	}
}

type safeBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *safeBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *safeBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Samples fall on the interval's wall-clock multiples, so a fleet's readings
// describe the same instant; a sample taken exactly on a boundary waits a
// whole interval for the next one rather than sampling twice.
func TestUntilBoundary(t *testing.T) {
	base := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at   time.Duration
		iv   time.Duration
		want time.Duration
	}{
		{300 * time.Millisecond, time.Second, 700 * time.Millisecond},
		{0, time.Second, time.Second},
		{999 * time.Millisecond, time.Second, time.Millisecond},
		{7 * time.Second, 5 * time.Second, 3 * time.Second},
		{1500 * time.Microsecond, 10 * time.Millisecond, 8500 * time.Microsecond},
	} {
		if got := collector.UntilBoundary(base.Add(c.at), c.iv); got != c.want {
			t.Errorf("at +%v every %v: wait %v, want %v", c.at, c.iv, got, c.want)
		}
	}
}
