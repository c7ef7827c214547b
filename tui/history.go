package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// History on screen: the range picker ([ and ]) chooses one of
// fleet.HistoryRanges for the Fleet view's region sparklines, a region's
// graphs (Nodes narrowed to a region), the Cost view's fleet graphs and the
// Node view. The aggregators serve the points (GET /api/v1/history, at most
// 300 a series); the TUI fetches them at a modest cadence (once a step, at
// least 5 s apart on a node and 10 s on the regions), so that graphs do not
// redraw every second.

// HistoryRequest is what RangeHistory asks an aggregator for: a node's
// history (its series and one per GPU), or the fleet's by region.
type HistoryRequest struct {
	Range string // a fleet.HistoryRanges name
	Node  string // "": the fleet
	By    string // "region": one series per region (fleet only)
}

func (q HistoryRequest) query() string {
	v := url.Values{}
	v.Set("range", q.Range)
	if q.Node != "" {
		v.Set("node", q.Node)
	}
	if q.By != "" {
		v.Set("by", q.By)
	}
	return v.Encode()
}

// RangeHistory implements Source.
func (w *WatchSource) RangeHistory(ctx context.Context, agg int, q HistoryRequest) (*wire.HistoryResponse, error) {
	if agg < 0 || agg >= len(w.eps) {
		return nil, fmt.Errorf("history: no aggregator %d", agg)
	}
	resp, err := w.call(ctx, w.eps[agg], http.MethodGet, "/api/v1/history", q.query(), nil)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode == http.StatusNotFound && q.Node == "" {
			return nil, fmt.Errorf("history: this aggregator serves no /api/v1/history (upgrade it)")
		}
		return nil, fmt.Errorf("history: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	h := new(wire.HistoryResponse)
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(h); err != nil {
		return nil, fmt.Errorf("history: decode: %w", err)
	}
	return h, nil
}

// histSeries is one series with gaps as NaN.
type histSeries struct {
	util, power, mem, temp, idle []float64
}

func toSeries(s *wire.HistorySeries) histSeries {
	return histSeries{util: points(s.Util), power: points(s.Power), mem: points(s.MemUsed), temp: points(s.TempMax), idle: points(s.Idle)}
}

// histState is the history on screen and its fetches. The root model owns
// it; pages read it through shared.
type histState struct {
	rng int // index into fleet.HistoryRanges

	// The fleet by region, merged over the aggregators.
	regions     map[string]histSeries
	regionsRng  string
	regionsAt   time.Time
	regionsBusy bool
	regionsErr  string

	// The open node: its own series and its GPUs'.
	node     string
	nodeRng  string
	nodeAll  histSeries
	nodeDevs map[int]histSeries
	nodeAt   time.Time
	nodeBusy bool
	nodeErr  string
}

func newHistState() histState {
	h := histState{}
	for i, r := range fleet.HistoryRanges {
		if r.Name == fleet.DefaultHistoryRange {
			h.rng = i
		}
	}
	return h
}

// Range is the range picked.
func (h *histState) Range() fleet.HistoryRange { return fleet.HistoryRanges[h.rng] }

// shift moves the range picker by d (wrapping) and forgets the series of
// the old range, which would otherwise be labelled with the new one.
func (h *histState) shift(d int) {
	n := len(fleet.HistoryRanges)
	h.rng = ((h.rng+d)%n + n) % n
	h.regions, h.regionsRng, h.regionsAt = nil, "", time.Time{}
	h.nodeAll, h.nodeDevs, h.nodeRng, h.nodeAt = histSeries{}, nil, "", time.Time{}
}

// region returns the history of region name for the range picked.
func (h *histState) region(name string) (histSeries, bool) {
	if h.regionsRng != h.Range().Name {
		return histSeries{}, false
	}
	s, ok := h.regions[name]
	return s, ok
}

// forNode returns the open node's history for the range picked.
func (h *histState) forNode(id string) (histSeries, map[int]histSeries, bool) {
	if h.node != id || h.nodeRng != h.Range().Name {
		return histSeries{}, nil, false
	}
	return h.nodeAll, h.nodeDevs, true
}

// cadence is how long a fetched history stays on screen before the next
// fetch: one step of the range, within [least, 1 min].
func cadence(rg fleet.HistoryRange, least time.Duration) time.Duration {
	return min(max(rg.Step, least), time.Minute)
}

// histMsg carries fetched history into the program.
type histMsg struct {
	rng     string
	node    string // "" for the regions
	regions map[string]histSeries
	all     histSeries
	devs    map[int]histSeries
	err     error
}

// fetchRegions fetches the fleet by region from every aggregator, when due.
func (a *App) fetchRegions(now time.Time) tea.Cmd {
	h := &a.sh.hist
	rg := h.Range()
	if h.regionsBusy || h.regionsRng == rg.Name && now.Sub(h.regionsAt) < cadence(rg, 10*time.Second) {
		return nil
	}
	h.regionsBusy, h.regionsAt = true, now
	src, aggs := a.src, max(len(a.o.Aggregators), 1)
	if s := a.sh.snap; s != nil && len(s.Conns) > 0 {
		aggs = len(s.Conns)
	}
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m := histMsg{rng: rg.Name, regions: map[string]histSeries{}}
		var errs []string
		for agg := range aggs {
			r, err := src.RangeHistory(ctx, agg, HistoryRequest{Range: rg.Name, By: "region"})
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			for i := range r.Series {
				m.regions[r.Series[i].Name] = toSeries(&r.Series[i])
			}
		}
		if len(errs) > 0 && len(m.regions) == 0 {
			m.err = fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return m
	}
}

// fetchNode fetches the open node's history from its aggregator, when due.
func (a *App) fetchNode(now time.Time) tea.Cmd {
	h := &a.sh.hist
	agg, id, ok := a.node.Target()
	if !ok || h.nodeBusy {
		return nil
	}
	rg := h.Range()
	if h.node == id && h.nodeRng == rg.Name && now.Sub(h.nodeAt) < cadence(rg, 5*time.Second) {
		return nil
	}
	h.nodeBusy, h.nodeAt = true, now
	src := a.src
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m := histMsg{rng: rg.Name, node: id}
		r, err := src.RangeHistory(ctx, agg, HistoryRequest{Range: rg.Name, Node: id})
		if err != nil {
			m.err = err
			return m
		}
		m.devs = map[int]histSeries{}
		for i := range r.Series {
			s := &r.Series[i]
			switch {
			case s.Device != nil:
				m.devs[*s.Device] = toSeries(s)
			case i == 0:
				m.all = toSeries(s)
			}
		}
		return m
	}
}

// setHistory stores fetched history (the program does this on histMsg;
// tests call it directly) and lays out the pages that draw it.
func (a *App) setHistory(m histMsg) {
	h := &a.sh.hist
	if m.node == "" {
		h.regionsBusy = false
		if m.err != nil {
			h.regionsErr = m.err.Error()
		} else if m.rng == h.Range().Name {
			h.regionsErr = ""
			h.regions, h.regionsRng = m.regions, m.rng
		}
	} else {
		h.nodeBusy = false
		if m.err != nil {
			h.nodeErr = m.err.Error()
		} else if m.rng == h.Range().Name {
			h.nodeErr = ""
			h.node, h.nodeRng, h.nodeAll, h.nodeDevs = m.node, m.rng, m.all, m.devs
		}
	}
	a.historyChanged()
}

// historyChanged lays out again the pages that draw history.
func (a *App) historyChanged() {
	for _, p := range a.pages {
		if hp, ok := p.(interface{ HistoryChanged() }); ok {
			hp.HistoryChanged()
		}
	}
}

// maybeFetchHistory fetches what the page on screen graphs, when due.
func (a *App) maybeFetchHistory() tea.Cmd {
	if a.src == nil {
		return nil
	}
	now := a.o.Clock()
	switch a.active {
	case pageNode:
		return a.fetchNode(now)
	case pageFleet, pageCost:
		return a.fetchRegions(now)
	case pageNodes:
		if a.shownRegion() != "" {
			return a.fetchRegions(now)
		}
	}
	return nil
}

// historyErr is the fetch problem of the page on screen, "" when none.
func (a *App) historyErr() string {
	switch a.active {
	case pageNode:
		return a.sh.hist.nodeErr
	case pageFleet, pageCost:
		return a.sh.hist.regionsErr
	case pageNodes:
		if a.shownRegion() != "" {
			return a.sh.hist.regionsErr
		}
	}
	return ""
}

// graphsRange reports whether the page on screen draws history, so that
// [ and ] mean something there.
func (a *App) graphsRange() bool {
	switch a.active {
	case pageNode, pageFleet, pageCost:
		return true
	case pageNodes:
		return a.shownRegion() != ""
	}
	return false
}

// shownRegion is the region the Nodes view is narrowed to (by enter on the
// Fleet view or :region), "" when its filter is not exactly a region.
func (a *App) shownRegion() string {
	np, ok := a.pages[pageNodes].(*listPage[*NodeRow])
	if !ok {
		return ""
	}
	return regionNamed(a.sh.snap, np.Filter())
}

// fleetSeries sums the regions' history into the fleet's: power and memory
// add up, utilisation and idle share are weighted by each region's GPUs.
func fleetSeries(h *histState, regions []RegionRow) (histSeries, bool) {
	var out histSeries
	var wu, wi []float64
	found := false
	for i := range regions {
		s, ok := h.region(regions[i].Region)
		if !ok {
			continue
		}
		if !found {
			n := len(s.util)
			out = histSeries{util: make([]float64, n), power: nanSlice(n), mem: nanSlice(n), temp: nanSlice(n), idle: make([]float64, n)}
			wu, wi = make([]float64, n), make([]float64, n)
			found = true
		}
		g := float64(max(regions[i].GPUs, 1))
		for k := range out.util {
			if v := at(s.util, k); !math.IsNaN(v) {
				out.util[k] += v * g
				wu[k] += g
			}
			if v := at(s.idle, k); !math.IsNaN(v) {
				out.idle[k] += v * g
				wi[k] += g
			}
			out.power[k] = addNaN(out.power[k], at(s.power, k))
			out.mem[k] = addNaN(out.mem[k], at(s.mem, k))
			if v := at(s.temp, k); !math.IsNaN(v) && (math.IsNaN(out.temp[k]) || v > out.temp[k]) {
				out.temp[k] = v
			}
		}
	}
	for k := range out.util {
		out.util[k] = divNaN(out.util[k], wu[k])
		out.idle[k] = divNaN(out.idle[k], wi[k])
	}
	return out, found
}

// at is s[k], NaN past its end (an aggregator that sent fewer points).
func at(s []float64, k int) float64 {
	if k < len(s) {
		return s[k]
	}
	return math.NaN()
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

func addNaN(a, b float64) float64 {
	switch {
	case math.IsNaN(b):
		return a
	case math.IsNaN(a):
		return b
	}
	return a + b
}

func divNaN(a, w float64) float64 {
	if w == 0 {
		return math.NaN()
	}
	return a / w
}

// graph is one labelled history line: "Util 15m ▁▂▅▇ min 12.0% max 98.0%
// last 74.0%", the sparkline taking the width the figures leave. A series
// without a point says so instead of drawing an empty line.
func graph(st *Styles, label, rng string, vals []float64, lo, hi float64, format func(float64) string, w int) string {
	head := st.Label.Render(Fit(label+" "+rng, 16)) + " "
	mn, mx, last, ok := seriesStats(vals)
	if !ok {
		return head + st.Dim.Render("no data in the last "+rng)
	}
	// Fixed-width figures, so that the graphs of a page line up.
	figs := "  " + st.Label.Render("min ") + FitRight(format(mn), 7) + "  " + st.Label.Render("max ") + FitRight(format(mx), 7) +
		"  " + st.Label.Render("last ") + FitRight(format(last), 7)
	sw := w - 17 - cellWidth(figs)
	if sw < 8 { // narrow: the figures matter more than the shape
		return head + strings.TrimLeft(figs, " ")
	}
	if math.IsNaN(hi) {
		hi = mx
	}
	return head + st.Spark.Render(Sparkline(Downsample(vals, sw), lo, hi, sw)) + figs
}

// seriesStats returns the least, greatest and newest value of vals,
// skipping gaps; ok is false when there is none.
func seriesStats(vals []float64) (mn, mx, last float64, ok bool) {
	mn, mx, last = math.Inf(1), math.Inf(-1), math.NaN()
	for _, v := range vals {
		if math.IsNaN(v) {
			continue
		}
		mn, mx, last, ok = min(mn, v), max(mx, v), v, true
	}
	return mn, mx, last, ok
}

// rangeLabel names the range for a column title: "Util 15m".
func rangeLabel(prefix string, h *histState) string { return prefix + " " + h.Range().Name }

// rangeNames lists the ranges: "1m 15m 1h 24h 7d".
func rangeNames() string {
	names := make([]string, len(fleet.HistoryRanges))
	for i, r := range fleet.HistoryRanges {
		names[i] = r.Name
	}
	return strings.Join(names, " ")
}
