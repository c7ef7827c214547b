package tui

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/fleettop/fleettop/wire"
)

// fakeSource hands the program fixed snapshots and history.
type fakeSource struct {
	ch      chan *Snapshot
	mu      sync.Mutex
	history []HistoryRequest // RangeHistory calls
	marks   []string         // MarkAlert calls: "action id"
}

var _ Source = (*fakeSource)(nil)

func (f *fakeSource) Snapshots() <-chan *Snapshot { return f.ch }

func (f *fakeSource) Subscribe(wire.WatchSubscribe) {}

func (f *fakeSource) RangeHistory(_ context.Context, _ int, q HistoryRequest) (*wire.HistoryResponse, error) {
	f.mu.Lock()
	f.history = append(f.history, q)
	f.mu.Unlock()
	return fakeHistory(q, fixtureSnapshot()), nil
}

func (f *fakeSource) requests() []HistoryRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.history)
}

func (f *fakeSource) MarkAlert(_ context.Context, id, action string, _ time.Duration) error {
	f.marks = append(f.marks, action+" "+id)
	return nil
}

func newFlowModel(t *testing.T) (*teatest.TestModel, *App) {
	src := &fakeSource{ch: make(chan *Snapshot, 1)}
	src.ch <- fixtureSnapshot()
	app := NewApp(Options{plain: true, Clock: func() time.Time { return fixedNow }}, src)
	tm := teatest.NewTestModel(t, app, teatest.WithInitialTermSize(120, 40))
	return tm, app
}

func waitOut(t *testing.T, tm *teatest.TestModel, what string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(what)) },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

func press(tm *teatest.TestModel, code rune) {
	tm.Send(tea.KeyPressMsg{Code: code})
}

func final(t *testing.T, tm *teatest.TestModel) *App {
	t.Helper()
	tm.Type("q")
	return tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*App)
}

func TestFlowSwitchViews(t *testing.T) {
	tm, _ := newFlowModel(t)
	waitOut(t, tm, "Singapore")
	tm.Type("2")
	waitOut(t, tm, "sin-h100-01")
	press(tm, tea.KeyTab)
	tm.Type("6")
	waitOut(t, tm, "fallen off the bus")
	press(tm, tea.KeyEscape) // back to where we came from (Node, via tab)
	a := final(t, tm)
	if a.active != pageNode {
		t.Errorf("after 2, tab, 6, esc: page %d, want Node (%d)", a.active, pageNode)
	}
}

func TestFlowDrillDownFilterSortBack(t *testing.T) {
	tm, _ := newFlowModel(t)
	waitOut(t, tm, "Singapore")
	// Fleet → cursor to Johor → enter: Nodes filtered by the region.
	press(tm, tea.KeyDown)
	press(tm, tea.KeyDown)
	press(tm, tea.KeyEnter)
	waitOut(t, tm, "jhb-h20-01")
	// Sort by hostname, then drill into the first row.
	tm.Type("s")
	press(tm, tea.KeyEnter)
	waitOut(t, tm, "Processes")
	press(tm, tea.KeyEscape)
	// Replace the filter by typing one.
	tm.Type("/")
	press(tm, tea.KeyBackspace)
	press(tm, tea.KeyBackspace)
	press(tm, tea.KeyBackspace)
	press(tm, tea.KeyBackspace)
	press(tm, tea.KeyBackspace)
	tm.Type("dubai")
	press(tm, tea.KeyEnter)
	waitOut(t, tm, "dxb-h100-02")
	a := final(t, tm)
	nodes := a.pages[pageNodes].(*listPage[*NodeRow])
	if a.active != pageNodes || nodes.Filter() != "dubai" {
		t.Fatalf("page %d filter %q, want Nodes filtered by dubai", a.active, nodes.Filter())
	}
	if n, tot := nodes.Counts(); n != 2 || tot != 8 {
		t.Errorf("filter shows %d of %d, want 2 of 8", n, tot)
	}
	if nodes.t.sortCol != 0 {
		t.Errorf("sort column %d, want 0 (Node)", nodes.t.sortCol)
	}
	if got := a.node.id; got != "my-j2" {
		t.Errorf("drilled into %q, want my-j2 (jhb-a100-01, first by hostname)", got)
	}
}

func TestFlowHelpAndQuit(t *testing.T) {
	tm, _ := newFlowModel(t)
	waitOut(t, tm, "Singapore")
	tm.Type("?")
	waitOut(t, tm, "reverse sort")
	a := final(t, tm)
	if !a.showHelp {
		t.Error("help not shown")
	}
}

func TestFlowNodeHistoryFetched(t *testing.T) {
	src := &fakeSource{ch: make(chan *Snapshot, 1)}
	src.ch <- fixtureSnapshot()
	app := NewApp(Options{plain: true, Clock: func() time.Time { return fixedNow }}, src)
	tm := teatest.NewTestModel(t, app, teatest.WithInitialTermSize(160, 40))
	waitOut(t, tm, "Singapore")
	tm.Type("3")
	waitOut(t, tm, "Utilisation 15m")
	final(t, tm)
	if r := src.requests(); len(r) == 0 || r[len(r)-1].Node == "" {
		t.Errorf("no node history fetched for the Node view: %+v", r)
	}
}

func TestFlowCommandBarJumps(t *testing.T) {
	tm, _ := newFlowModel(t)
	waitOut(t, tm, "Singapore")
	// :node with tab completion of a hostname prefix opens that node.
	tm.Type(":")
	waitOut(t, tm, "tab completes")
	tm.Type("node jhb-a1")
	press(tm, tea.KeyTab)
	press(tm, tea.KeyEnter)
	waitOut(t, tm, "Processes")
	// :job with several nodes lists them; an unknown verb says so.
	tm.Type(":")
	tm.Type("frobnicate")
	press(tm, tea.KeyEnter)
	waitOut(t, tm, "unknown command :frobnicate")
	a := final(t, tm)
	if a.active != pageNode || a.node.id != "my-j2" {
		t.Errorf("after :node jhb-a1<tab>: page %d node %q, want Node my-j2 (jhb-a100-01)", a.active, a.node.id)
	}
}

func TestRunCommand(t *testing.T) {
	s := fixtureSnapshot()
	for _, c := range []struct {
		line    string
		want    navMsg
		problem string
	}{
		{"node jhb-a100-01", navMsg{page: pageNode, node: "my-j2"}, ""},
		{"node my-j2", navMsg{page: pageNode, node: "my-j2"}, ""},
		{"n not-here-yet", navMsg{page: pageNode, node: "not-here-yet"}, ""},
		{"region Johor", navMsg{page: pageNodes, filter: "johor"}, ""},
		{"job ft-cn-42", navMsg{page: pageJob, job: "ft-cn-42"}, ""},
		{"job ft-cn", navMsg{page: pageJobs, filter: "ft-cn"}, ""},
		{"alerts", navMsg{page: pageAlerts}, ""},
		{"cost", navMsg{page: pageCost}, ""},
		{"node", navMsg{}, ":node needs a node id or hostname (tab completes)"},
		{"bogus", navMsg{}, "unknown command :bogus (try :node, :job, :region, :alerts, :cost)"},
	} {
		cmd, problem := runCommand(c.line, s)
		if problem != c.problem {
			t.Errorf("%q: problem %q, want %q", c.line, problem, c.problem)
		}
		if c.problem != "" {
			continue
		}
		if cmd == nil {
			t.Errorf("%q: no command", c.line)
			continue
		}
		if got, _ := cmd().(navMsg); got != c.want {
			t.Errorf("%q: %+v, want %+v", c.line, got, c.want)
		}
	}
}

func TestMouseOffByDefault(t *testing.T) {
	if v := newTestApp(80, 24).View(); v.MouseMode != tea.MouseModeNone {
		t.Errorf("mouse mode %v by default, want none (text selectable over SSH)", v.MouseMode)
	}
	a := NewApp(Options{plain: true, Mouse: true}, nil)
	if v := a.View(); v.MouseMode != tea.MouseModeCellMotion {
		t.Errorf("mouse mode %v with Mouse, want cell motion", v.MouseMode)
	}
}

func TestFlowAcknowledgeAlert(t *testing.T) {
	src := &fakeSource{ch: make(chan *Snapshot, 1)}
	src.ch <- fixtureSnapshot()
	app := NewApp(Options{plain: true, Clock: func() time.Time { return fixedNow }}, src)
	tm := teatest.NewTestModel(t, app, teatest.WithInitialTermSize(120, 40))
	waitOut(t, tm, "Singapore")
	tm.Type("6")
	waitOut(t, tm, "a acknowledge")
	tm.Type("a")
	waitOut(t, tm, "acknowledged xid/")
	tm.Type("x")
	waitOut(t, tm, "silenced for 1h")
	final(t, tm)
	if len(src.marks) != 2 || !strings.HasPrefix(src.marks[0], "ack xid/") || !strings.HasPrefix(src.marks[1], "silence xid/") {
		t.Errorf("marks sent = %q, want an ack and a silence of the XID alert", src.marks)
	}
}
