package tui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/internal/lifecycle"
	"github.com/fleettop/fleettop/wire"
)

// Endpoint is one aggregator to watch: its base URL (http, https, ws or wss)
// and a viewer token.
type Endpoint struct{ URL, Token string }

// Source delivers merged fleet snapshots to the program.
type Source interface {
	// Snapshots is where fresh snapshots arrive, at most one a second (latest
	// wins); it is closed when the source stops.
	Snapshots() <-chan *Snapshot
	// RangeHistory fetches history over a range from aggregator agg (GET
	// /api/v1/history). It does I/O: call it from a tea.Cmd, never from
	// Update.
	RangeHistory(ctx context.Context, agg int, q HistoryRequest) (*wire.HistoryResponse, error)
	// MarkAlert acknowledges or silences alert id (action ack, unack,
	// silence or unsilence; d is a silence's length) on the aggregator that
	// has it. It needs an operator token. It does I/O, like RangeHistory.
	MarkAlert(ctx context.Context, id, action string, d time.Duration) error
	// Subscribe says what the viewer shows (the page of nodes, the open
	// node, the page of jobs), so that the aggregators send only that. It
	// does not block: the latest call wins.
	Subscribe(sub wire.WatchSubscribe)
}

// points turns a series with gaps into floats, NaN for a gap.
func points(p []*float64) []float64 {
	out := make([]float64, len(p))
	for i, v := range p {
		if v == nil {
			out[i] = math.NaN()
		} else {
			out[i] = *v
		}
	}
	return out
}

// WatchSource is the production Source: one websocket client per aggregator
// (each reconnecting with backoff), merged into one Merger by a single
// goroutine that publishes a snapshot at most once per Interval.
type WatchSource struct {
	eps      []Endpoint
	fleet    *Merger
	interval time.Duration
	log      *slog.Logger
	client   *http.Client
	events   chan sourceEvent
	out      chan *Snapshot
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	subMu   sync.Mutex
	sub     wire.WatchSubscribe
	subKick []chan struct{}     // per aggregator: the subscription changed
	queries chan wire.NodeQuery // to the merger (latest wins)
}

type sourceEvent struct {
	agg   int
	state ConnState
	err   error
	msg   *wire.WatchMsg // nil for a link state change
}

var _ Source = (*WatchSource)(nil)

// maxWatchMessage bounds one watch message (a version 1 snapshot of 100,000
// GPUs is a few tens of MB of JSON; version 2 messages are a few tens of KB).
const maxWatchMessage = 512 << 20

// NewWatchSource prepares clients for o.Aggregators; Start runs them.
func NewWatchSource(o Options) *WatchSource {
	o = o.withDefaults()
	w := &WatchSource{
		eps:      o.Aggregators,
		fleet:    NewMerger(o.Aggregators, o.Currency, o.IdleThreshold),
		interval: o.Refresh,
		log:      o.Logger,
		client:   &http.Client{Timeout: 10 * time.Second},
		events:   make(chan sourceEvent, 64),
		out:      make(chan *Snapshot, 1),
		sub:      wire.DefaultSubscription(),
		queries:  make(chan wire.NodeQuery, 1),
	}
	for range o.Aggregators {
		w.subKick = append(w.subKick, make(chan struct{}, 1))
	}
	w.fleet.SetQuery(w.sub.Nodes)
	return w
}

// Subscribe implements Source.
func (w *WatchSource) Subscribe(sub wire.WatchSubscribe) {
	w.subMu.Lock()
	w.sub = sub
	w.subMu.Unlock()
	for _, k := range w.subKick {
		select {
		case k <- struct{}{}:
		default:
		}
	}
	select { // latest wins
	case <-w.queries:
	default:
	}
	w.queries <- sub.Nodes
}

// subscription is what to ask aggregator agg for. With several
// aggregators, each sends the rows before the page too, so that their
// pages merge into the one the viewer shows.
func (w *WatchSource) subscription() wire.WatchSubscribe {
	w.subMu.Lock()
	sub := w.sub
	w.subMu.Unlock()
	sub.Version = wire.WatchVersion
	if len(w.eps) > 1 {
		sub.Nodes.Limit += sub.Nodes.Offset
		sub.Nodes.Offset = 0
		if sub.Jobs != nil {
			j := *sub.Jobs
			j.Limit += j.Offset
			j.Offset = 0
			sub.Jobs = &j
		}
	}
	return sub
}

// Start connects to every aggregator and starts merging; Close stops it.
func (w *WatchSource) Start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	var readers sync.WaitGroup
	for i := range w.eps {
		readers.Add(1)
		go func() {
			defer readers.Done()
			w.watch(ctx, i)
		}()
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.merge(ctx)
	}()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		readers.Wait()
	}()
}

// Close stops the clients and waits for them, or for ctx.
func (w *WatchSource) Close(ctx context.Context) error {
	if w.cancel != nil {
		w.cancel()
	}
	if err := lifecycle.Wait(ctx, &w.wg); err != nil {
		return fmt.Errorf("close watch source: %w", err)
	}
	return nil
}

// Snapshots implements Source.
func (w *WatchSource) Snapshots() <-chan *Snapshot { return w.out }

// merge owns the Fleet: it applies events as they come and publishes a
// snapshot at most once per interval (the first data at once).
func (w *WatchSource) merge(ctx context.Context) {
	defer close(w.out)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	published := false
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-w.events:
			now := time.Now()
			if ev.msg != nil {
				w.fleet.Apply(ev.agg, ev.msg, now)
			} else {
				w.fleet.SetConn(ev.agg, ev.state, ev.err, now)
			}
			// The first data, and the answer to a new subscription (the
			// viewer paged, sorted or opened a node), show at once.
			if ev.msg != nil && (!published || ev.msg.Kind == wire.WatchSnapshot && ev.msg.Version >= 2) {
				w.publish(w.fleet.Snapshot(now))
				published = true
			}
		case q := <-w.queries:
			w.fleet.SetQuery(q)
		case now := <-t.C:
			if w.fleet.Changed() {
				w.publish(w.fleet.Snapshot(now))
			}
		}
	}
}

func (w *WatchSource) publish(s *Snapshot) {
	select { // latest wins: drop a snapshot the program has not taken yet
	case <-w.out:
	default:
	}
	w.out <- s
}

func (w *WatchSource) send(ctx context.Context, ev sourceEvent) bool {
	select {
	case w.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// watch keeps one aggregator's stream open, reconnecting with capped,
// jittered exponential backoff.
func (w *WatchSource) watch(ctx context.Context, agg int) {
	const minBackoff, maxBackoff = 250 * time.Millisecond, 15 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		if !w.send(ctx, sourceEvent{agg: agg, state: ConnConnecting}) {
			return
		}
		got, err := w.stream(ctx, agg)
		if ctx.Err() != nil {
			return
		}
		if got {
			backoff = minBackoff // it worked for a while: retry soon
		}
		w.log.Debug("watch stream ended", "aggregator", w.eps[agg].URL, "err", err)
		if !w.send(ctx, sourceEvent{agg: agg, state: ConnDown, err: err}) {
			return
		}
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// stream runs one connection until it fails; got reports whether any
// message arrived.
func (w *WatchSource) stream(ctx context.Context, agg int) (got bool, err error) {
	ep := w.eps[agg]
	u, err := endpointURL(ep.URL, "/v1/watch", true)
	if err != nil {
		return false, err
	}
	h := http.Header{}
	if ep.Token != "" {
		h.Set("Authorization", "Bearer "+ep.Token)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPHeader: h})
	cancel()
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return false, fmt.Errorf("aggregator refused the viewer token (HTTP %d)", resp.StatusCode)
		}
		return false, fmt.Errorf("dial aggregator: %w", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(maxWatchMessage)
	if !w.send(ctx, sourceEvent{agg: agg, state: ConnLive}) {
		return false, ctx.Err()
	}
	subscribing := false
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return got, fmt.Errorf("read watch stream: %w", err)
		}
		m := new(wire.WatchMsg)
		if err := json.Unmarshal(data, m); err != nil {
			return got, fmt.Errorf("decode watch message: %w", err)
		}
		if m.Version > wire.WatchVersion {
			return got, fmt.Errorf("watch stream version %d is newer than this viewer's %d: upgrade fleettop", m.Version, wire.WatchVersion)
		}
		if m.Version >= 2 && !subscribing { // it watches by subscription: say what to send
			subscribing = true
			go w.subscribe(sctx, c, agg)
		}
		got = true
		if !w.send(ctx, sourceEvent{agg: agg, msg: m}) {
			return got, ctx.Err()
		}
	}
}

// subscribe sends aggregator agg the subscription, again whenever it
// changes, until ctx ends; a failed write ends the stream's read too.
func (w *WatchSource) subscribe(ctx context.Context, c *websocket.Conn, agg int) {
	var last []byte
	for {
		b, err := json.Marshal(w.subscription())
		if err == nil && string(b) != string(last) {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = c.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				c.CloseNow()
				return
			}
			last = b
		}
		select {
		case <-ctx.Done():
			return
		case <-w.subKick[agg]:
		}
	}
}

// MarkAlert implements Source: it asks each aggregator in turn, as an alert
// id belongs to one of them.
func (w *WatchSource) MarkAlert(ctx context.Context, id, action string, d time.Duration) error {
	body, err := json.Marshal(map[string]string{"id": id, "action": action, "for": d.String()})
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range w.eps {
		resp, err := w.call(ctx, ep, http.MethodPost, "/api/v1/alerts/mark", "", body)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return nil
		case http.StatusNotFound:
			continue
		case http.StatusForbidden:
			return errors.New("marking alerts needs an operator token (the viewer token may only read)")
		}
		errs = append(errs, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg))))
	}
	if len(errs) == 0 {
		return fmt.Errorf("no aggregator has alert %s any more", id)
	}
	return errors.Join(errs...)
}

// call sends one API request to ep with its token; query is encoded
// (url.Values.Encode), body, if any, JSON.
func (w *WatchSource) call(ctx context.Context, ep Endpoint, method, path, query string, body []byte) (*http.Response, error) {
	u, err := endpointURL(ep.URL, path, false)
	if err != nil {
		return nil, err
	}
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ep.Token != "" {
		req.Header.Set("Authorization", "Bearer "+ep.Token)
	}
	return w.client.Do(req)
}

// endpointURL joins an aggregator base URL and a path; ws selects the
// websocket scheme, else plain HTTP(S).
func endpointURL(base, path string, ws bool) (string, error) {
	bad := errors.New("aggregator URL " + strconv.Quote(base) + " is not a URL (want e.g. https://agg.example:8443 or host:port)")
	if !strings.Contains(base, "://") {
		// Without a scheme, only host:port is unambiguous ("notaurl" is
		// more likely a typo than a host on port 80).
		if _, port, err := net.SplitHostPort(base); err != nil || port == "" {
			return "", bad
		}
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Hostname() == "" {
		return "", bad
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = map[bool]string{true: "ws", false: "http"}[ws]
	case "https", "wss":
		u.Scheme = map[bool]string{true: "wss", false: "https"}[ws]
	default:
		return "", errors.New("aggregator URL " + base + " must start with http://, https://, ws:// or wss://")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	return u.String(), nil
}
