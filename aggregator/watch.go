package aggregator

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// viewer is one watch stream. It holds no queue: it sends its group's
// latest publication (see watchhub.go), so a slow viewer costs at most one
// message of memory and never holds up ingest or other viewers.
type viewer struct {
	s    *Server
	conn *websocket.Conn
	name string
	done chan struct{}
	once sync.Once
}

var errViewerGone = errors.New("viewer went away")

// maxSubscribe bounds a viewer's subscription message.
const maxSubscribe = 16 << 10

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
		// Messages are a few KiB and shared by every viewer of a
		// subscription: compressing them per viewer would cost more CPU
		// than the bytes are worth.
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		s.log.Debug("watch upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	conn.SetReadLimit(maxSubscribe)
	v := &viewer{s: s, conn: conn, name: tok.Name, done: make(chan struct{})}
	defer track(s, s.viewers, s.m.viewers, v)()
	if s.closing.Load() {
		v.close(wire.CloseGoingAway, "aggregator shutting down")
		return
	}
	subs := make(chan wire.WatchSubscribe, 1)
	gone := make(chan struct{})
	go v.readSubscriptions(gone, subs)
	err = v.run(gone, subs)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		s.m.viewerDrops.Inc()
		s.log.Info("viewer dropped: not reading", "token", v.name, "remote", r.RemoteAddr)
		v.close(wire.CloseCode(websocket.StatusPolicyViolation), "too slow: reconnect")
	case err != nil:
		s.log.Debug("viewer ended", "token", v.name, "err", err)
		v.close(wire.CloseNormal, "")
	}
}

// readSubscriptions reads the viewer's subscription messages, keeping only
// the latest unread one in subs, and answers pings; it closes gone when the
// viewer goes away or sends something that is not a subscription. (Its
// reads are never cancelled: that would cut the connection before a close
// frame could go out.)
func (v *viewer) readSubscriptions(gone chan<- struct{}, subs chan wire.WatchSubscribe) {
	defer close(gone)
	for {
		typ, b, err := v.conn.Read(context.Background())
		if err != nil {
			return
		}
		var sub wire.WatchSubscribe
		if typ != websocket.MessageText || json.Unmarshal(b, &sub) != nil {
			v.close(wire.CloseProtocol, "watch: expected a JSON subscription")
			return
		}
		select { // latest wins
		case <-subs:
		default:
		}
		subs <- sub
	}
}

func (v *viewer) close(code wire.CloseCode, reason string) {
	v.once.Do(func() {
		close(v.done)
		_ = v.conn.Close(websocket.StatusCode(code), reason)
	})
}

// run sends the group's publications: a snapshot first, then updates from
// the publication it sent last to the latest (coalesced when it skipped
// some). It keeps one publication, so its memory does not grow.
func (v *viewer) run(gone <-chan struct{}, subs <-chan wire.WatchSubscribe) error {
	h := v.s.hub()
	g := h.enter(wire.DefaultSubscription())
	defer func() { h.leave(g) }()
	var sent *watchPub // the last publication sent; nil: none in this group
	for {
		pub, changed := g.latest()
		if pub != nil && pub != sent {
			var msg []byte
			if sent == nil {
				msg = pub.snapshot()
			} else {
				msg = pub.since(sent)
			}
			if err := v.write(msg); err != nil {
				return err
			}
			sent = pub
			continue
		}
		select {
		case <-gone:
			return errViewerGone
		case <-v.done:
			return nil
		case sub := <-subs:
			h.leave(g)
			g = h.enter(sub)
			sent = nil
		case <-changed:
		}
	}
}

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

// summaryCache keeps Insights.Summarize to at most one call per viewer
// interval however many viewers there are (the watch hub and the API share
// it), and to a small share of a core however large the fleet: Summarize
// walks every node (money at exact precision), which at 10,000 GPUs took
// 10–30 ms of CPU, a sixth of the aggregator's, and grows with the fleet.
type summaryCache struct {
	mu     sync.Mutex
	at     time.Time     // the server's clock at the last computation
	took   time.Duration // how long the last computation ran
	sum    wire.Summary
	jobs   []wire.JobView
	alerts []fleet.Alert
}

// Fleet aggregates are recomputed once per viewer interval, or less often
// when that would take more than 1/summaryDuty of a core, but at least every
// summaryMaxAge. Node rows and the open node are not affected: they follow
// ingest within the watch's debounce. At 1/50 of a core, 10,000 GPUs
// (Summarize: 5–6 ms of CPU on the project's machine, 7–12 ms of wall time)
// were summed every 0.9 s, 11–16 % of the aggregator's CPU with viewers;
// at 1/200 they are summed every 1.8–2.7 s, and a fleet whose Summarize
// takes under 4.5 ms (a few thousand GPUs) still every viewer interval.
const (
	summaryDuty   = 200
	summaryMaxAge = 5 * time.Second
)

// summaryAge is how old the cached aggregates may be.
func (s *Server) summaryAge(took time.Duration) time.Duration {
	return max(s.cfg.ViewerInterval*9/10, min(summaryMaxAge, summaryDuty*took))
}

func (s *Server) summarize(now time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	c := &s.sumCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if age := now.Sub(c.at); !c.at.IsZero() && age >= 0 && age < s.summaryAge(c.took) {
		return c.sum, c.jobs, s.marks.apply(c.alerts, now)
	}
	start := time.Now()
	if s.cfg.Insights != nil {
		c.sum, c.jobs, c.alerts = s.cfg.Insights.Summarize(now)
	} else {
		c.sum, c.jobs, c.alerts = s.basicSummary(now), nil, nil
	}
	if extra := s.conflicts.alerts(now, 2*s.cfg.OfflineAfter); len(extra) > 0 {
		c.alerts = append(slices.Clip(c.alerts), extra...)
	}
	c.at, c.took = now, time.Since(start)
	return c.sum, c.jobs, s.marks.apply(c.alerts, now)
}

// Summary is the fleet aggregates as viewers and the API see them: the
// cached Summarize (at most a few seconds old; see summaryCache), with the
// operators' marks applied. Exporters read it so that a scrape costs no
// extra walk of the fleet and shows the same figures as the TUI.
func (s *Server) Summary(now time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	return s.summarize(now)
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
		ndev := n.visibleGPUs()
		sum.GPUsLost += len(n.devs) - ndev
		sum.GPUsBlind += n.blindGPUs()
		switch st {
		case wire.StateOnline, wire.StateDegraded:
			if st == wire.StateOnline {
				sum.NodesOnline++
			} else {
				sum.NodesDegraded++
			}
			sum.GPUsOnline += ndev
			for i := range n.devs {
				if n.node.Devices[i].State == fleet.DeviceLost {
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
