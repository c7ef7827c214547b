package aggregator

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// viewer is one watch stream. It holds no queue: every tick it sends the
// nodes whose version is newer than what it last sent, so a slow viewer
// costs one message of memory and never holds up ingest.
type viewer struct {
	s    *Server
	conn *websocket.Conn
	name string
	done chan struct{}
	once sync.Once
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request) {
	tok := s.authorize(w, r, RoleViewer)
	if tok == nil {
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	if s.closing.Load() {
		http.Error(w, "aggregator shutting down", http.StatusServiceUnavailable)
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Watch messages are repetitive JSON: deflate per message, with pooled
		// compressors instead of a resident 1.2 MB one per viewer.
		CompressionMode: websocket.CompressionNoContextTakeover,
	})
	if err != nil {
		s.log.Debug("watch upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	v := &viewer{s: s, conn: conn, name: tok.Name, done: make(chan struct{})}
	defer track(s, s.viewers, s.m.viewers, v)()
	if s.closing.Load() {
		v.close(wire.CloseGoingAway, "aggregator shutting down")
		return
	}
	// Viewers only read; CloseRead answers pings and notices the peer leaving.
	ctx := conn.CloseRead(context.Background())
	err = v.run(ctx)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		s.m.viewerDrops.Inc()
		s.log.Info("viewer dropped: not reading", "token", v.name, "remote", r.RemoteAddr)
		v.close(wire.CloseCode(websocket.StatusPolicyViolation), "too slow: reconnect")
	case errors.As(err, new(*renderError)):
		// Not the peer going away: say why instead of closing silently.
		s.m.renderErrs.WithLabelValues(surfaceWatch).Inc()
		s.log.Error("watch ended by an error", "token", v.name, "remote", r.RemoteAddr, "err", err)
		v.close(wire.CloseCode(websocket.StatusInternalError), "internal error: "+err.Error())
	case err != nil:
		s.log.Debug("viewer ended", "token", v.name, "err", err)
		v.close(wire.CloseNormal, "")
	}
}

func (v *viewer) close(code wire.CloseCode, reason string) {
	v.once.Do(func() {
		close(v.done)
		_ = v.conn.Close(websocket.StatusCode(code), reason)
	})
}

func (v *viewer) run(ctx context.Context) error {
	s := v.s
	last := s.version.Load()
	var scratch []byte
	msg, err := s.appendWatch(nil, &scratch, wire.WatchSnapshot, 0)
	if err != nil {
		return &renderError{err}
	}
	if err := v.write(msg); err != nil {
		return err
	}
	t := time.NewTicker(s.cfg.ViewerInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-v.done:
			return nil
		case <-t.C:
		}
		cur := s.version.Load()
		msg, err = s.appendWatch(msg[:0], &scratch, wire.WatchUpdate, last)
		if err != nil {
			return &renderError{err}
		}
		last = cur
		if err := v.write(msg); err != nil {
			return err
		}
	}
}

// renderError is a watch message that could not be built: the viewer is
// told so (1011 with the reason) rather than closed silently.
type renderError struct{ err error }

func (e *renderError) Error() string { return "render watch message: " + e.err.Error() }
func (e *renderError) Unwrap() error { return e.err }

func (v *viewer) write(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), v.s.cfg.WriteTimeout)
	defer cancel()
	if err := v.conn.Write(ctx, websocket.MessageText, b); err != nil {
		if ctx.Err() != nil {
			return context.DeadlineExceeded
		}
		return err
	}
	return nil
}

// appendWatch appends a watch message with the nodes changed after version
// since (0: all of them). scratch is a reusable buffer for the nodes.
func (s *Server) appendWatch(dst []byte, scratch *[]byte, kind string, since uint64) ([]byte, error) {
	now := s.clock()
	nodes := (*scratch)[:0]
	defer func() { *scratch = nodes }()
	var err error
	for _, n := range s.nodeList() {
		if n.version.Load() <= since {
			continue
		}
		if len(nodes) > 0 {
			nodes = append(nodes, ',')
		}
		mark := len(nodes)
		n.mu.Lock()
		nodes, err = s.appendNodeJSON(nodes, n, now)
		n.mu.Unlock()
		if err != nil {
			// One node that cannot be encoded is left out (logged and
			// counted); it must not close every viewer's watch.
			nodes = nodes[:max(mark-1, 0)]
			s.m.renderErrs.WithLabelValues(surfaceWatch).Inc()
			if s.renderLog.allow(now) {
				s.log.Error("watch: node left out of the update", "node", n.id, "err", err)
			}
		}
	}
	var tail watchTail
	tail.Removed = s.removedSince(since)
	tail.Summary, tail.Jobs, tail.Alerts = s.summarize(now)
	return appendWatchJSON(dst, &watchHead{Version: wire.WatchVersion, Kind: kind, Time: now, Aggregator: s.cfg.Name}, nodes, &tail)
}

// summaryCache keeps Insights.Summarize to at most one call per viewer
// interval however many viewers there are.
type summaryCache struct {
	mu     sync.Mutex
	at     time.Time // the server's clock at the last computation
	sum    wire.Summary
	jobs   []wire.JobView
	alerts []fleet.Alert
}

func (s *Server) summarize(now time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	c := &s.sumCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if age := now.Sub(c.at); !c.at.IsZero() && age >= 0 && age < s.cfg.ViewerInterval*9/10 {
		return c.sum, c.jobs, s.marks.apply(c.alerts, now)
	}
	if s.cfg.Insights != nil {
		c.sum, c.jobs, c.alerts = s.cfg.Insights.Summarize(now)
	} else {
		c.sum, c.jobs, c.alerts = s.basicSummary(now), nil, nil
	}
	if extra := s.conflicts.alerts(now, 2*s.cfg.OfflineAfter); len(extra) > 0 {
		c.alerts = append(slices.Clip(c.alerts), extra...)
	}
	c.at = now
	return c.sum, c.jobs, s.marks.apply(c.alerts, now)
}

// basicSummary counts nodes and devices by state, averages utilisation over
// online devices and sums lease burn. Without a cost engine there is no
// currency conversion: burn is summed in the currency of the first priced
// node, and nodes priced in another currency are left out.
func (s *Server) basicSummary(now time.Time) wire.Summary {
	var sum wire.Summary
	var utilSum float64
	var utilN int
	for _, n := range s.nodeList() {
		n.mu.Lock()
		st := s.stateAt(n, now)
		ndev := n.node.VisibleGPUs()
		sum.GPUsLost += len(n.devs) - ndev
		sum.GPUsBlind += n.node.BlindGPUs()
		switch st {
		case wire.StateOnline, wire.StateDegraded:
			if st == wire.StateOnline {
				sum.NodesOnline++
			} else {
				sum.NodesDegraded++
			}
			sum.GPUsOnline += ndev
			for i := range n.devs {
				if n.devs[i].dev.State == fleet.DeviceLost {
					continue
				}
				if u, ok := n.devs[i].latest.Get(fleet.MetricUtil); ok && n.devs[i].seen && finite(u) {
					utilSum += u
					utilN++
				}
			}
		case wire.StateStale:
			sum.NodesStale++
			sum.GPUsStale += ndev
		default:
			sum.NodesOffline++
			sum.GPUsOffline += ndev
		}
		b := s.burn(n)
		n.mu.Unlock()
		if b.Micros != 0 {
			if sum.Currency == "" {
				sum.Currency = b.Currency
			}
			if b.Currency == sum.Currency {
				sum.BurnPerHour.Micros += b.Micros
			}
		}
	}
	sum.BurnPerHour.Currency = sum.Currency
	if utilN > 0 {
		sum.Util = utilSum / float64(utilN)
	}
	return sum
}
