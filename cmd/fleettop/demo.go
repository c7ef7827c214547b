package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleettop/fleettop/aggregator"
	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/secretfile"
	"github.com/fleettop/fleettop/mock"
	"github.com/fleettop/fleettop/tui"
)

// demoOptions configure `fleettop demo`.
type demoOptions struct {
	simOptions
	Headless bool
	Listen   string
	Tokens   string
	DataDir  string
	NoColor  bool
	Config   string
}

func newDemoCmd() *cobra.Command {
	var o demoOptions
	c := &cobra.Command{
		Use:   "demo [--nodes N] [--seed S] [--speed X] [--headless]",
		Short: "Run a simulated multi-region fleet, an aggregator and the TUI in one process",
		Long: "demo simulates a leased fleet across Singapore, Johor, Dubai, Riyadh and home sites in\n" +
			"Hangzhou and Beijing, runs a real collector agent per node against a real aggregator on\n" +
			"a loopback port, and opens the TUI on it. --headless prints the aggregator URL and a\n" +
			"viewer token instead, so another `fleettop tui`, a scraper or a test can attach.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	o.addFlags(c, mock.DefaultNodes)
	f := c.Flags()
	f.BoolVar(&o.Headless, "headless", false, "no TUI: print the aggregator URL and a viewer token, run until interrupted")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:0", "aggregator listen address (loopback)")
	f.StringVar(&o.Tokens, "tokens", "", "token file in the aggregator's format (default: generated tokens)")
	f.StringVar(&o.DataDir, "data-dir", "", "aggregator data directory (default: a temporary directory, removed at exit)")
	f.BoolVar(&o.NoColor, "no-color", false, "TUI without colour")
	f.StringVar(&o.Config, "config", "", "aggregator config (default: one written for the simulated fleet: USD display, its exchange rates, cn-customer data kept in CN, regional budgets)")
	return c
}

// demoTokens are the tokens the demo's aggregator accepts and the secrets its
// own collectors and viewer use.
type demoTokens struct {
	tokens    *aggregator.Tokens
	collector string
	viewer    string
	generated bool
}

// loadDemoTokens reads a token file, or generates a collector and a viewer
// token when file is "".
func loadDemoTokens(file string) (demoTokens, error) {
	if file == "" {
		c, v := secret(), secret()
		ts, err := aggregator.ParseTokens(strings.NewReader(fmt.Sprintf("collector demo %s *\nviewer demo %s\n", c, v)), "demo tokens")
		return demoTokens{tokens: ts, collector: c, viewer: v, generated: true}, err
	}
	ts, err := aggregator.LoadTokens(file)
	if err != nil {
		return demoTokens{}, usagef("token file: %v", err)
	}
	f, err := secretfile.Open(file)
	if err != nil {
		return demoTokens{}, usagef("token file: %v", err)
	}
	defer f.Close()
	d := demoTokens{tokens: ts}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fs := strings.Fields(line)
		switch {
		case len(fs) < 3:
		case fs[0] == string(aggregator.RoleCollector) && d.collector == "" && (len(fs) == 3 || fs[3] == "*"):
			d.collector = fs[2]
		case fs[0] == string(aggregator.RoleViewer) && d.viewer == "":
			d.viewer = fs[2]
		}
	}
	if d.collector == "" || d.viewer == "" {
		return demoTokens{}, usagef("token file %s needs a collector token for every node (glob *) and a viewer token", file)
	}
	return d, nil
}

func secret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

func runDemo(ctx context.Context, o demoOptions, stdout, stderr io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	toks, err := loadDemoTokens(o.Tokens)
	if err != nil {
		return err
	}
	dataDir, log, cleanup, err := demoWorkspace(o, stderr)
	if err != nil {
		return err
	}
	defer cleanup()

	sc, clock, err := o.scenario()
	if err != nil {
		return err
	}
	blindID := addBlindNode(sc)
	cfgFile := o.Config
	if cfgFile == "" {
		cfgFile = filepath.Join(dataDir, "demo-aggregator.yaml")
		if err := os.WriteFile(cfgFile, demoConfig(sc), 0o600); err != nil {
			return fmt.Errorf("demo config: %w", err)
		}
	}

	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return usagef("cannot listen on %s: %v", o.Listen, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, stopAgg, err := startAggregator(ctx, aggregatorOptions{
		DataDir:    dataDir,
		Tokens:     toks.tokens,
		ConfigFile: cfgFile,
		Name:       "demo",
		Interval:   o.Interval,
		Logger:     log,
		// With --speed, simulated time trails the wall clock until it
		// catches up: accrue leases in simulated time, as the samples are.
		LedgerClock: clock.Now,
		// While catching up, agents sample every few simulated seconds:
		// stale after 10 of them, offline after the default 30, so the dark
		// node's offline alert opens and ends inside its five dark minutes.
		StaleAfter: 10 * time.Second,
	}, ln)
	if err != nil {
		ln.Close()
		return err
	}
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 20*time.Second)
		defer c()
		_ = stopAgg(sctx)
	}()
	addr := ln.Addr().String()

	agent := agentFunc("ws://"+addr, toks.collector, true /* its own listener, in this process */, demoAgentInterval(o, clock), clock, log)
	r, err := newDemoRunner(sc, clock, dataDir, agent, blindID, log)
	if err != nil {
		return err
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 20*time.Second)
		defer c()
		_ = r.Close(sctx)
	}()

	if err := printAttach(stdout, addr, dataDir, toks); err != nil {
		return err
	}
	if o.Headless {
		<-ctx.Done()
		return nil
	}
	return tui.Run(ctx, tui.Options{
		Aggregators: []tui.Endpoint{{URL: "http://" + addr, Token: toks.viewer}},
		// The aggregator converts every amount into its display currency;
		// the TUI only formats.
		NoColor: o.NoColor,
		// Ages (alerts, last seen) in simulated time, as the aggregator's.
		Clock: clock.Now,
		Hint:  "demo: 6 shows alerts, : jumps to a node or job (tab completes), ? lists every key",
	})
}

// demoWorkspace makes the demo's data directory (o.DataDir, or a temporary
// one that cleanup removes) and its logger: to stderr when headless, to
// demo.log in the data directory under the TUI, where logs would tear the
// screen.
func demoWorkspace(o demoOptions, stderr io.Writer) (dataDir string, log *slog.Logger, cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	dataDir = o.DataDir
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "fleettop-demo-"); err != nil {
			return "", nil, nil, fmt.Errorf("data directory: %w", err)
		}
		undo = append(undo, func() { os.RemoveAll(dataDir) })
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		cleanup()
		return "", nil, nil, usagef("cannot create data directory %s: %v", dataDir, err)
	}
	logOut := stderr
	if !o.Headless {
		lf, err := os.OpenFile(filepath.Join(dataDir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			cleanup()
			return "", nil, nil, fmt.Errorf("demo log: %w", err)
		}
		undo = append(undo, func() { lf.Close() })
		logOut = lf
	}
	return dataDir, slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn})), cleanup, nil
}

// demoAgentInterval is the agents' sampling interval. While simulated time
// runs fast, agents sample faster too, so samples stay about an interval of
// simulated time apart and the history has no holes (the store counts a gap
// of more than five intervals as dark time); at most 20 times a second, so
// past --speed 100 history thins out. Once caught up, the runner restarts
// them at the normal interval.
func demoAgentInterval(o demoOptions, clock *mock.Clock) func() time.Duration {
	fast := max(time.Duration(float64(o.Interval)/o.Speed), min(o.Interval, 50*time.Millisecond))
	return func() time.Duration {
		if clock.CatchUpIn() > 0 {
			return fast
		}
		return o.Interval
	}
}

// newDemoRunner runs an agent a simulated node, spooled under dataDir, with
// outages; the node blindID is blind (see blindAgent).
func newDemoRunner(sc *mock.Scenario, clock *mock.Clock, dataDir string, agent mock.AgentFunc, blindID string, log *slog.Logger) (*mock.Runner, error) {
	return mock.NewRunner(mock.RunnerConfig{
		Scenario:  sc,
		Clock:     clock,
		SpoolRoot: filepath.Join(dataDir, "spool"),
		Agent:     blindAgent(blindID, agent),
		Outages:   true,
		Logger:    log,
		// Restart the agents at the normal interval once caught up.
		RestartAfter: clock.CatchUpIn() + time.Second,
	})
}

// printAttach writes a viewer token file beside the data, so the demo can
// be watched from another terminal with a plain `fleettop tui`, and says how.
func printAttach(stdout io.Writer, addr, dataDir string, toks demoTokens) error {
	viewerFile := filepath.Join(dataDir, "viewer.token")
	if err := os.WriteFile(viewerFile, []byte(toks.viewer+"\n"), 0o600); err != nil {
		return fmt.Errorf("demo viewer token: %w", err)
	}
	attach := fmt.Sprintf("fleettop tui --aggregator http://%s --token-file %s", addr, viewerFile)
	fmt.Fprintf(stdout, "aggregator: http://%s\n", addr)
	if toks.generated {
		fmt.Fprintf(stdout, "viewer token: %s\n", toks.viewer)
	}
	fmt.Fprintf(stdout, "data dir: %s\nwatch it from another terminal: %s\n", dataDir, attach)
	return nil
}

// demoConfig is the aggregator config for the simulated fleet: totals in
// USD at the simulation's exchange rates, customer data from China kept in
// China, personal data kept in the Asian and Gulf regions it serves, and
// monthly budgets by region, Singapore's set tight enough to warn.
func demoConfig(sc *mock.Scenario) []byte {
	var b strings.Builder
	b.WriteString("# Written by fleettop demo for its simulated fleet.\ncurrency: USD\nrates:\n")
	rates := mock.USDRates()
	for _, c := range slices.Sorted(maps.Keys(rates)) {
		fmt.Fprintf(&b, "  %s: \"%s\"\n", c, rates[c])
	}
	b.WriteString("residency:\n  cn-customer: [CN]\n  pii: [SG, MY, AE, SA]\nleases_ending_within: 7d\nbudgets:\n  regions:\n")
	burn := sc.MonthlyBurnUSD()
	for _, r := range slices.Sorted(maps.Keys(burn)) {
		f := 1.25
		if r == "Singapore" {
			f = 0.9
		}
		fmt.Fprintf(&b, "    %s: \"%.0f\"\n", r, math.Ceil(burn[r]*f/1000)*1000)
	}
	return []byte(b.String())
}

// addBlindNode adds one node to the demo fleet, beyond --nodes, whose NVML
// fails at start (a driver update that did not load): its lease bills its
// GPUs and no sensor sees one, so the demo shows a paid-but-blind node
// (degraded, with its alert and its blind GPU-hours in the report). It is an
// extra node, a copy of the last rented NVIDIA node without faults, so the
// fleet of --nodes stays online as the scenario made it; fleettop mock has
// no such node. It returns the node's id ("" when there is none to copy).
func addBlindNode(sc *mock.Scenario) string {
	for i := len(sc.Nodes) - 1; i >= 0; i-- {
		n := sc.Nodes[i]
		if n.Home || n.Model.Vendor != fleet.VendorNVIDIA || len(n.Faults()) > 0 || n.Info.Lease.PricePerGPUHour.Micros == 0 {
			continue
		}
		b := *n
		b.Info.ID = n.Info.ID + "-nvml-fail"
		b.Info.Hostname = n.Info.Hostname + "-nvml-fail"
		b.Info.Lease.ID = n.Info.Lease.ID + "-b"
		b.Info.Labels = maps.Clone(n.Info.Labels)
		b.Info.Devices = nil // enumerated by nobody
		sc.Nodes = append(sc.Nodes, &b)
		return b.Info.ID
	}
	return ""
}

// blindAgent runs node id with every source failing at start, as NVML does
// when the driver does not load; other nodes run as agent runs them.
func blindAgent(id string, agent mock.AgentFunc) mock.AgentFunc {
	return func(ctx context.Context, node fleet.Node, srcs []collector.Source, spoolDir string) error {
		if node.ID == id {
			for i, s := range srcs {
				srcs[i] = failedSource{name: s.Name()}
			}
		}
		return agent(ctx, node, srcs, spoolDir)
	}
}

// failedSource is a source whose Start fails: the collector runs without
// it and reports it down upstream.
type failedSource struct{ name string }

var _ collector.Source = failedSource{}

func (f failedSource) Name() string { return f.name }

func (f failedSource) Start(context.Context) (collector.Inventory, error) {
	return collector.Inventory{}, errors.New("NVML: driver/library version mismatch (simulated: the driver was updated under the running node)")
}

func (failedSource) Collect(context.Context, *fleet.Sample) error { return nil }
func (failedSource) Close() error                                 { return nil }
