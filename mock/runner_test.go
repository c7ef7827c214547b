package mock

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
)

// fakeAgents records each agent run: it collects once a simulated second
// until its context ends.
type fakeAgents struct {
	mu    sync.Mutex
	runs  map[string][]string // node → boot ids
	spool map[string]string
	seen  map[string]int // node → samples
	// rebooted, when set, is closed once every one of nodes nodes has run
	// and the node watch runs with a boot id other than its first.
	watch    string
	nodes    int
	rebooted chan struct{}
}

func (f *fakeAgents) run(ctx context.Context, node fleet.Node, srcs []collector.Source, spool string) error {
	f.mu.Lock()
	f.runs[node.ID] = append(f.runs[node.ID], node.BootID)
	f.spool[node.ID] = spool
	if b := f.runs[f.watch]; f.rebooted != nil && len(f.runs) == f.nodes && len(b) > 0 && b[len(b)-1] != b[0] {
		close(f.rebooted)
		f.rebooted = nil
	}
	f.mu.Unlock()
	for _, s := range srcs {
		if _, err := s.Start(ctx); err != nil {
			return err
		}
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			var smp fleet.Sample
			for _, s := range srcs {
				if err := s.Collect(ctx, &smp); err != nil {
					return err
				}
			}
			f.mu.Lock()
			f.seen[node.ID]++
			f.mu.Unlock()
		}
	}
}

func TestRunnerOutage(t *testing.T) {
	sc, err := New(Config{Seed: 1, Start: testStart})
	if err != nil {
		t.Fatal(err)
	}
	var dark *Node
	for _, n := range sc.Nodes {
		if n.outageSpan[1] > 0 {
			dark = n
		}
	}
	// An hour of simulated time a second: the outage (minutes 6-11) takes
	// about 80 ms of wall time.
	clock := NewClock(testStart.Add(5*time.Minute), 3600)
	rebooted := make(chan struct{})
	f := &fakeAgents{runs: map[string][]string{}, spool: map[string]string{}, seen: map[string]int{},
		watch: dark.Info.ID, nodes: len(sc.Nodes), rebooted: rebooted}
	r, err := NewRunner(RunnerConfig{Scenario: sc, Clock: clock, SpoolRoot: t.TempDir(), Agent: f.run, Outages: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Wait for the event itself (the restarted agent has recorded its new
	// boot), however slowly a loaded machine gets there; the bound only
	// keeps a broken runner from hanging the test.
	select {
	case <-rebooted:
	case <-time.After(time.Minute):
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.Restarts() == 0 {
		t.Error("the runner counted no restart")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.runs) != len(sc.Nodes) {
		t.Fatalf("%d of %d nodes ran an agent", len(f.runs), len(sc.Nodes))
	}
	boots := f.runs[dark.Info.ID]
	if len(boots) < 2 || boots[0] == boots[1] {
		t.Fatalf("dark node %s boots %v; want a second run with a new boot id", dark.Info.ID, boots)
	}
	for id, b := range f.runs {
		if id != dark.Info.ID && len(b) != 1 {
			t.Errorf("node %s ran %d times; only the dark node restarts", id, len(b))
		}
	}
}
