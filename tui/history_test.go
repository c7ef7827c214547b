package tui

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// fakeSeries is a deterministic series of n points: a slow wave of
// utilisation around base, its power, and a gap in the oldest tenth.
func fakeSeries(name string, n int, base, watts float64) wire.HistorySeries {
	s := wire.HistorySeries{Name: name}
	vals := make([]float64, 3*n)
	for i := range n {
		s.Util, s.Power, s.Idle = append(s.Util, nil), append(s.Power, nil), append(s.Idle, nil)
		if i < n/10 {
			continue
		}
		u := math.Max(0, math.Min(1, base+0.2*math.Sin(float64(i)/float64(n)*2*math.Pi)))
		vals[3*i], vals[3*i+1] = u, watts*(0.3+0.7*u)
		vals[3*i+2] = math.Max(0, 0.5-u)
		s.Util[i], s.Power[i], s.Idle[i] = &vals[3*i], &vals[3*i+1], &vals[3*i+2]
	}
	return s
}

// fakeHistory answers a history request for the fixture fleet.
func fakeHistory(q HistoryRequest, s *Snapshot) *wire.HistoryResponse {
	rg, _ := fleet.LookupHistoryRange(q.Range)
	n := rg.Points()
	r := &wire.HistoryResponse{Range: rg.Name, StepS: rg.Step.Seconds(), Scope: "fleet"}
	if q.Node != "" {
		r.Scope, r.ID = "node", q.Node
		r.Series = append(r.Series, fakeSeries(q.Node, n, 0.6, 8*700))
		for d := range 8 {
			g := fakeSeries("gpu "+strconv.Itoa(d), n, 0.3+0.08*float64(d), 700)
			g.Device = &d
			r.Series = append(r.Series, g)
		}
		return r
	}
	for i, reg := range s.Regions {
		r.Series = append(r.Series, fakeSeries(reg.Region, n, 0.2+0.25*float64(i), float64(reg.GPUs)*500))
	}
	return r
}

// withHistory gives a test app the fixture's history for the range picked,
// as if fetched.
func withHistory(a *App) *App {
	s := a.sh.snap
	rg := a.sh.hist.Range().Name
	m := histMsg{rng: rg, regions: map[string]histSeries{}}
	for _, x := range fakeHistory(HistoryRequest{Range: rg, By: "region"}, s).Series {
		m.regions[x.Name] = toSeries(&x)
	}
	a.setHistory(m)
	if _, id, ok := a.node.Target(); ok {
		r := fakeHistory(HistoryRequest{Range: rg, Node: id}, s)
		m := histMsg{rng: rg, node: id, all: toSeries(&r.Series[0]), devs: map[int]histSeries{}}
		for _, x := range r.Series[1:] {
			m.devs[*x.Device] = toSeries(&x)
		}
		a.setHistory(m)
	}
	return a
}

func TestDownsample(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		in    []float64
		width int
		want  []float64
	}{
		{[]float64{1, 2, 3}, 5, []float64{1, 2, 3}},
		{[]float64{1, 3, 5, 7}, 2, []float64{2, 6}},
		{[]float64{nan, nan, 4, nan}, 2, []float64{nan, 4}},
		{[]float64{1, 2, 3, 4, 5, 6, 7}, 3, []float64{1.5, 3.5, 6}},
	} {
		got := Downsample(c.in, c.width)
		if len(got) != len(c.want) {
			t.Fatalf("Downsample(%v, %d) = %v", c.in, c.width, got)
		}
		for i := range got {
			if got[i] != c.want[i] && !(math.IsNaN(got[i]) && math.IsNaN(c.want[i])) {
				t.Errorf("Downsample(%v, %d) = %v, want %v", c.in, c.width, got, c.want)
				break
			}
		}
	}
}

func TestGraphLine(t *testing.T) {
	st := NewStyles(StylePlain)
	nan := math.NaN()
	vals := []float64{nan, 0.1, 0.5, 0.9, 0.4}
	for _, c := range []struct {
		w    int
		want string
	}{
		// The shape right-aligned (5 points in 23 cells), the gap blank.
		{80, "Utilisation 1h                      ▂▅▇▄  min   10.0%  max   90.0%  last   40.0%"},
		{50, "Utilisation 1h   min   10.0%  max   90.0%  last   40.0%"}, // no room for the shape
	} {
		if got := strings.TrimRight(graph(st, "Utilisation", "1h", vals, 0, 1, Percent, c.w), " "); got != c.want {
			t.Errorf("width %d: %q, want %q", c.w, got, c.want)
		}
	}
	if got := graph(st, "Power", "7d", []float64{nan, nan}, 0, 1, Watts, 80); !strings.Contains(got, "no data in the last 7d") {
		t.Errorf("a series of gaps: %q", got)
	}
}

func TestRangePickerWraps(t *testing.T) {
	h := newHistState()
	if h.Range().Name != "15m" {
		t.Fatalf("starts at %s, want 15m", h.Range().Name)
	}
	var seen []string
	for range len(fleet.HistoryRanges) {
		h.shift(1)
		seen = append(seen, h.Range().Name)
	}
	if got := strings.Join(seen, " "); got != "1h 24h 7d 1m 15m" {
		t.Errorf("] cycles %s", got)
	}
	h.shift(-2)
	if h.Range().Name != "7d" {
		t.Errorf("[[ from 15m: %s, want 7d", h.Range().Name)
	}
}

// The range picker: ] and [ change the range of the Node view's graphs and
// the history fetched; the footer and the graphs' labels say which.
func TestFlowHistoryRange(t *testing.T) {
	src := &fakeSource{ch: make(chan *Snapshot, 1)}
	src.ch <- fixtureSnapshot()
	app := NewApp(Options{plain: true, Clock: func() time.Time { return fixedNow }}, src)
	tm := teatest.NewTestModel(t, app, teatest.WithInitialTermSize(160, 40))
	waitOut(t, tm, "Util 15m") // the Fleet view's region sparklines
	tm.Type("3")
	waitOut(t, tm, "Utilisation 15m")
	tm.Type("]")
	waitReq(t, src, HistoryRequest{Range: "1h", Node: "ae-d1"})
	tm.Type("[")
	tm.Type("[")
	waitReq(t, src, HistoryRequest{Range: "1m", Node: "ae-d1"})
	tm.Type("5") // the Cost view: the fleet's graphs over the same range
	waitReq(t, src, HistoryRequest{Range: "1m", By: "region"})
	waitOut(t, tm, "Idle share")
	a := final(t, tm)
	if a.sh.hist.Range().Name != "1m" {
		t.Errorf("range %s, want 1m", a.sh.hist.Range().Name)
	}
	if scr := a.Render(); !strings.Contains(scr, "[ ] range 1m") || !strings.Contains(scr, "Idle share 1m") {
		t.Errorf("the footer does not name the range:\n%s", scr)
	}
	var nodeRanges []string
	for _, q := range src.requests() {
		if q.Node != "" && !slices.Contains(nodeRanges, q.Range) {
			nodeRanges = append(nodeRanges, q.Range)
		}
	}
	if strings.Join(nodeRanges, " ") != "15m 1h 1m" {
		t.Errorf("node history fetched for %v, want 15m 1h 1m", nodeRanges)
	}
}

// waitReq waits until the program asked src for q.
func waitReq(t *testing.T, src *fakeSource, q HistoryRequest) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(src.requests(), q) {
		if time.Now().After(deadline) {
			t.Fatalf("no request %+v; got %+v", q, src.requests())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The Job view: enter on a job opens it, with its residency and its nodes;
// esc goes back to the list.
func TestFlowJobView(t *testing.T) {
	tm, _ := newFlowModel(t)
	waitOut(t, tm, "Singapore")
	tm.Type("4")
	waitOut(t, tm, "infer-sea")
	press(tm, tea.KeyEnter)
	waitOut(t, tm, "RESIDENCY VIOLATION")
	tm.Type(":")
	tm.Type("node dxb-h100-01") // one of the job's nodes, by hostname
	press(tm, tea.KeyEnter)
	waitOut(t, tm, "Processes")
	press(tm, tea.KeyEscape) // back to the job
	press(tm, tea.KeyEscape) // back to the jobs
	a := final(t, tm)
	if a.job.id != "ft-cn-42" {
		t.Errorf("job view opened %q, want ft-cn-42", a.job.id)
	}
	if a.active != pageJobs {
		t.Errorf("esc from the Job view: page %d, want Jobs (%d)", a.active, pageJobs)
	}
}
