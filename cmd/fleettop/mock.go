package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/secretfile"
	"github.com/fleettop/fleettop/mock"
)

// mockOptions configure `fleettop mock`.
type mockOptions struct {
	simOptions
	URL       string
	TokenFile string
	SpoolDir  string
	Stagger   time.Duration
	Outages   bool
	Stats     time.Duration
	MemSpool  bool
	Profile   string
	Insecure  bool
}

func newMockCmd() *cobra.Command {
	var o mockOptions
	c := &cobra.Command{
		Use:   "mock --aggregator URL --nodes N [--token-file F]",
		Short: "Run N simulated collectors (real agents, real sockets) against an aggregator",
		Long: "mock runs one real collector agent per simulated node, each with its own websocket\n" +
			"connection and its own spool (in memory, or on disk under --spool-dir), for load tests\n" +
			"and demos.\n" +
			"The first 40 nodes are the demo's fleet (six regions, NVIDIA and the owned Ascend\n" +
			"sites); beyond 40 the rented nodes repeat, so 1,250 nodes hold about 9,300 GPUs.\n" +
			"The collector token comes from --token-file or FLEETTOP_TOKEN.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMock(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	o.addFlags(c, 0)
	f := c.Flags()
	f.StringVar(&o.URL, "aggregator", "", "aggregator base URL, ws://host:port or wss://host:port")
	f.StringVar(&o.TokenFile, "token-file", "", "file holding the collector token (default: $FLEETTOP_TOKEN)")
	f.StringVar(&o.SpoolDir, "spool-dir", "", "keep the agents' spools on disk in this directory, as real collectors do, so they outlive the mock (default: in memory)")
	f.DurationVar(&o.Stagger, "stagger", 0, "spread the agents' first connections over this long (default: 1ms a node, at most 10s)")
	f.BoolVar(&o.Insecure, "insecure", false, "allow plain ws:// to an aggregator that is not on loopback (the token travels in clear text)")
	f.BoolVar(&o.Outages, "outages", false, "let the scenario's dark node go down and come back")
	f.DurationVar(&o.Stats, "stats", 0, "print CPU use and agent count this often (0: never)")
	f.BoolVar(&o.MemSpool, "memory-spool", false, "keep each agent's spool in memory even with --spool-dir (automatic when the open-file limit cannot hold a spool file and a socket per node)")
	f.StringVar(&o.Profile, "cpuprofile", "", "write a CPU profile of the run to this file")
	_ = f.MarkHidden("cpuprofile")
	return c
}

// collectorToken reads the collector secret from file, or FLEETTOP_TOKEN.
func collectorToken(file string) (string, error) {
	if file == "" {
		if t := strings.TrimSpace(os.Getenv("FLEETTOP_TOKEN")); t != "" {
			return t, nil
		}
		return "", usagef("give --token-file FILE with the collector token, or set FLEETTOP_TOKEN")
	}
	b, err := secretfile.ReadFile(file)
	if err != nil {
		return "", usagef("cannot read the token file: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	return "", usagef("token file %s is empty", file)
}

func runMock(ctx context.Context, o mockOptions, stderr io.Writer) error {
	if o.URL == "" {
		return usagef("give --aggregator URL, e.g. ws://127.0.0.1:8443")
	}
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" || (u.Scheme != "ws" && u.Scheme != "wss") {
		return usagef("--aggregator %q is not a ws:// or wss:// URL", o.URL)
	}
	if err := o.check(); err != nil {
		return err
	}
	if err := collector.CheckURL(o.URL, o.Insecure); err != nil {
		return usagef("--aggregator: %v", err)
	}
	token, err := collectorToken(o.TokenFile)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	spool := o.SpoolDir
	if spool == "" {
		// A spool that dies with the process protects nothing that memory
		// does not: on disk, 1,250 agents would write and fsync 1,250
		// segments a second, stretching each second's burst of frames over
		// the disk's queue instead of sending them as the sampled instant's.
		o.MemSpool = true
	}
	if !o.MemSpool {
		// Each agent holds a socket and a spool segment open.
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && uint64(2*o.Nodes+256) > lim.Cur {
			fmt.Fprintf(stderr, "fleettop mock: %d nodes need more open files than the limit of %d allows with disk spools; keeping the spools in memory\n", o.Nodes, lim.Cur)
			o.MemSpool = true
		}
	}
	if o.Stagger == 0 {
		o.Stagger = min(time.Duration(o.Nodes)*time.Millisecond, 10*time.Second)
	}
	// As in the demo, a faster clock replays the recent past and never runs
	// ahead of the aggregator's wall clock.
	sc, clock, err := o.scenario()
	if err != nil {
		return err
	}
	r, err := mock.NewRunner(mock.RunnerConfig{
		Scenario:    sc,
		Clock:       clock,
		SpoolRoot:   spool,
		Agent:       agentFunc(o.URL, token, o.Insecure, func() time.Duration { return o.Interval }, clock, log),
		Outages:     o.Outages,
		MemorySpool: o.MemSpool,
		Stagger:     o.Stagger,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	gpus := 0
	for _, n := range sc.Nodes {
		gpus += len(n.Info.Devices)
	}
	fmt.Fprintf(stderr, "fleettop mock: %d nodes (%d accelerators) → %s every %v\n", o.Nodes, gpus, o.URL, o.Interval)
	if o.Profile != "" {
		pf, err := os.Create(o.Profile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	if o.Stats > 0 {
		go printStats(ctx, stderr, o.Stats, o.Nodes)
	}
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.Close(cctx)
}

// agentFunc runs a real collector agent for each simulated node.
// interval is asked at each agent start.
func agentFunc(url, token string, insecure bool, interval func() time.Duration, clock *mock.Clock, log *slog.Logger) mock.AgentFunc {
	return func(ctx context.Context, node fleet.Node, srcs []collector.Source, spoolDir string) error {
		node.AgentVersion = agentVersion()
		a, err := collector.NewAgent(collector.AgentConfig{
			Node:     node,
			Sources:  srcs,
			Interval: interval(),
			SpoolDir: spoolDir,
			URL:      url,
			Token:    token,
			Insecure: insecure,
			Logger:   log, // the agent adds its node id
			Clock:    clock.Now,
		})
		if err != nil {
			return err
		}
		err = a.Run(ctx)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil
		}
		return err
	}
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func printStats(ctx context.Context, w io.Writer, every time.Duration, nodes int) {
	t := time.NewTicker(every)
	defer t.Stop()
	lastCPU, last := cpuSeconds(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c := cpuSeconds()
			fmt.Fprintf(w, "fleettop mock: %d nodes, %.3f CPU s/s\n", nodes, (c-lastCPU)/now.Sub(last).Seconds())
			lastCPU, last = c, now
		}
	}
}
