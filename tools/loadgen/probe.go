package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/wire"
)

// The latency probe measures how long a sample takes from the collector's
// socket to a viewer's: the generator notes when it writes each record of
// one node (the probe node), and one extra viewer subscribes to that node
// alone (watch protocol v2: no page rows, the node open) and, for every
// NodeView it receives, looks up when the record with that view's sequence
// number was sent. That is the whole path a change takes to a TUI: ingest,
// live state, the watch hub's debounce and spacing, encoding, the viewer's
// socket. Both ends run in this process on one clock.
type probe struct {
	mu     sync.Mutex
	sentAt map[uint64]time.Time // record sequence → when its frame was written
	seen   map[uint64]bool
	lat    *[]probeLat // shared by the probes of a run
}

type probeLat struct {
	at time.Time
	d  time.Duration
	// ingest is the part of d before the aggregator applied the record
	// (the view's last_seen, the aggregator's clock at apply, which is
	// this machine's): socket, read, decode, apply. The rest is the watch:
	// the hub's spacing and work, encoding, the viewer's socket and read.
	ingest time.Duration
	// published is when the publication carrying the view began (the
	// message's time, the aggregator's clock): applied → published is the
	// wait for the hub's next publication, published → received its work,
	// the viewer's goroutine and socket, and this process's read.
	published time.Time
}

// probeNodes is how many nodes carry a probe (each with its own viewer), so
// the measured window holds enough samples for a 99th percentile.
const probeNodes = 5

func newProbe(lat *[]probeLat) *probe {
	return &probe{sentAt: map[uint64]time.Time{}, seen: map[uint64]bool{}, lat: lat}
}

var probeLatMu sync.Mutex

// sent notes that records up to seq were written at t.
func (p *probe) sent(seq uint64, t time.Time) {
	p.mu.Lock()
	p.sentAt[seq] = t
	p.mu.Unlock()
}

// got notes that a view of the node at seq, applied at applied and
// published at published, arrived at t.
func (p *probe) got(seq uint64, applied, published, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen[seq] {
		return
	}
	if s, ok := p.sentAt[seq]; ok {
		p.seen[seq] = true
		probeLatMu.Lock()
		*p.lat = append(*p.lat, probeLat{t, t.Sub(s), applied.Sub(s), published})
		probeLatMu.Unlock()
	}
}

// latQuant is the count, median, 99th percentile and maximum of some
// latencies.
type latQuant struct {
	n            int
	p50, p99, mx time.Duration
}

func quantiles(ds []time.Duration) latQuant {
	if len(ds) == 0 {
		return latQuant{}
	}
	slices.Sort(ds)
	q := func(f float64) time.Duration { return ds[min(len(ds)-1, int(f*float64(len(ds))))] }
	return latQuant{len(ds), q(0.5), q(0.99), ds[len(ds)-1]}
}

func (q latQuant) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("p50 %s, p99 %s, max %s", r(q.p50), r(q.p99), r(q.mx))
}

// latSummary summarises the latencies that arrived in [from, to]: in all,
// up to the aggregator's apply (ingest), from there to the start of the
// publication that carried it (wait), and from there to this process's
// read (delivery).
func latSummary(lat *[]probeLat, from, to time.Time) (all, ingest, wait, delivery latQuant) {
	probeLatMu.Lock()
	var ds, is, ws, vs []time.Duration
	for _, l := range *lat {
		if !l.at.Before(from) && !l.at.After(to) {
			sent := l.at.Add(-l.d)
			applied := sent.Add(l.ingest)
			ds = append(ds, l.d)
			is = append(is, l.ingest)
			ws = append(ws, l.published.Sub(applied))
			vs = append(vs, l.at.Sub(l.published))
		}
	}
	probeLatMu.Unlock()
	return quantiles(ds), quantiles(is), quantiles(ws), quantiles(vs)
}

// watch runs the probe's viewer until ctx ends.
func (p *probe) watch(ctx context.Context, baseURL, token, nodeID string) error {
	url := "ws" + strings.TrimPrefix(baseURL, "http") + "/v1/watch"
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return fmt.Errorf("probe viewer: %w", err)
	}
	ws.SetReadLimit(-1)
	sub, _ := json.Marshal(wire.WatchSubscribe{Version: wire.WatchVersion, Node: nodeID})
	if err := ws.Write(ctx, websocket.MessageText, sub); err != nil {
		ws.CloseNow()
		return fmt.Errorf("probe viewer: subscribe: %w", err)
	}
	go func() {
		defer ws.CloseNow()
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			at := time.Now()
			var m struct {
				Time  time.Time `json:"time"`
				Nodes []struct {
					ID       string    `json:"id"`
					Seq      uint64    `json:"seq"`
					LastSeen time.Time `json:"last_seen"`
				} `json:"nodes"`
			}
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			for _, n := range m.Nodes {
				if n.ID == nodeID {
					p.got(n.Seq, n.LastSeen, m.Time, at)
				}
			}
		}
	}()
	return nil
}
