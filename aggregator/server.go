package aggregator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fleettop/fleettop/internal/lifecycle"
	"github.com/fleettop/fleettop/internal/opt"
	"github.com/fleettop/fleettop/wire"
)

// Config configures a Server.
type Config struct {
	Tokens   *Tokens  // from LoadTokens / ParseTokens; required
	Recorder Recorder // required (store.Store in production)
	// Marks keeps operators' alert acknowledgements and silences (store.Store
	// in production); nil keeps them in memory only.
	Marks AlertMarker
	// History sums the durable rollups for GET /api/v1/history (store.Store
	// in production); nil serves the live ring only.
	History  HistoryReader
	Insights Insights // optional; nil: burn from lease price × device count, no alerts
	Name     string   // shown to viewers
	// Interval is the expected collector interval (default 1s); StaleAfter
	// and OfflineAfter derive from it when zero.
	Interval time.Duration
	// StaleAfter: a node not heard from for longer is stale (default 3 intervals).
	StaleAfter time.Duration
	// OfflineAfter: a node not heard from for longer is offline (default 30s,
	// at least twice StaleAfter).
	OfflineAfter time.Duration
	Clock        func() time.Time // default time.Now (tests inject)
	// SampleClock is the clock sample times are corrected onto, the one the
	// store books by (default Clock). fleettop demo passes its simulated clock.
	SampleClock   func() time.Time
	MetricsPublic bool // serve /metrics without a token
	// Insecure allows plain ws:// and http on non-loopback listeners.
	Insecure   bool
	Collectors []prometheus.Collector // extra collectors served on /metrics (exporters)
	// MetricsHandler, when set, serves /metrics (behind the viewer check
	// unless MetricsPublic); it is handed the registry of the server's own
	// series. Nil: promhttp over that registry.
	MetricsHandler func(self prometheus.Gatherer) http.Handler
	Logger         *slog.Logger
	// FlushInterval is the server's tick (default 1s): node states are
	// checked, the heartbeat beats and, every CommitInterval, applied
	// samples are committed.
	FlushInterval time.Duration
	// CommitInterval is how often applied samples are committed and then
	// acked (default FlushInterval; rounded to whole FlushIntervals). A
	// collector keeps what was not acked and sends it again after a
	// reconnect, so committing less often loses nothing when the process
	// dies: it only lets readers of the database (fleettop report) see
	// node metadata and events that much later, and sends that much more
	// again after a crash. Close commits everything.
	CommitInterval time.Duration
	// AckInterval is the least time between two acks to one collector
	// (default 15 × FlushInterval, at least CommitInterval). An ack only
	// lets the collector trim its spool, so acking less often costs nothing
	// but spool space (15 records of a few hundred bytes) and records
	// resent after a reconnect, which are dropped by sequence, and saves a
	// websocket write per node per flush: at 100,000 GPUs acks every second
	// were a third of the aggregator's CPU, and every 5 s still 9 % on the
	// mock's stream. The final ack at shutdown is sent at once.
	AckInterval time.Duration
	// ViewerInterval is how often viewers get fresh fleet aggregates
	// (default 1s); node rows go out sooner, shortly after ingest.
	ViewerInterval time.Duration
	// IdleThreshold is the utilisation below which a GPU counts as idle in
	// watch rows (default 0.05).
	IdleThreshold float64
	// WriteTimeout bounds every websocket write; a peer that does not take a
	// message in time is dropped (default 5s).
	WriteTimeout time.Duration
	// HelloTimeout bounds the wait for a collector's Hello (default 10s).
	HelloTimeout time.Duration
	// MaxNodesPerToken bounds how many node ids one collector token may send
	// for (default 4096); a session for one more is refused (CloseLimit).
	MaxNodesPerToken int
	// NodeTTL: a node without a session and not heard from for longer is
	// forgotten; viewers get its id in Removed (default 24h).
	NodeTTL time.Duration
	// MaxConns bounds open HTTP connections per listener; more are closed
	// at once and counted (default 32768).
	MaxConns int
	// IdleTimeout closes keep-alive connections idle for longer (default 2m).
	IdleTimeout time.Duration
	// TakeoverPing is how long a session holding a node id has to answer a
	// ping when another collector introduces itself with the same id: if it
	// answers, the newcomer is refused (CloseNodeInUse); if not, the
	// newcomer takes over (default 3s).
	TakeoverPing time.Duration
	// MaxSeqJump bounds how far a record's sequence may jump past the last
	// applied one (default wire.DefaultMaxSeqJump); a larger jump refuses
	// the session.
	MaxSeqJump uint64
	// Heartbeat, when set, is called by the commit loop each time it comes
	// round (a commit done, failed or not needed): feed the systemd
	// watchdog from it, so that a wedged commit loop gets the process
	// restarted. It must not block.
	Heartbeat func()
	// CommitStuckAfter: a commit running longer makes /healthz answer 503
	// (default 30s).
	CommitStuckAfter time.Duration
}

// Server is the aggregator: collector ingest, live fleet, viewers and API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	clock   func() time.Time
	handler http.Handler
	reg     *prometheus.Registry
	m       metrics

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // sessions, viewers, background loops
	loops  sync.WaitGroup // background loops only

	closing atomic.Bool
	httpMu  sync.Mutex
	servers []*http.Server

	version atomic.Uint64 // fleet version: bumped on every node change

	nodesMu sync.RWMutex
	nodes   map[string]*nodeState
	list    []*nodeState      // append-only, in order of first Hello
	durable map[string]uint64 // node id → durable last seq, for nodes not yet seen

	sessMu   sync.Mutex
	sessions map[*session]struct{}
	// frameBufs holds the collectors' frame buffers (*[]byte) between
	// frames: a session has one only while it reads and decodes a frame.
	frameBufs sync.Pool
	acks      ackQueue // acks due, sent by a few goroutines
	viewers   map[*viewer]struct{}

	commitMu  sync.Mutex        // one Commit at a time
	flushSeqs map[string]uint64 // flush's, kept between commits; guarded by commitMu
	flushAdv  []*nodeState      // likewise
	ticks     int               // flushLoop's ticks since the last commit; only flushLoop uses it
	sumCache  summaryCache
	marks     alertMarks // operators' acknowledgements and silences
	histCache historyCache

	tokNodes map[string]map[string]struct{} // token name → node ids it sent for; guarded by nodesMu
	removals []removal                      // nodes forgotten recently, oldest first; guarded by nodesMu

	conflicts conflictBook // node id conflicts, shown as alerts
	authLog   logLimiter   // refused requests
	connLog   logLimiter   // connections over MaxConns
	repairLog logLimiter   // "values outside their bounds" warnings
	renderLog logLimiter   // render errors
	// Readiness: /healthz answers 503 while commits fail or one is stuck.
	commitFail  atomic.Pointer[commitFailure] // nil: the last commit succeeded
	commitStart atomic.Int64                  // unix ns of the running commit's start, 0: none

	watchOnce sync.Once
	watchHub  atomic.Pointer[watchHub] // nil until the first viewer
}

// commitFailure is why the aggregator is not ready: commits fail, so
// nothing is acked and collectors' spools grow.
type commitFailure struct {
	since time.Time // first failure of the current run
	err   string
}

// Ready reports whether the aggregator makes what it applies durable: ""
// when ready, else the reason (a failing or stuck commit, shutdown). It is
// what /healthz answers.
func (s *Server) Ready() string {
	if s.closing.Load() {
		return "shutting down"
	}
	if f := s.commitFail.Load(); f != nil {
		return fmt.Sprintf("commits failing since %s, nothing acked: %s", f.since.UTC().Format(time.RFC3339), f.err)
	}
	if st := s.commitStart.Load(); st != 0 {
		if d := time.Since(time.Unix(0, st)); d > s.cfg.CommitStuckAfter {
			return fmt.Sprintf("commit stuck for %s", d.Round(time.Second))
		}
	}
	return ""
}

// track registers x in set (a session set guarded by sessMu) and counts it
// in g; the returned func undoes both.
func track[T comparable](s *Server, set map[T]struct{}, g prometheus.Gauge, x T) (untrack func()) {
	s.sessMu.Lock()
	set[x] = struct{}{}
	s.sessMu.Unlock()
	g.Inc()
	return func() {
		s.sessMu.Lock()
		delete(set, x)
		s.sessMu.Unlock()
		g.Dec()
	}
}

// sampleClock reads the clock samples are booked by.
func (s *Server) sampleClock() time.Time { return s.cfg.SampleClock() }

// Status summarises the server in one line for systemd's STATUS= (it changes
// only when sessions come or go): e.g. "312 collectors, 2 viewers".
func (s *Server) Status() string {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	return fmt.Sprintf("%d collectors, %d viewers", len(s.sessions), len(s.viewers))
}

type metrics struct {
	gpuSamples  prometheus.Counter
	samples     prometheus.Counter
	bytes       prometheus.Counter
	gaps        prometheus.Counter
	dups        prometheus.Counter
	rejected    *prometheus.CounterVec
	repaired    *prometheus.CounterVec
	renderErrs  *prometheus.CounterVec
	conflicts   prometheus.Counter
	evicted     prometheus.Counter
	collectors  prometheus.Gauge
	viewers     prometheus.Gauge
	commitErrs  prometheus.Counter
	commitSecs  prometheus.Histogram
	viewerDrops prometheus.Counter
}

// Reasons counted in fleettop_ingest_rejected_total.
const (
	rejectUnauthorized = "unauthorized"
	rejectForbidden    = "forbidden"
	rejectMalformed    = "malformed"
	rejectTooBig       = "too_big"
	rejectProtocol     = "protocol"
	rejectHello        = "bad_hello"
	rejectConflict     = "node_in_use"
	rejectNodeLimit    = "node_limit"
	rejectConnLimit    = "conn_limit"
)

// Surfaces counted in fleettop_render_errors_total.
const (
	surfaceMetrics = "metrics"
	surfaceAPI     = "api"
	surfaceWatch   = "watch"
)

func newMetrics(reg *prometheus.Registry) metrics {
	m := metrics{
		gpuSamples: prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_ingest_gpu_samples_total", Help: "Device samples applied."}),
		samples:    prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_ingest_records_total", Help: "Sequenced records applied."}),
		bytes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_ingest_bytes_total", Help: "Websocket payload bytes received from collectors."}),
		gaps:       prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_ingest_seq_gaps_total", Help: "Records lost in transit (sequence gaps)."}),
		dups:       prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_ingest_duplicates_total", Help: "Records dropped as already applied."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleettop_ingest_rejected_total", Help: "Collector connections or frames refused, by reason."},
			[]string{"reason"}),
		repaired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleettop_ingest_repaired_total", Help: "Values from collectors made absent or repaired at the edge, by reason."},
			[]string{"reason"}),
		renderErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleettop_render_errors_total", Help: "Responses or parts of them that could not be rendered (logged), by surface."},
			[]string{"surface"}),
		conflicts:   prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_node_conflicts_total", Help: "Collector sessions refused because a healthy session already held their node id."}),
		evicted:     prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_nodes_evicted_total", Help: "Idle nodes forgotten after the node TTL."}),
		collectors:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "fleettop_collectors_connected", Help: "Collector sessions open."}),
		viewers:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "fleettop_viewers_connected", Help: "Watch streams open."}),
		commitErrs:  prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_commit_errors_total", Help: "Failed commits of applied samples (nothing acked)."}),
		commitSecs:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fleettop_commit_seconds", Help: "Time to commit applied samples.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		viewerDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "fleettop_viewers_dropped_total", Help: "Viewers dropped for not keeping up."}),
	}
	for _, r := range []string{rejectUnauthorized, rejectForbidden, rejectMalformed, rejectTooBig, rejectProtocol, rejectHello,
		rejectConflict, rejectNodeLimit, rejectConnLimit,
		wire.ReasonBadString, wire.ReasonBadLease, wire.ReasonBadDevice, wire.ReasonBadTime, wire.ReasonSeqJump} {
		m.rejected.WithLabelValues(r) // export zeros
	}
	for _, r := range []string{wire.ReasonOutOfRange, wire.ReasonBadString, wire.ReasonBadTime} {
		m.repaired.WithLabelValues(r)
	}
	for _, r := range []string{surfaceMetrics, surfaceAPI, surfaceWatch} {
		m.renderErrs.WithLabelValues(r)
	}
	reg.MustRegister(m.gpuSamples, m.samples, m.bytes, m.gaps, m.dups, m.rejected, m.repaired, m.renderErrs, m.conflicts, m.evicted, m.collectors, m.viewers,
		m.commitErrs, m.commitSecs, m.viewerDrops)
	return m
}

// New builds a Server and loads the durable sequence of every known node.
// Background loops start at once; Close stops them.
func New(cfg Config) (*Server, error) {
	if cfg.Tokens == nil || cfg.Tokens.Len() == 0 {
		return nil, errors.New("aggregator: no tokens")
	}
	if cfg.Recorder == nil {
		return nil, errors.New("aggregator: no recorder")
	}
	opt.Positive(&cfg.Interval, time.Second)
	opt.Positive(&cfg.StaleAfter, 3*cfg.Interval)
	opt.Positive(&cfg.OfflineAfter, 30*time.Second)
	cfg.OfflineAfter = max(cfg.OfflineAfter, 2*cfg.StaleAfter)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.SampleClock == nil {
		cfg.SampleClock = cfg.Clock
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opt.Positive(&cfg.FlushInterval, time.Second)
	opt.Positive(&cfg.CommitInterval, cfg.FlushInterval)
	opt.Positive(&cfg.AckInterval, max(15*cfg.FlushInterval, cfg.CommitInterval))
	opt.Positive(&cfg.IdleThreshold, 0.05)
	opt.Positive(&cfg.ViewerInterval, time.Second)
	opt.Positive(&cfg.WriteTimeout, 5*time.Second)
	opt.Positive(&cfg.HelloTimeout, 10*time.Second)
	opt.Positive(&cfg.MaxNodesPerToken, 4096)
	opt.Positive(&cfg.NodeTTL, 24*time.Hour)
	opt.Positive(&cfg.MaxConns, 32768)
	opt.Positive(&cfg.IdleTimeout, 2*time.Minute)
	opt.Positive(&cfg.TakeoverPing, 3*time.Second)
	if cfg.MaxSeqJump == 0 {
		cfg.MaxSeqJump = wire.DefaultMaxSeqJump
	}
	opt.Positive(&cfg.CommitStuckAfter, 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	seqs, err := cfg.Recorder.LastSeqs(lctx)
	lcancel()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("load last sequences: %w", err)
	}
	reg := prometheus.NewRegistry()
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		clock:     cfg.Clock,
		reg:       reg,
		m:         newMetrics(reg),
		ctx:       ctx,
		cancel:    cancel,
		nodes:     map[string]*nodeState{},
		durable:   seqs,
		flushSeqs: map[string]uint64{},
		tokNodes:  map[string]map[string]struct{}{},
		sessions:  map[*session]struct{}{},
		viewers:   map[*viewer]struct{}{},
		acks:      ackQueue{fire: (*session).fireAck},
	}
	if s.durable == nil {
		s.durable = map[string]uint64{}
	}
	mctx, mcancel := context.WithTimeout(ctx, 30*time.Second)
	err = s.marks.load(mctx, cfg.Marks)
	mcancel()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("load alert marks: %w", err)
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if ir, ok := cfg.Recorder.(interface{ IsolatedRows() uint64 }); ok {
		// One node's rows the database refused, left out so that the rest
		// of the fleet commits (store.IsolatedRows).
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "fleettop_commit_isolated_nodes_total",
			Help: "Nodes whose rows a commit left out because the database refused them (the other nodes committed)."},
			func() float64 { return float64(ir.IsolatedRows()) }))
	}
	for _, c := range cfg.Collectors {
		if err := reg.Register(c); err != nil {
			cancel()
			return nil, fmt.Errorf("register metrics collector: %w", err)
		}
	}
	s.handler = s.routes()
	s.loops.Add(1)
	go s.flushLoop()
	return s, nil
}

// Handler returns the aggregator's HTTP handler (all endpoints).
func (s *Server) Handler() http.Handler { return s.handler }

// Registry returns the registry served on /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Serve serves plain HTTP (ws://) on ln until Close. Plain connections are
// accepted only on loopback listeners unless Config.Insecure is set.
func (s *Server) Serve(ln net.Listener) error {
	if !IsLoopback(ln.Addr()) {
		if !s.cfg.Insecure {
			return fmt.Errorf("refusing plain ws:// on non-loopback address %s: give --tls-cert/--tls-key, or --insecure on a trusted network", ln.Addr())
		}
		s.log.Warn("INSECURE: serving plain ws:// and http on a non-loopback address; tokens and telemetry travel unencrypted", "addr", ln.Addr().String())
	}
	return s.serve(ln, nil)
}

// ServeTLS serves HTTPS (wss://) on ln with the given certificate and key files.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load tls certificate: %w", err)
	}
	return s.serve(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
}

func (s *Server) serve(ln net.Listener, tc *tls.Config) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       s.cfg.IdleTimeout, // keep-alive connections do not live forever
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.httpMu.Lock()
	if s.closing.Load() { // closed before serving began
		s.httpMu.Unlock()
		return ln.Close()
	}
	s.servers = append(s.servers, hs)
	s.httpMu.Unlock()
	ln = &capListener{Listener: ln, s: s, sem: make(chan struct{}, s.cfg.MaxConns)}
	var err error
	if tc != nil {
		hs.TLSConfig = tc
		err = hs.Serve(tls.NewListener(ln, tc))
	} else {
		err = hs.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) && s.closing.Load() {
		return nil
	}
	return err
}

// IsLoopback reports whether a listener address is loopback-only.
func IsLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close stops accepting, applies nothing more, commits and acks what was
// applied, and closes every session and viewer with "going away".
func (s *Server) Close(ctx context.Context) error {
	if s.closing.Swap(true) {
		return nil
	}
	s.httpMu.Lock()
	servers := s.servers
	s.httpMu.Unlock()
	var errs []error
	for _, hs := range servers {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down http: %w", err))
		}
	}
	// Stop the flusher, then stop applying: every session checks closing
	// under its node lock before applying.
	s.cancel()
	s.loops.Wait()
	s.sessMu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	viewers := make([]*viewer, 0, len(s.viewers))
	for v := range s.viewers {
		viewers = append(viewers, v)
	}
	s.sessMu.Unlock()
	for _, ss := range sessions {
		ss.halt()
	}
	if err := s.flush(ctx); err != nil {
		errs = append(errs, err)
	}
	var cw sync.WaitGroup
	for _, ss := range sessions {
		cw.Go(func() { ss.closeWith(wire.CloseGoingAway, "aggregator shutting down") })
	}
	for _, v := range viewers {
		cw.Go(func() { v.close(wire.CloseGoingAway, "aggregator shutting down") })
	}
	cw.Wait()
	if err := lifecycle.Wait(ctx, &s.wg); err != nil {
		errs = append(errs, fmt.Errorf("wait for sessions: %w", err))
	}
	return errors.Join(errs...)
}
