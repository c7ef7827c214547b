package main

import (
	"context"
	cryptotls "crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/fleettop/fleettop/aggregator"
	"github.com/fleettop/fleettop/aggregator/insight"
	promexp "github.com/fleettop/fleettop/exporters/prometheus"
	"github.com/fleettop/fleettop/exporters/remotewrite"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/sdnotify"
	"github.com/fleettop/fleettop/store"
	"github.com/fleettop/fleettop/wire"
)

// aggregatorOptions configure startAggregator; `fleettop aggregator` fills
// them from flags, `fleettop demo` from its own setup.
type aggregatorOptions struct {
	DataDir    string             // required: the SQLite store lives in DataDir/fleettop.db
	TokensFile string             // token file; ignored when Tokens is set
	Tokens     *aggregator.Tokens // tokens built in-process (demo)
	ConfigFile string             // aggregator.yaml for insights and exporters; "" = defaults
	TLSCert    string             // with TLSKey: serve wss://
	TLSKey     string             //
	Insecure   bool               // allow plain ws:// on non-loopback listeners
	// MetricsPublic serves /metrics without a token.
	MetricsPublic bool
	Name          string        // shown to viewers; default: the listen address
	Interval      time.Duration // expected collector interval; 0: 1s
	Logger        *slog.Logger
	// Bounds against a broken or hostile node (0: the aggregator's defaults).
	MaxNodesPerToken int           // node ids one collector token may send for (4096)
	NodeTTL          time.Duration // idle nodes are forgotten after this (24h)
	MaxConns         int           // open connections per listener (32768)
	// LedgerClock is the time the store accrues leases against and the
	// aggregator runs on: node states, alert starts and ends, "now" for
	// viewers (nil: the wall clock). The demo passes its simulated clock,
	// so that hours the simulation has not reached yet are not booked as
	// paid but dark, and a node dark for five simulated minutes is offline
	// for five minutes.
	LedgerClock func() time.Time
	// Heartbeat is called each time the commit loop comes round (the
	// systemd watchdog); nil: none.
	Heartbeat func()
	// StaleAfter overrides the aggregator's stale threshold (0: 3 intervals).
	StaleAfter time.Duration
	// CommitInterval is how often applied samples are committed (0: every
	// second). The demo leaves it so: at --speed 60 a real second is a
	// simulated minute, and its reports follow the live figures that
	// closely.
	CommitInterval time.Duration
}

func newAggregatorCmd() *cobra.Command {
	var (
		o      aggregatorOptions
		listen string
	)
	c := &cobra.Command{
		Use:   "aggregator --listen ADDR --data-dir DIR --tokens FILE",
		Short: "Run the aggregator: collector ingest, live fleet, viewers, API and metrics",
		Long: `Run the aggregator on the jump host. Collectors push samples to /v1/collect,
viewers watch /v1/watch, and /api/v1/fleet, /api/v1/nodes/{id} and /metrics serve
the live fleet. Plain ws:// is accepted only on loopback unless --insecure;
give --tls-cert and --tls-key to serve wss://.

Token file: one token per line, "ROLE NAME SECRET [NODE-GLOB]" with ROLE
collector or viewer; a collector token may only send for node ids matching
its glob (default *); "#" starts a comment.

The aggregator runs Go's garbage collector at GOGC=25 unless GOGC is set in
its environment (docs/BENCHMARKS.md, "Aggregator memory"), and on one core
(GOMAXPROCS=1) while it uses under a quarter of one, unless GOMAXPROCS is set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" {
				return usagef("give --listen ADDR, e.g. --listen 127.0.0.1:7070")
			}
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			setAggregatorGC()
			sd := sdnotify.New(o.Logger, time.Second)
			o.Heartbeat = sd.Watchdog // fed by the commit loop, not by a timer
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return usagef("cannot listen on %s: %v", listen, err)
			}
			if o.Name == "" {
				o.Name = listen
			}
			ctx := cmd.Context()
			srv, stop, err := startAggregator(ctx, o, ln)
			if err != nil {
				ln.Close()
				return err
			}
			o.Logger.Info("aggregator listening", "addr", ln.Addr().String(), "tls", o.TLSCert != "", "data_dir", o.DataDir)
			gctx, stopGovern := context.WithCancel(ctx)
			defer stopGovern()
			go governProcs(gctx, o.Logger)
			notifySystemd(ctx, sd, srv)
			o.Logger.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			return stop(sctx)
		},
	}
	f := c.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:7070", "address to listen on (host:port)")
	f.StringVar(&o.DataDir, "data-dir", "", "directory of the aggregator's database (fleettop.db)")
	f.StringVar(&o.TokensFile, "tokens", "", "token file: ROLE NAME SECRET [NODE-GLOB] per line")
	f.StringVar(&o.ConfigFile, "config", "", "aggregator.yaml: currency, prices, budgets, residency and alert rules")
	f.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate file (PEM): serve wss://")
	f.StringVar(&o.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	f.BoolVar(&o.Insecure, "insecure", false, "allow plain ws:// on a non-loopback address (trusted networks only)")
	f.BoolVar(&o.MetricsPublic, "metrics-public", false, "serve /metrics without a token")
	f.StringVar(&o.Name, "name", "", "name shown to viewers (default: the listen address)")
	f.DurationVar(&o.Interval, "interval", time.Second, "collectors' sampling interval; stale and offline derive from it")
	f.DurationVar(&o.CommitInterval, "commit-interval", defaultCommitInterval, "how often applied samples are written to the database and acked (1s to 15s)")
	f.IntVar(&o.MaxNodesPerToken, "max-nodes-per-token", 4096, "node ids one collector token may send for; more are refused")
	f.DurationVar(&o.NodeTTL, "node-ttl", 24*time.Hour, "forget a node not heard from for this long (viewers are told)")
	f.IntVar(&o.MaxConns, "max-conns", 32768, "open connections at most; more are closed at once and counted")
	return c
}

// defaultCommitInterval is how often `fleettop aggregator` commits. Each
// commit drains every GPU's accumulator into a journal entry and writes it
// to SQLite: every second that was 10–19 % of the aggregator's CPU on the
// mock's stream at 10,000 GPUs (docs/BENCHMARKS.md, "Commit every 5 s").
// Every 5 s loses nothing: a collector keeps what was not acked (acks go
// out every 15 s) and sends it again after a crash; reports read samples
// only up to the last minute's fold anyway.
const defaultCommitInterval = 5 * time.Second

// aggregatorGOGC is the aggregator's GC target when GOGC is not set. Its
// heap is mostly long-lived fleet state (history rings, decoder and exporter
// state, accumulators: about 5 KiB a GPU) with little garbage a second
// (about 1.4 MB/s at 12,000 GPUs), so at Go's default of 100 half the
// process is room for garbage that comes slowly: at 25 the heap peaks at
// 1.25× the live heap instead of 2×, and a cycle comes every 6–8 s instead
// of every 30 s. Measured in the ingest check's scenario (docs/BENCHMARKS.md,
// "Aggregator memory"): RSS beyond the idle baseline 14.5 → 9.3–10.4 KiB a
// GPU; GC and malloc together 0.17–0.43 s CPU in 20 s, as before the
// allocation cuts at GOGC=100 (0.32–0.58 s).
const aggregatorGOGC = 25

// setAggregatorGC applies aggregatorGOGC unless the environment sets GOGC.
// Only `fleettop aggregator` does this: the demo runs the TUI and simulated
// collectors in the same process, whose garbage is another matter.
func setAggregatorGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(aggregatorGOGC)
	}
}

// startAggregator opens the store in o.DataDir, builds insights and
// exporters from o.ConfigFile ("" = defaults), and serves on ln until ctx
// ends or the returned stop function is called. stop commits, closes every
// session with "going away" and closes the store; it is safe to call twice.
func startAggregator(ctx context.Context, o aggregatorOptions, ln net.Listener) (*aggregator.Server, func(context.Context) error, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := checkServing(o, ln); err != nil {
		return nil, nil, err
	}
	tokens, err := aggregatorTokens(o)
	if err != nil {
		return nil, nil, err
	}
	// The cost/policy engine and the exporters come from the config file.
	cfg, err := insight.LoadConfig(o.ConfigFile)
	if err != nil {
		return nil, nil, usagef("config: %v", err)
	}
	remotes, err := remotewrite.LoadConfig(o.ConfigFile)
	if err != nil {
		return nil, nil, usagef("config: %v", err)
	}
	st, eng, err := openLedger(o, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	var live atomic.Pointer[aggregator.Server] // set before serving: scrapes come later
	exp := promexp.NewExporter(func(fn func(promexp.NodeReader)) {
		if s := live.Load(); s != nil {
			s.EachNode(func(n *aggregator.LiveNode) { fn(n) })
		}
	}, servedInsights{eng, &live})
	srv, err := aggregator.New(aggregator.Config{
		Tokens:         tokens,
		Recorder:       st,
		Marks:          st,
		History:        st,
		Insights:       eng,
		IdleThreshold:  cfg.Rules.IdleThreshold,
		Name:           o.Name,
		Interval:       o.Interval,
		CommitInterval: o.CommitInterval,
		StaleAfter:     o.StaleAfter,
		Clock:          o.LedgerClock,
		MetricsPublic:  o.MetricsPublic,
		Insecure:       o.Insecure,
		MetricsHandler: func(self prometheus.Gatherer) http.Handler { return exp.Handler(self, log) },
		Logger:         log,
		Heartbeat:      o.Heartbeat,

		MaxNodesPerToken: o.MaxNodesPerToken,
		NodeTTL:          o.NodeTTL,
		MaxConns:         o.MaxConns,
	})
	if err != nil {
		_ = eng.Close(ctx)
		st.Close()
		return nil, nil, fmt.Errorf("start aggregator: %w", err)
	}
	live.Store(srv)
	// Closed in this order on stop: the remote writers, newest first, then
	// the engine; the store last, after the server's final commit.
	closers, err := startRemoteWrites(o.DataDir, remotes, srv, exp, log)
	closers = append(closers, eng.Close)
	if err != nil {
		_ = srv.Close(ctx)
		for _, c := range closers {
			_ = c(ctx)
		}
		st.Close()
		return nil, nil, err
	}
	return srv, serveAggregator(ctx, srv, ln, o, closers, st, log), nil
}

// checkServing refuses options the aggregator cannot serve with, or not
// safely.
func checkServing(o aggregatorOptions, ln net.Listener) error {
	if o.CommitInterval != 0 && (o.CommitInterval < time.Second || o.CommitInterval > 15*time.Second) {
		return usagef("--commit-interval %v: give 1s to 15s (acks go out every 15 s, after a commit)", o.CommitInterval)
	}
	if o.DataDir == "" {
		return usagef("give --data-dir DIR, the directory for the aggregator's database")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return usagef("give both --tls-cert and --tls-key, or neither")
	}
	tls := o.TLSCert != ""
	if tls {
		if _, err := cryptotls.LoadX509KeyPair(o.TLSCert, o.TLSKey); err != nil {
			return usagef("cannot load the TLS certificate and key: %v", err)
		}
	}
	if !tls && !aggregator.IsLoopback(ln.Addr()) && !o.Insecure {
		return usagef("refusing plain ws:// on %s, which is not loopback: give --tls-cert and --tls-key, or --insecure on a trusted network", ln.Addr())
	}
	return nil
}

// aggregatorTokens are o.Tokens, or else those of o.TokensFile.
func aggregatorTokens(o aggregatorOptions) (*aggregator.Tokens, error) {
	if o.Tokens != nil {
		return o.Tokens, nil
	}
	if o.TokensFile == "" {
		return nil, usagef("give --tokens FILE (one \"ROLE NAME SECRET [NODE-GLOB]\" per line); without it nobody can connect")
	}
	t, err := aggregator.LoadTokens(o.TokensFile)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return t, nil
}

// openLedger opens the database in o.DataDir, creating the directory, and
// the cost and policy engine on it.
func openLedger(o aggregatorOptions, cfg insight.Config, log *slog.Logger) (*store.Store, *insight.Engine, error) {
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return nil, nil, usagef("cannot create data directory %s: %v", o.DataDir, err)
	}
	st, err := store.Open(filepath.Join(o.DataDir, "fleettop.db"), store.Options{
		IdleThreshold: cfg.Rules.IdleThreshold,
		Interval:      o.Interval,
		Price:         cfg.TablePrice,
		Clock:         o.LedgerClock,
	})
	if err != nil {
		return nil, nil, usagef("cannot open the database in %s: %v", o.DataDir, err)
	}
	eng, err := insight.New(cfg, st, log)
	if err != nil {
		st.Close()
		return nil, nil, usagef("config: %v", err)
	}
	return st, eng, nil
}

// startRemoteWrites starts a remote_write writer for each endpoint: the same
// series as /metrics, buffered on disk per endpoint under dataDir. It
// returns the close functions of the writers it started, newest first, even
// when one fails to start.
func startRemoteWrites(dataDir string, remotes []remotewrite.Config, srv *aggregator.Server, exp *promexp.Exporter, log *slog.Logger) ([]func(context.Context) error, error) {
	if len(remotes) == 0 {
		return nil, nil
	}
	var closers []func(context.Context) error
	reg := srv.Registry()
	rwm := remotewrite.NewMetrics(reg)
	for _, rc := range remotes {
		w, err := remotewrite.New(rc, func(ts time.Time, n int, emit func([]byte, int)) int {
			return exp.WriteRequests(ts, n, reg, emit)
		}, filepath.Join(dataDir, "remote_write"), rwm, log)
		if err != nil {
			return closers, usagef("config: %v", err)
		}
		w.Start()
		closers = append([]func(context.Context) error{w.Close}, closers...)
		log.Info("remote_write", "name", rc.Name, "url", rc.URL, "interval", rc.Interval)
	}
	return closers, nil
}

// serveAggregator serves srv on ln until ctx ends or the returned stop is
// called. stop closes srv, waits for Serve to return, runs closers in order
// and closes the store last, so the shutdown deadline holds for the last
// commit too; it is safe to call twice.
func serveAggregator(ctx context.Context, srv *aggregator.Server, ln net.Listener, o aggregatorOptions,
	closers []func(context.Context) error, st *store.Store, log *slog.Logger) func(context.Context) error {
	var (
		once    sync.Once
		stopErr error
		served  = make(chan struct{})
	)
	stop := func(ctx context.Context) error {
		once.Do(func() {
			errs := []error{srv.Close(ctx)}
			<-served
			for _, c := range closers {
				errs = append(errs, c(ctx))
			}
			errs = append(errs, st.CloseContext(ctx))
			stopErr = errors.Join(errs...)
		})
		return stopErr
	}
	go func() {
		defer close(served)
		var err error
		if o.TLSCert != "" {
			err = srv.ServeTLS(ln, o.TLSCert, o.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if err != nil {
			log.Error("aggregator stopped serving", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = stop(sctx)
		case <-served:
		}
	}()
	return stop
}

// notifySystemd speaks sd_notify for the Type=notify unit until ctx ends:
// READY once serving and STATUS when sessions come or go or readiness
// changes. It never feeds the watchdog: the commit loop does (Heartbeat), so
// a wedged commit gets the process restarted. Without NOTIFY_SOCKET it only
// waits for ctx.
func notifySystemd(ctx context.Context, sd *sdnotify.Notifier, srv *aggregator.Server) {
	if !sd.Enabled() {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		status := srv.Status()
		if why := srv.Ready(); why != "" {
			status += "; NOT READY: " + why
		}
		sd.Status(status)
		select {
		case <-ctx.Done():
			sd.Stopping()
			return
		case <-t.C:
		}
	}
}

// servedInsights is the engine as the exporter reads it: placements from the
// engine, fleet aggregates from the server's cache (the figures viewers see),
// so a scrape does not walk the fleet's money once more.
type servedInsights struct {
	*insight.Engine
	live *atomic.Pointer[aggregator.Server]
}

func (si servedInsights) Summarize(now time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	if s := si.live.Load(); s != nil {
		return s.Summary(now)
	}
	return si.Engine.Summarize(now)
}
