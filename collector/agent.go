package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/opt"
	"github.com/fleettop/fleettop/wire"
)

// AgentConfig configures an Agent.
type AgentConfig struct {
	// Node is the identity, placement and lease labels; Devices, Driver and
	// CUDA are filled from the sources.
	Node    fleet.Node
	Sources []Source
	// Interval between samples (default 1 s).
	Interval time.Duration
	// SpoolDir is the durable spool directory; "" keeps the spool in memory
	// (simulated collectors).
	SpoolDir      string
	SpoolMaxBytes int64
	// URL is the aggregator's ws:// or wss:// base URL; the agent appends
	// /v1/collect. "" samples into the spool only.
	URL   string
	Token string
	// Insecure allows plain ws:// to a host that is not loopback: the token
	// and the telemetry then cross the network in clear text.
	Insecure bool
	Logger   *slog.Logger
	Clock    func() time.Time
	// Notify, when set, is called after every sample with a one-line status
	// such as "8 GPUs, connected, spool 0 B" (the systemd STATUS; the first
	// call means ready).
	Notify func(state string)

	// AgentVersion is sent in Hello (Node.AgentVersion when empty).
	AgentVersion string
	// Jobs, when set, attributes every process to its job before the
	// sample is spooled (collector/jobs.Resolver).
	Jobs interface{ Attribute([]fleet.Process) }
	// SpoolSyncEvery groups the spool's fsyncs (default 5 s).
	SpoolSyncEvery time.Duration
	// HTTPClient dials the aggregator (default http.DefaultClient).
	HTTPClient *http.Client
	// PingEvery is the websocket ping interval (default 20 s); no ping
	// goes out while the aggregator's acks arrive more often.
	PingEvery time.Duration
	// MaxBackoff caps the reconnect backoff (default 30 s).
	MaxBackoff time.Duration
}

type agentSource struct {
	src     Source
	offset  int // added to the source's device indexes
	lastErr string
}

// Agent samples its sources on a ticker, spools every record, and streams
// the spool to the aggregator. Run it once.
type Agent struct {
	cfg   AgentConfig
	log   *slog.Logger
	spool *Spool
	srcs  []*agentSource
	node  fleet.Node
	// Status for the sources that could not start, by name.
	unavailable map[string]error

	wake       chan struct{}
	proto      uint16 // protocol to speak; 0: wire.Version (uplink goroutine only)
	connected  atomic.Bool
	forceProcs atomic.Bool

	// Sampling state, owned by the sampling loop.
	smp       fleet.Sample
	rec       []byte
	lastProcs []fleet.Process
	appendErr string

	everConnected bool // owned by the uplink goroutine

	// Each source's health, sent in Hello and in a Status frame whenever
	// it changes; srcVer counts the changes.
	srcMu   sync.Mutex
	sources []fleet.SourceStatus
	srcVer  atomic.Uint64
}

// Sources returns each source's health: up, or down with its reason.
// Sources whose hardware is absent (ErrNoData) are not listed.
func (a *Agent) Sources() []fleet.SourceStatus {
	a.srcMu.Lock()
	defer a.srcMu.Unlock()
	return slices.Clone(a.sources)
}

// setSource records source name's health; it reports whether it changed.
func (a *Agent) setSource(name string, up bool, reason string) bool {
	a.srcMu.Lock()
	defer a.srcMu.Unlock()
	st := fleet.SourceStatus{Name: name, Up: up, Reason: reason}
	if len(st.Reason) > wire.MaxStringBytes {
		st.Reason = st.Reason[:wire.MaxStringBytes]
	}
	for i := range a.sources {
		if a.sources[i].Name == name {
			if a.sources[i] == st {
				return false
			}
			a.sources[i] = st
			a.srcVer.Add(1)
			return true
		}
	}
	if len(a.sources) >= wire.MaxSources {
		return false
	}
	a.sources = append(a.sources, st)
	a.srcVer.Add(1)
	return true
}

// NewAgent checks cfg and returns an agent; nothing runs until Run.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.Node.ID == "" {
		return nil, errors.New("agent: node id is empty")
	}
	if cfg.URL != "" {
		if err := CheckURL(cfg.URL, cfg.Insecure); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	opt.Positive(&cfg.Interval, time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	opt.Positive(&cfg.PingEvery, 20*time.Second)
	opt.Positive(&cfg.MaxBackoff, 30*time.Second)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	return &Agent{
		cfg: cfg, log: cfg.Logger.With("node", cfg.Node.ID),
		wake: make(chan struct{}, 1), unavailable: map[string]error{},
	}, nil
}

// Run starts the sources, then samples, spools and uplinks until ctx ends.
// It returns nil when ctx ends, or an error if the spool cannot be opened.
func (a *Agent) Run(ctx context.Context) error {
	sp, err := OpenSpool(a.cfg.SpoolDir, SpoolOptions{
		MaxBytes: a.cfg.SpoolMaxBytes, SyncEvery: a.cfg.SpoolSyncEvery, Clock: a.cfg.Clock, Logger: a.log,
	})
	if err != nil {
		return err
	}
	a.spool = sp
	a.startSources(ctx)
	defer a.closeSources()

	var wg sync.WaitGroup
	if a.cfg.URL != "" {
		wg.Add(1)
		go func() { defer wg.Done(); a.uplink(ctx) }()
	}
	a.sampleLoop(ctx)
	wg.Wait()
	if err := sp.Close(); err != nil {
		return fmt.Errorf("close spool: %w", err)
	}
	return nil
}

// Node returns the node as introduced to the aggregator (valid once Run has
// started the sources).
func (a *Agent) Node() fleet.Node { return a.node }

func (a *Agent) startSources(ctx context.Context) {
	n := a.cfg.Node
	n.Devices = nil
	if a.cfg.AgentVersion != "" {
		n.AgentVersion = a.cfg.AgentVersion
	}
	for _, s := range a.cfg.Sources {
		inv, err := s.Start(ctx)
		if err != nil {
			a.unavailable[s.Name()] = err
			if errors.Is(err, ErrNoData) {
				a.log.Info("source not available; running without it", "source", s.Name(), "reason", err.Error())
			} else {
				a.log.Warn("source failed to start; running without it", "source", s.Name(), "error", err.Error())
				a.setSource(s.Name(), false, "start: "+err.Error())
			}
			s.Close()
			continue
		}
		a.setSource(s.Name(), true, "")
		as := &agentSource{src: s, offset: len(n.Devices)}
		for _, d := range inv.Devices {
			d.Index += as.offset
			n.Devices = append(n.Devices, d)
		}
		if n.Driver == "" {
			n.Driver = inv.Driver
		}
		if n.CUDA == "" {
			n.CUDA = inv.CUDA
		}
		if b, ok := s.(interface{ BootID() string }); ok && n.BootID == "" {
			n.BootID = b.BootID()
		}
		a.srcs = append(a.srcs, as)
	}
	a.node = n
}

func (a *Agent) closeSources() {
	for _, s := range a.srcs {
		if err := s.src.Close(); err != nil {
			a.log.Warn("close source", "source", s.src.Name(), "error", err.Error())
		}
	}
}

// sampleLoop samples at once, then at every multiple of the interval on the
// wall clock; a slow sample skips the boundaries it overran rather than
// overlap.
func (a *Agent) sampleLoop(ctx context.Context) {
	t := time.NewTimer(untilBoundary(time.Now(), a.cfg.Interval))
	defer t.Stop()
	for {
		a.sampleOnce(ctx)
		t.Reset(untilBoundary(time.Now(), a.cfg.Interval))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// untilBoundary is how long from now to the next multiple of iv on the wall
// clock (since the zero time, so 1 s ticks fall on whole seconds).
func untilBoundary(now time.Time, iv time.Duration) time.Duration {
	return now.Truncate(iv).Add(iv).Sub(now)
}

// CollectSample takes one sample from every started source into s (indexes
// made unique across sources, jobs attributed) and returns each source's
// error by name. Used by Run and by `fleettop collector --once`.
func (a *Agent) CollectSample(ctx context.Context, s *fleet.Sample) map[string]error {
	var errs map[string]error
	for _, as := range a.srcs {
		d0, p0, e0 := len(s.Devices), len(s.Procs), len(s.Events)
		if err := as.src.Collect(ctx, s); err != nil {
			if errs == nil {
				errs = map[string]error{}
			}
			errs[as.src.Name()] = err
		}
		if as.offset != 0 {
			for i := d0; i < len(s.Devices); i++ {
				s.Devices[i].Index += as.offset
			}
			for i := p0; i < len(s.Procs); i++ {
				s.Procs[i].Device += as.offset
			}
			for i := e0; i < len(s.Events); i++ {
				if s.Events[i].Device >= 0 {
					s.Events[i].Device += as.offset
				}
			}
		}
	}
	if a.cfg.Jobs != nil && len(s.Procs) > 0 {
		a.cfg.Jobs.Attribute(s.Procs)
	}
	return errs
}

// Start starts the sources without running the loop (for one-shot use);
// Close releases them.
func (a *Agent) Start(ctx context.Context) { a.startSources(ctx) }

// Close closes the sources started by Start.
func (a *Agent) Close() { a.closeSources() }

// Unavailable returns the sources that did not start, with why.
func (a *Agent) Unavailable() map[string]error { return a.unavailable }

func (a *Agent) sampleOnce(ctx context.Context) {
	s := &a.smp
	s.Devices, s.Procs, s.Events, s.Host, s.ProcsSet = s.Devices[:0], s.Procs[:0], s.Events[:0], nil, false
	s.Time = a.cfg.Clock()
	s.Seq = a.spool.NextSeq()
	errs := a.CollectSample(ctx, s)
	for _, as := range a.srcs {
		msg := ""
		if err := errs[as.src.Name()]; err != nil {
			msg = err.Error()
		}
		if msg != as.lastErr {
			a.setSource(as.src.Name(), msg == "", msg)
			if msg != "" {
				a.log.Warn("source failed to collect", "source", as.src.Name(), "error", msg)
			} else {
				a.log.Info("source collecting again", "source", as.src.Name())
			}
			as.lastErr = msg
		}
	}
	if a.forceProcs.Swap(false) || !slices.Equal(s.Procs, a.lastProcs) {
		s.ProcsSet = true
		a.lastProcs = append(a.lastProcs[:0], s.Procs...)
	} else {
		s.Procs = s.Procs[:0]
	}
	if len(s.Procs) > wire.MaxProcs {
		s.Procs = s.Procs[:wire.MaxProcs] // the wire's bound; the rest would lose the whole record
	}
	if len(s.Events) > wire.MaxEvents {
		s.Events = s.Events[:wire.MaxEvents]
	}
	var err error
	a.rec, err = wire.AppendRecord(a.rec[:0], s)
	if err == nil {
		err = a.spool.Append(s.Seq, a.rec) // a failed write reserves the sequence
	} else {
		a.spool.Lose(s.Seq, err.Error())
	}
	a.noteAppend(err)
	select {
	case a.wake <- struct{}{}:
	default:
	}
	if a.cfg.Notify != nil {
		a.cfg.Notify(a.statusLine())
	}
}

func (a *Agent) noteAppend(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != a.appendErr {
		if msg != "" {
			a.log.Error("cannot spool samples; they are being lost", "error", msg)
		} else {
			a.log.Info("spooling samples again")
		}
		a.appendErr = msg
	}
}

func (a *Agent) statusLine() string {
	st := a.spool.Stats()
	conn := "disconnected"
	if a.connected.Load() {
		conn = "connected"
	} else if a.cfg.URL == "" {
		conn = "no aggregator"
	}
	kind := "GPUs"
	if len(a.node.Devices) == 1 {
		kind = "GPU"
	}
	line := fmt.Sprintf("%d %s, %s, spool %s (%d unacked)", len(a.node.Devices), kind, conn, HumanBytes(st.Bytes), st.Unacked)
	if st.Resets > 0 {
		line += fmt.Sprintf(", %d spool resets", st.Resets)
	}
	if st.Dropped > 0 {
		line += fmt.Sprintf(", %d records lost", st.Dropped)
	}
	return line
}

// HumanBytes formats n as "0 B", "12.3 KiB", "4.0 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// uplink keeps a session with the aggregator, reconnecting with jittered
// exponential backoff, and logs once per state change.
func (a *Agent) uplink(ctx context.Context) {
	const base = 500 * time.Millisecond
	backoff := base
	reportedDown := false
	for ctx.Err() == nil {
		up, err := a.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if up {
			a.log.Info("disconnected from aggregator; sampling into the spool", "reason", err.Error())
			backoff, reportedDown = base, true
		} else if !reportedDown {
			a.log.Warn("cannot reach aggregator; sampling into the spool and retrying", "url", a.cfg.URL, "error", err.Error())
			reportedDown = true
		}
		// Jitter in [backoff/2, backoff], so a fleet does not reconnect in step.
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(backoff*2, a.cfg.MaxBackoff)
	}
}

// errClosedByPeer carries the aggregator's Close frame.
type errClosedByPeer struct {
	code   wire.CloseCode
	reason string
}

func (e *errClosedByPeer) Error() string {
	return fmt.Sprintf("aggregator closed the session (%d): %s", e.code, e.reason)
}

// session runs one connection; up reports whether it got as far as Welcome.
func (a *Agent) session(ctx context.Context) (up bool, err error) {
	conn, err := a.dial(ctx)
	if err != nil {
		return false, err
	}
	defer conn.CloseNow()
	l, resume, err := a.handshake(ctx, conn)
	if err != nil {
		return false, err
	}
	if err := a.resumeSpool(resume); err != nil {
		return false, err
	}
	a.forceProcs.Store(true)
	a.connected.Store(true)
	defer a.connected.Store(false)
	if a.everConnected {
		a.log.Info("reconnected to aggregator", "url", a.cfg.URL, "resume_from", resume)
	} else {
		a.log.Info("connected to aggregator", "url", a.cfg.URL, "resume_from", resume)
	}
	a.everConnected = true
	return true, a.stream(ctx, l, resume)
}

// link is one session's connection and codec state.
type link struct {
	conn    *websocket.Conn
	enc     *wire.Encoder
	dec     *wire.Decoder
	out     []byte
	sentVer uint64         // the source-health version the aggregator has
	batch   []fleet.Sample // reused for every Samples frame
	heard   atomic.Int64   // wall time (UnixNano) the reader last got a frame
}

// send encodes f and writes it, within 15 s.
func (l *link) send(ctx context.Context, f wire.Frame) error {
	var err error
	if l.out, err = l.enc.AppendFrame(l.out[:0], f); err != nil {
		return fmt.Errorf("encode %T: %w", f, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return l.conn.Write(wctx, websocket.MessageBinary, l.out)
}

// dial opens the websocket to the aggregator's collect endpoint.
func (a *Agent) dial(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h := http.Header{}
	if a.cfg.Token != "" {
		h.Set("Authorization", "Bearer "+a.cfg.Token)
	}
	url := strings.TrimSuffix(a.cfg.URL, "/") + "/v1/collect"
	conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPHeader: h, HTTPClient: a.cfg.HTTPClient})
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("dial aggregator: token refused (HTTP %d)", resp.StatusCode)
		}
		return nil, fmt.Errorf("dial aggregator: %w", err)
	}
	conn.SetReadLimit(wire.MaxFrameSize)
	return conn, nil
}

// handshake sends Hello and our clock and awaits Welcome, whose resume
// point it returns. An aggregator that refuses our protocol version makes
// the next session speak the previous one.
func (a *Agent) handshake(ctx context.Context, conn *websocket.Conn) (*link, uint64, error) {
	// Speak the newest protocol unless an older aggregator refused it.
	proto := a.proto
	if proto == 0 {
		proto = wire.Version
	}
	enc, err := wire.NewEncoderVersion(proto)
	if err != nil {
		return nil, 0, err
	}
	l := &link{conn: conn, enc: enc, dec: wire.NewDecoder(), batch: make([]fleet.Sample, 0, 16)}
	hello := a.node
	l.sentVer = a.srcVer.Load()
	hello.Sources = a.Sources()
	if err := l.send(ctx, &wire.Hello{Proto: proto, Node: hello}); err != nil {
		return nil, 0, fmt.Errorf("send hello: %w", err)
	}
	// Our clock, for the aggregator's offset estimate: it books our samples
	// on its own clock.
	if err := l.send(ctx, &wire.Clock{Sent: a.cfg.Clock()}); err != nil {
		return nil, 0, fmt.Errorf("send clock: %w", err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
	_, msg, err := conn.Read(rctx)
	rcancel()
	if err != nil {
		return nil, 0, fmt.Errorf("await welcome: %w", err)
	}
	f, err := l.dec.Decode(msg)
	if err != nil {
		return nil, 0, fmt.Errorf("decode welcome: %w", err)
	}
	switch w := f.(type) {
	case *wire.Welcome:
		return l, max(w.ResumeFrom, 1), nil
	case *wire.Close:
		if w.Code == wire.CloseProtocol && proto > wire.MinVersion && strings.Contains(w.Reason, "protocol version") {
			// An aggregator older than this collector: speak its protocol.
			a.proto = proto - 1
			a.log.Warn("aggregator refused protocol; retrying with the previous one (upgrade the aggregator)", "protocol", proto, "reason", w.Reason)
		}
		return nil, 0, &errClosedByPeer{w.Code, w.Reason}
	default:
		return nil, 0, fmt.Errorf("expected welcome, got frame type %d", f.Type())
	}
}

// resumeSpool moves the spool's numbering to resume when the aggregator
// holds sequences we never wrote (our state was wiped).
func (a *Agent) resumeSpool(resume uint64) error {
	next := a.spool.NextSeq()
	if resume <= next {
		return nil
	}
	reason := fmt.Sprintf("aggregator resumes from %d, past the spool's next %d (the spool was wiped, or another collector sends as node %s)", resume, next, a.node.ID)
	return a.spool.Reset(resume, reason)
}

// stream sends the spool from cursor on, then every new record as the
// sampler wakes it, and source health when it changes, until the reader
// (acks trim the spool; its first error ends the session), a ping, or ctx
// ends the session.
func (a *Agent) stream(ctx context.Context, l *link, cursor uint64) error {
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	rerr := make(chan error, 1)
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		rerr <- a.readLoop(sctx, l)
	}()
	defer rwg.Wait()
	defer scancel()

	ping := time.NewTicker(a.cfg.PingEvery)
	defer ping.Stop()
	for {
		if v := a.srcVer.Load(); v != l.sentVer {
			if err := l.send(ctx, &wire.Status{Sources: a.Sources()}); err != nil {
				return fmt.Errorf("send status: %w", err)
			}
			l.sentVer = v
		}
		var err error
		if cursor, err = a.sendSpooled(ctx, l, cursor); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			l.conn.Close(websocket.StatusGoingAway, "collector stopping")
			return ctx.Err()
		case err := <-rerr:
			return err
		case <-a.wake:
		case <-ping.C:
			if time.Since(time.Unix(0, l.heard.Load())) < a.cfg.PingEvery {
				// An ack came meanwhile: the aggregator is alive and the
				// connection works both ways; a ping would tell nothing
				// more, and costs the aggregator a wake-up, two reads and
				// a write per collector.
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := l.conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		}
	}
}

// sendSpooled sends every record held from cursor on, in Samples frames of
// at most wire.MaxSamples and half a frame's bytes, and returns the new
// cursor.
func (a *Agent) sendSpooled(ctx context.Context, l *link, cursor uint64) (uint64, error) {
	for cursor < a.spool.NextSeq() {
		next, err := a.readBatch(l, cursor)
		if err != nil {
			return cursor, err
		}
		if next == cursor {
			break // nothing more held at or after cursor
		}
		if len(l.batch) > 0 {
			if err := l.send(ctx, &wire.Samples{Samples: l.batch}); err != nil {
				return cursor, fmt.Errorf("send samples: %w", err)
			}
		}
		cursor = next
	}
	return cursor, nil
}

// readBatch decodes the records from cursor on into l.batch, skipping (and
// logging) any it cannot decode, and returns the sequence after the last.
func (a *Agent) readBatch(l *link, cursor uint64) (uint64, error) {
	l.batch = l.batch[:0]
	size := 0
	next, err := a.spool.ReadFrom(cursor, wire.MaxSamples, func(seq uint64, p []byte) error {
		if size+len(p) > wire.MaxFrameSize/2 && len(l.batch) > 0 {
			return errBatchFull
		}
		size += len(p)
		if len(l.batch) < cap(l.batch) {
			l.batch = l.batch[:len(l.batch)+1] // reuse its Devices and Host
		} else {
			l.batch = append(l.batch, fleet.Sample{})
		}
		smp := &l.batch[len(l.batch)-1]
		if derr := wire.DecodeRecord(p, smp); derr != nil {
			l.batch = l.batch[:len(l.batch)-1]
			a.log.Warn("skipping an undecodable spool record", "seq", seq, "error", derr.Error())
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return next, err
	}
	return next, nil
}

var errBatchFull = errors.New("batch full")

func (a *Agent) readLoop(ctx context.Context, l *link) error {
	conn, dec := l.conn, l.dec
	var cbuf []byte
	cenc := wire.NewEncoder() // Clock frames carry no stream state
	for {
		_, msg, err := conn.Read(ctx)
		recv := a.cfg.Clock()
		if err != nil {
			if st := websocket.CloseStatus(err); st != -1 {
				return fmt.Errorf("closed by aggregator (%d)", st)
			}
			return err
		}
		l.heard.Store(time.Now().UnixNano())
		f, err := dec.Decode(msg)
		if err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		switch f := f.(type) {
		case *wire.Ack:
			a.spool.Ack(f.Seq)
			if !f.Time.IsZero() {
				// Answer at once: the shorter the turnaround, the tighter
				// the aggregator's estimate. Conn.Write is safe beside the
				// sender's writes.
				cbuf, err = cenc.AppendFrame(cbuf[:0], &wire.Clock{Origin: f.Time, Received: recv, Sent: a.cfg.Clock()})
				if err != nil {
					return fmt.Errorf("encode clock: %w", err)
				}
				wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				err = conn.Write(wctx, websocket.MessageBinary, cbuf)
				cancel()
				if err != nil {
					return fmt.Errorf("send clock: %w", err)
				}
			}
		case *wire.Close:
			return &errClosedByPeer{f.Code, f.Reason}
		}
	}
}

// ErrInsecureURL is wrapped by CheckURL's error for plain ws:// to a host
// that is not loopback.
var ErrInsecureURL = errors.New("plain ws:// to a host that is not loopback")

// CheckURL accepts an aggregator URL: wss:// anywhere, ws:// only to a
// loopback host (localhost, 127.0.0.0/8, ::1) unless insecure, so that the
// token never crosses a network in clear text by accident. Host names other
// than localhost are not resolved: they count as remote.
func CheckURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("aggregator URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "wss":
		return nil
	case "ws":
	default:
		return fmt.Errorf("aggregator URL %q must start with ws:// or wss://", raw)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("aggregator URL %q has no host", raw)
	}
	if insecure || isLoopbackHost(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("refusing aggregator URL %s: %w; the token would cross the network in clear text: use wss://, or --insecure on a trusted network", raw, ErrInsecureURL)
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
