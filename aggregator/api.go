package aggregator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// Totals are fleet-wide counts for /api/v1/fleet.
type Totals struct {
	Nodes        int `json:"nodes"`
	NodesOnline  int `json:"nodes_online"`
	NodesStale   int `json:"nodes_stale"`
	NodesOffline int `json:"nodes_offline"`
	// NodesDegraded are online with a lost or invisible GPU.
	NodesDegraded int            `json:"nodes_degraded"`
	Devices       int            `json:"devices"`
	ByVendor      map[string]int `json:"devices_by_vendor"`
	Gaps          uint64         `json:"gaps"`
	Util          float64        `json:"util"` // mean over online devices reporting it, 0..1
}

// FleetResponse is the body of /api/v1/fleet.
type FleetResponse struct {
	Aggregator string          `json:"aggregator,omitempty"`
	Nodes      []wire.NodeView `json:"nodes"`
	Totals     Totals          `json:"totals"`
	Summary    wire.Summary    `json:"summary"`
}

// NodeResponse is the body of /api/v1/nodes/{id}: the node and each device's
// recent history (keyed by device index), one point per StepS seconds.
type NodeResponse struct {
	Node    wire.NodeView          `json:"node"`
	History map[string]HistoryView `json:"history"`
	StepS   float64                `json:"step_s"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if why := s.Ready(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /v1/collect", s.handleCollect)
	mux.HandleFunc("GET /v1/watch", s.handleWatch)
	mux.Handle("GET /api/v1/fleet", s.viewerOnly(http.HandlerFunc(s.handleFleet)))
	mux.Handle("GET /api/v1/nodes/{id}", s.viewerOnly(http.HandlerFunc(s.handleNode)))
	mux.Handle("GET /api/v1/alerts", s.viewerOnly(http.HandlerFunc(s.handleAlerts)))
	mux.Handle("GET /api/v1/history", s.viewerOnly(http.HandlerFunc(s.handleHistory)))
	mux.HandleFunc("POST /api/v1/alerts/mark", s.handleMark)
	// ContinueOnError: a series that cannot be gathered (a collector's
	// error) is logged and counted, and everything else is still served;
	// one node's data never turns /metrics into a 500.
	m := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}, ErrorHandling: promhttp.ContinueOnError})
	if s.cfg.MetricsHandler != nil {
		m = s.cfg.MetricsHandler(s.reg)
	}
	if !s.cfg.MetricsPublic {
		m = s.viewerOnly(m)
	}
	mux.Handle("GET /metrics", m)
	return mux
}

type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) {
	p.s.m.renderErrs.WithLabelValues(surfaceMetrics).Inc()
	if p.s.renderLog.allow(p.s.clock()) {
		p.s.log.Error("metrics: series left out of the scrape", "err", fmt.Sprint(v...))
	}
}

func (s *Server) viewerOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.authorize(w, r, RoleViewer) == nil {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// writeJSON encodes v into a buffer first, so a value that cannot be
// encoded answers 500 with a clear message instead of a 200 with a
// truncated or empty body; the failure is logged and counted.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		s.m.renderErrs.WithLabelValues(surfaceAPI).Inc()
		s.log.Error("api: cannot encode the response", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error: the response could not be encoded ("+err.Error()+"); see the aggregator log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) handleFleet(w http.ResponseWriter, r *http.Request) {
	resp := FleetResponse{Aggregator: s.cfg.Name, Nodes: s.Nodes()}
	resp.Totals = totals(resp.Nodes)
	resp.Summary, _, _ = s.summarize(s.clock())
	s.writeJSON(w, r, resp)
}

func totals(nodes []wire.NodeView) Totals {
	t := Totals{Nodes: len(nodes), ByVendor: map[string]int{}}
	var utilSum float64
	var utilN int
	for i := range nodes {
		n := &nodes[i]
		switch n.State {
		case wire.StateOnline:
			t.NodesOnline++
		case wire.StateDegraded:
			t.NodesDegraded++
		case wire.StateStale:
			t.NodesStale++
		default:
			t.NodesOffline++
		}
		t.Gaps += n.Gaps
		for _, d := range n.Devices {
			if d.Instance.Profile != "" {
				continue // a MIG instance of a GPU already counted
			}
			t.Devices++
			t.ByVendor[string(d.Vendor)]++
			if (n.State == wire.StateOnline || n.State == wire.StateDegraded) && d.State != fleet.DeviceLost && d.Util != nil {
				utilSum += *d.Util
				utilN++
			}
		}
	}
	if utilN > 0 {
		t.Util = utilSum / float64(utilN)
	}
	return t
}

// AlertView is one alert in /api/v1/alerts.
type AlertView struct {
	ID       string          `json:"id"`
	Kind     fleet.EventKind `json:"kind"`
	Severity fleet.Severity  `json:"severity"`
	Node     string          `json:"node,omitempty"`
	Region   string          `json:"region,omitempty"`
	GPU      *int            `json:"gpu"` // device index; null when not device-specific
	Job      string          `json:"job,omitempty"`
	Start    time.Time       `json:"start"`
	End      *time.Time      `json:"end"` // null while open
	Open     bool            `json:"open"`
	Message  string          `json:"message"`
	// An operator's marks (POST /api/v1/alerts/mark).
	Acked         bool      `json:"acked,omitempty"`
	AckedBy       string    `json:"acked_by,omitempty"`
	SilencedUntil time.Time `json:"silenced_until,omitzero"`
}

// AlertsResponse is the body of /api/v1/alerts: the open alerts and those
// that ended recently, oldest start first, on the aggregator's clock (Time).
type AlertsResponse struct {
	Aggregator string      `json:"aggregator,omitempty"`
	Time       time.Time   `json:"time"`
	Open       int         `json:"open"`
	Alerts     []AlertView `json:"alerts"`
}

func alertViews(alerts []fleet.Alert) []AlertView {
	out := make([]AlertView, 0, len(alerts))
	for _, a := range alerts {
		v := AlertView{ID: a.ID, Kind: a.Kind, Severity: a.Severity, Node: a.Node, Region: a.Region, Job: a.Job,
			Start: a.Start, Open: a.Open(), Message: a.Message, Acked: a.Acked, AckedBy: a.AckedBy, SilencedUntil: a.SilencedUntil}
		if a.Device >= 0 {
			d := a.Device
			v.GPU = &d
		}
		if !a.Open() {
			e := a.End
			v.End = &e
		}
		out = append(out, v)
	}
	return out
}

func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request) {
	now := s.clock()
	_, _, alerts := s.summarize(now)
	resp := AlertsResponse{Aggregator: s.cfg.Name, Time: now, Alerts: alertViews(alerts)}
	for _, a := range resp.Alerts {
		if a.Open {
			resp.Open++
		}
	}
	s.writeJSON(w, r, resp)
}

func (s *Server) handleNode(w http.ResponseWriter, r *http.Request) {
	n := s.node(r.PathValue("id"))
	if n == nil {
		http.Error(w, "no such node", http.StatusNotFound)
		return
	}
	last := 0
	if q := r.URL.Query().Get("last"); q != "" {
		v, err := strconv.Atoi(q)
		if err != nil || v < 0 {
			http.Error(w, "last must be a non-negative number of points", http.StatusBadRequest)
			return
		}
		last = v
	}
	now := s.clock()
	resp := NodeResponse{History: map[string]HistoryView{}, StepS: s.cfg.Interval.Seconds()}
	n.mu.Lock()
	resp.Node = s.view(n, now)
	for i := range n.devs {
		resp.History[strconv.Itoa(n.node.Devices[i].Index)] = n.devs[i].hist.view(last)
	}
	n.mu.Unlock()
	s.writeJSON(w, r, resp)
}
