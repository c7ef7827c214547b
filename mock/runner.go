package mock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/lifecycle"
)

// AgentFunc runs one collector agent for node (identity with devices left
// for the sources to fill) on srcs, spooling under spoolDir, until ctx ends.
// The command supplies it (a real collector.Agent); tests supply fakes.
type AgentFunc func(ctx context.Context, node fleet.Node, srcs []collector.Source, spoolDir string) error

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Scenario *Scenario
	Clock    *Clock // simulated time; nil: the wall clock
	// SpoolRoot is the directory under which every node gets its own spool
	// directory (SpoolRoot/<node id>).
	SpoolRoot string
	// MemorySpool gives every agent an in-memory spool (spoolDir "")
	// instead of a directory under SpoolRoot.
	MemorySpool bool
	Agent       AgentFunc
	// Outages makes nodes go dark as the scenario says: their agent stops,
	// and a fresh one (a new boot, the same spool) starts when they return.
	Outages bool
	// Stagger spreads the agents' first connections over this much wall time,
	// so thousands of them do not dial in the same millisecond.
	Stagger time.Duration
	// RestartAfter, when positive, restarts every agent once after this much
	// wall time (same spool and boot), so that an AgentFunc that chooses its
	// sampling interval from the clock can slow down once a catch-up clock
	// has caught up.
	RestartAfter time.Duration
	Logger       *slog.Logger
}

// Runner runs one collector agent per simulated node.
type Runner struct {
	cfg    RunnerConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	restarts int
	errs     []error
}

// NewRunner checks cfg and returns a runner; Start starts it.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Scenario == nil || cfg.Agent == nil || (cfg.SpoolRoot == "" && !cfg.MemorySpool) {
		return nil, errors.New("mock runner: scenario, agent and spool root are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = NewClock(time.Now(), 1)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg}, nil
}

// Start starts every node's agent; they run until Close.
func (r *Runner) Start(ctx context.Context) error {
	if !r.cfg.MemorySpool {
		if err := os.MkdirAll(r.cfg.SpoolRoot, 0o700); err != nil {
			return fmt.Errorf("mock runner: spool root: %w", err)
		}
	}
	ctx, r.cancel = context.WithCancel(ctx)
	nodes := r.cfg.Scenario.Nodes
	for i, n := range nodes {
		var delay time.Duration
		if r.cfg.Stagger > 0 && len(nodes) > 1 {
			delay = r.cfg.Stagger * time.Duration(i) / time.Duration(len(nodes))
		}
		r.wg.Add(1)
		go r.node(ctx, n, delay)
	}
	return nil
}

// Close stops every agent and waits for them.
func (r *Runner) Close(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	if err := lifecycle.Wait(ctx, &r.wg); err != nil {
		return fmt.Errorf("mock runner: close: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

// node supervises one node: its agent runs while the node is up.
func (r *Runner) node(ctx context.Context, n *Node, delay time.Duration) {
	defer r.wg.Done()
	if !sleep(ctx, delay) {
		return
	}
	var restartAt time.Time
	if r.cfg.RestartAfter > 0 {
		restartAt = time.Now().Add(r.cfg.RestartAfter - delay)
	}
	spool := filepath.Join(r.cfg.SpoolRoot, n.Info.ID)
	if r.cfg.MemorySpool {
		spool = ""
	}
	clock := r.cfg.Clock
	boots, wasDark := 0, false
	for {
		now := clock.Now()
		if r.cfg.Outages && n.Dark(now) {
			if !wasDark {
				r.cfg.Logger.Info("mock: node dark", "node", n.Info.ID)
			}
			wasDark = true
			if !sleep(ctx, max(clock.Real(n.NextChange(now).Sub(now)), 10*time.Millisecond)) {
				return
			}
			continue
		}
		info := n.Info
		info.Devices = nil
		if wasDark {
			// Back from the dark: a new boot, the same spool.
			wasDark = false
			boots++
			r.mu.Lock()
			r.restarts++
			r.mu.Unlock()
		}
		if boots > 0 {
			k := hash2(n.key, uint64(boots)+0xb007)
			info.BootID = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uint32(k), uint16(k>>32), uint16(k>>48), uint16(k>>8), k>>16&0xffffffffffff)
		}
		var until time.Duration // wall time this run may last; 0: until ctx ends
		var darkAt time.Time    // when the node goes dark next; zero: never
		if r.cfg.Outages {
			if next := n.NextChange(now); !next.IsZero() {
				darkAt = next
				until = max(clock.Real(next.Sub(now)), time.Millisecond)
			}
		}
		if left := time.Until(restartAt); !restartAt.IsZero() && left > 0 && (until == 0 || left < until) {
			until = left
		}
		runCtx, stop := ctx, context.CancelFunc(func() {})
		if until > 0 {
			runCtx, stop = context.WithTimeout(ctx, until)
		}
		srcs := []collector.Source{NewSource(n, SourceOptions{Now: clock.Now})}
		err := r.cfg.Agent(runCtx, info, srcs, spool)
		stop()
		if ctx.Err() != nil {
			return
		}
		// The run ended at the start of an outage. On a loaded machine this
		// goroutine may wake after a short outage is already over; the node
		// still went dark, so the next run is a new boot all the same.
		if !darkAt.IsZero() && !clock.Now().Before(darkAt) {
			wasDark = true
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			r.mu.Lock()
			r.errs = append(r.errs, fmt.Errorf("node %s: %w", n.Info.ID, err))
			r.mu.Unlock()
			r.cfg.Logger.Warn("mock: agent stopped", "node", n.Info.ID, "error", err)
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
