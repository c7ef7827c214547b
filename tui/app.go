// Package tui is fleettop's terminal UI: a Bubble Tea v2 program that shows
// a fleet merged from one or more aggregators' watch streams — utilisation,
// cost and where every job runs — and stays calm over slow SSH links: it
// redraws from data at most once a second, draws only visible rows, and
// changes only what changed.
package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/fleettop/fleettop/internal/opt"
	"github.com/fleettop/fleettop/wire"
)

// Options configures Run.
type Options struct {
	Aggregators []Endpoint
	// Currency is the display currency ("" = the first aggregator's). The
	// TUI converts nothing: each aggregator sends money in its display
	// currency, and amounts in another currency are left out of the totals
	// and flagged.
	Currency string
	NoColor  bool
	// Mouse captures the mouse (wheel scrolling). Off by default, so that
	// text such as a node id can be selected in the terminal over SSH.
	Mouse bool
	// IdleThreshold is the utilisation below which a GPU counts as idle
	// (default 0.05).
	IdleThreshold float64
	// Refresh is the redraw period for data (default 1s).
	Refresh time.Duration
	Logger  *slog.Logger
	// Input and Output default to the terminal.
	Input  io.Reader
	Output io.Writer
	// Hint is shown on the status line until the first key (the demo's
	// first-run help).
	Hint string
	// Clock defaults to time.Now.
	Clock func() time.Time

	plain bool // tests: no escape codes at all
}

func (o Options) withDefaults() Options {
	opt.Positive(&o.IdleThreshold, 0.05)
	opt.Positive(&o.Refresh, time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// Run shows the fleet of o.Aggregators until the user quits or ctx ends.
func Run(ctx context.Context, o Options) error {
	o = o.withDefaults()
	if len(o.Aggregators) == 0 {
		return errors.New("no aggregator to watch: pass --aggregator URL")
	}
	for _, a := range o.Aggregators {
		if _, err := endpointURL(a.URL, "", true); err != nil {
			return err
		}
	}
	src := NewWatchSource(o)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src.Start(sctx)
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer ccancel()
		_ = src.Close(cctx)
	}()
	popts := []tea.ProgramOption{tea.WithContext(ctx)}
	if o.Input != nil {
		popts = append(popts, tea.WithInput(o.Input))
	}
	if o.Output != nil {
		popts = append(popts, tea.WithOutput(o.Output))
	}
	_, err := tea.NewProgram(NewApp(o, src), popts...).Run()
	if err != nil && ctx.Err() != nil && errors.Is(err, tea.ErrProgramKilled) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("run tui: %w", err)
	}
	return nil
}

// Messages into the program.
type (
	snapshotMsg  struct{ s *Snapshot }
	sourceEndMsg struct{}
	tickMsg      time.Time
	markMsg      struct {
		what string
		err  error
	}
)

// App is the root model: it owns the pages and the chrome (tabs, link
// state, filter line, key help).
type App struct {
	o         Options
	sh        *shared
	km        KeyMap
	help      help.Model
	src       Source
	pages     [numPages]page
	node      *nodePage
	job       *jobPage
	active    int
	stack     []int
	w, h      int
	filtering bool
	input     textinput.Model
	// The command bar (":").
	commanding bool
	cmdline    textinput.Model
	problem    string // the last command's problem, until the next key
	showHelp   bool
	sub        wire.WatchSubscribe // last sent to the source
	subSent    bool
}

// NewApp builds the root model reading from src.
func NewApp(o Options, src Source) *App {
	o = o.withDefaults()
	mode := StyleColor
	if o.NoColor || os.Getenv("NO_COLOR") != "" {
		mode = StyleNoColor
	}
	if o.plain {
		mode = StylePlain
	}
	st := NewStyles(mode)
	a := &App{o: o, sh: &shared{st: st, now: o.Clock(), hist: newHistState()}, km: DefaultKeyMap(), src: src, w: 80, h: 24}
	a.help = help.New()
	a.help.Styles = st.Help
	a.node = newNodePage(a.sh)
	a.job = newJobPage(a.sh)
	a.pages = [numPages]page{newFleetPage(a.sh), newNodesPage(a.sh), a.node, newJobsPage(a.sh), newCostPage(a.sh), newAlertsPage(a.sh), a.job}
	a.problem = o.Hint
	a.input = textinput.New()
	a.input.Prompt = "/"
	a.input.Placeholder = "filter"
	a.cmdline = textinput.New()
	a.cmdline.Prompt = ":"
	a.cmdline.Placeholder = "node NAME · job NAME · region NAME · alerts · cost   (tab completes)"
	a.cmdline.ShowSuggestions = true
	a.resize()
	return a
}

// Init implements tea.Model.
func (a *App) Init() tea.Cmd {
	return tea.Batch(a.waitSnapshot(), a.tick())
}

func (a *App) waitSnapshot() tea.Cmd {
	if a.src == nil {
		return nil
	}
	ch := a.src.Snapshots()
	return func() tea.Msg {
		s, ok := <-ch
		if !ok {
			return sourceEndMsg{}
		}
		return snapshotMsg{s}
	}
}

func (a *App) tick() tea.Cmd {
	return tea.Tick(a.o.Refresh, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// SetSnapshot feeds a snapshot to every page (the program does this on
// snapshotMsg; tests call it directly).
func (a *App) SetSnapshot(s *Snapshot) {
	a.sh.snap = s
	for _, p := range a.pages {
		p.SetData(s)
	}
}

func (a *App) bodyHeight() int { return max(a.h-3, 1) }

func (a *App) resize() {
	a.help.SetWidth(a.w)
	a.input.SetWidth(max(a.w-20, 10))
	a.cmdline.SetWidth(max(a.w-4, 10))
	for _, p := range a.pages {
		p.SetSize(a.w, a.bodyHeight())
	}
}

// Update implements tea.Model. It never blocks: I/O happens in commands.
func (a *App) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	m, cmd := a.update(msg)
	a.syncSubscription()
	return m, cmd
}

// subscription is what the aggregators should send for what is on screen:
// the node list's window (its filter, order and visible rows), the open
// node, the job list's window while it shows, the open job and its nodes,
// and on the Fleet view the jobs that break residency.
func (a *App) subscription() wire.WatchSubscribe {
	sub := wire.WatchSubscribe{Version: wire.WatchVersion}
	if np, ok := a.pages[pageNodes].(*listPage[*NodeRow]); ok {
		sort, desc, filter, off, lim := np.query()
		sub.Nodes = wire.NodeQuery{Sort: sort, Desc: desc, Filter: filter, Offset: off, Limit: lim}
	}
	if a.active == pageNode {
		sub.Node = a.node.id
	}
	switch a.active {
	case pageJobs:
		if jp, ok := a.pages[pageJobs].(*listPage[JobRow]); ok {
			sort, desc, filter, off, lim := jp.query()
			sub.Jobs = &wire.JobQuery{Sort: sort, Desc: desc, Filter: filter, Offset: off, Limit: lim}
		}
	case pageJob:
		// The job, and the nodes it runs on (their rows match its id); the
		// node list is not on screen meanwhile.
		if id := a.job.id; id != "" {
			sub.Jobs = &wire.JobQuery{Filter: id, Limit: 50}
			sub.Nodes = wire.NodeQuery{Filter: id, Limit: wire.MaxPageRows}
		}
	case pageFleet:
		// The residency banner names the violating jobs' class and team.
		sub.Jobs = &wire.JobQuery{Filter: "violation", Limit: 50}
	}
	return sub
}

// syncSubscription tells the source when what is on screen changed.
func (a *App) syncSubscription() {
	if a.src == nil {
		return
	}
	sub := a.subscription()
	same := sub.Nodes == a.sub.Nodes && sub.Node == a.sub.Node && (sub.Jobs == nil) == (a.sub.Jobs == nil) &&
		(sub.Jobs == nil || *sub.Jobs == *a.sub.Jobs)
	if same && a.subSent {
		return
	}
	a.sub, a.subSent = sub, true
	a.src.Subscribe(sub)
}

func (a *App) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		a.w, a.h = max(msg.Width, 20), max(msg.Height, 5)
		a.resize()
		return a, nil
	case snapshotMsg:
		a.sh.now = a.o.Clock()
		a.SetSnapshot(msg.s)
		return a, a.waitSnapshot()
	case sourceEndMsg:
		return a, nil
	case tickMsg:
		a.sh.now = a.o.Clock()
		return a, tea.Batch(a.tick(), a.maybeFetchHistory())
	case histMsg:
		a.setHistory(msg)
		return a, nil
	case markMsg:
		a.problem = msg.what
		if msg.err != nil {
			a.problem = msg.err.Error()
		}
		return a, nil
	case navMsg:
		a.open(msg.page)
		if msg.job != "" {
			a.job.Show(msg.job)
		}
		if msg.node != "" {
			a.node.Show(msg.node)
		}
		if f, ok := a.pages[msg.page].(filterable); ok && msg.filter != "" {
			f.SetFilter(msg.filter)
		}
		return a, a.maybeFetchHistory()
	case tea.MouseWheelMsg:
		return a, a.pages[a.active].Update(msg, &a.km)
	case tea.KeyPressMsg:
		// A key may open a page that graphs history: fetch it at once.
		return a, tea.Batch(a.key(msg), a.maybeFetchHistory())
	}
	if a.filtering {
		var cmd tea.Cmd
		a.input, cmd = a.input.Update(msg)
		return a, cmd
	}
	if a.commanding {
		var cmd tea.Cmd
		a.cmdline, cmd = a.cmdline.Update(msg)
		return a, cmd
	}
	return a, nil
}

func (a *App) key(msg tea.KeyPressMsg) tea.Cmd {
	km := &a.km
	if key.Matches(msg, km.Interrupt) {
		return tea.Quit
	}
	a.problem = ""
	if a.commanding {
		return a.commandKey(msg)
	}
	if a.filtering {
		f, _ := a.pages[a.active].(filterable)
		switch {
		case key.Matches(msg, km.Cancel):
			a.filtering = false
			a.input.Blur()
			if f != nil {
				f.SetFilter("")
			}
			return nil
		case key.Matches(msg, km.Accept):
			a.filtering = false
			a.input.Blur()
			return nil
		}
		var cmd tea.Cmd
		a.input, cmd = a.input.Update(msg)
		if f != nil {
			f.SetFilter(a.input.Value())
		}
		return cmd
	}
	if a.showHelp {
		if key.Matches(msg, km.Quit) {
			return tea.Quit
		}
		a.showHelp = false
		return nil
	}
	switch {
	case key.Matches(msg, km.Quit):
		return tea.Quit
	case key.Matches(msg, km.Help):
		a.showHelp = true
	case key.Matches(msg, km.Command):
		a.commanding = true
		a.cmdline.SetValue("")
		a.cmdline.SetSuggestions(commandSuggestions(a.sh.snap))
		return a.cmdline.Focus()
	case a.active == pageAlerts && (key.Matches(msg, km.Ack) || key.Matches(msg, km.Silence)):
		return a.markAlert(key.Matches(msg, km.Ack))
	case a.graphsRange() && (key.Matches(msg, km.RangeDown) || key.Matches(msg, km.RangeUp)):
		d := 1
		if key.Matches(msg, km.RangeDown) {
			d = -1
		}
		a.sh.hist.shift(d)
		a.historyChanged()
		a.problem = "history over " + a.sh.hist.Range().Name + " (" + rangeNames() + ")"
		return a.maybeFetchHistory()
	case key.Matches(msg, km.Copy):
		if id := a.selectedID(); id != "" {
			a.problem = "copied " + id
			return tea.SetClipboard(id)
		}
	case km.page(msg) >= 0:
		a.open(km.page(msg))
	case key.Matches(msg, km.NextView):
		a.open((a.active + 1) % numPages)
	case key.Matches(msg, km.PrevView):
		a.open((a.active + numPages - 1) % numPages)
	case key.Matches(msg, km.Filter):
		if f, ok := a.pages[a.active].(filterable); ok {
			a.filtering = true
			a.input.SetValue(f.Filter())
			a.input.CursorEnd()
			return a.input.Focus()
		}
	case key.Matches(msg, km.Sort):
		if s, ok := a.pages[a.active].(sortable); ok {
			s.CycleSort()
		}
	case key.Matches(msg, km.Reverse):
		if s, ok := a.pages[a.active].(sortable); ok {
			s.ReverseSort()
		}
	case key.Matches(msg, km.Back):
		if f, ok := a.pages[a.active].(filterable); ok && f.Filter() != "" {
			f.SetFilter("")
			return nil
		}
		if n := len(a.stack); n > 0 {
			a.active = a.stack[n-1]
			a.stack = a.stack[:n-1]
		}
	default:
		return a.pages[a.active].Update(msg, km)
	}
	return nil
}

// open switches to page p, remembering the current one for esc.
func (a *App) open(p int) {
	if p == a.active {
		return
	}
	a.stack = append(a.stack, a.active)
	if len(a.stack) > 32 {
		a.stack = a.stack[1:]
	}
	a.active = p
}

// View implements tea.Model.
func (a *App) View() tea.View {
	v := tea.NewView(a.Render())
	v.AltScreen = true
	if a.o.Mouse {
		v.MouseMode = tea.MouseModeCellMotion
	}
	v.WindowTitle = "fleettop"
	return v
}

// Render draws the whole screen as a string of exactly a.h lines.
func (a *App) Render() string {
	st := a.sh.st
	var b strings.Builder
	b.Grow(a.w * a.h * 2)

	// Tabs and link state.
	var tabs strings.Builder
	tabs.WriteString(st.Brand.Render("fleettop") + " ")
	for i, p := range a.pages {
		t := " " + strconv.Itoa(i+1) + " " + p.Title() + " "
		if i == a.active {
			tabs.WriteString(st.TabActive.Render(t))
		} else {
			tabs.WriteString(st.TabInactive.Render(t))
		}
	}
	right := a.linkState()
	tw, rw := cellWidth(tabs.String()), cellWidth(right)
	if tw+1+rw <= a.w {
		b.WriteString(tabs.String() + strings.Repeat(" ", a.w-tw-rw) + right)
	} else {
		b.WriteString(Fit(tabs.String(), a.w))
	}
	b.WriteByte('\n')

	// Body.
	bh := a.bodyHeight()
	var body string
	switch {
	case a.showHelp:
		body = a.helpView()
	case a.sh.snap == nil:
		body = st.Dim.Render(a.waitingText())
	default:
		body = a.pages[a.active].View()
	}
	lines := strings.Split(body, "\n")
	for i := range bh {
		if i < len(lines) {
			b.WriteString(Fit(lines[i], a.w))
		} else {
			b.WriteString(strings.Repeat(" ", a.w))
		}
		b.WriteByte('\n')
	}

	// Status line: the filter being typed, the filter in force, or a link problem.
	b.WriteString(Fit(a.statusLine(), a.w))
	b.WriteByte('\n')
	b.WriteString(Fit(a.help.ShortHelpView(a.footerKeys()), a.w))
	return b.String()
}

func (a *App) waitingText() string {
	var urls []string
	for _, e := range a.o.Aggregators {
		urls = append(urls, e.URL)
	}
	if len(urls) == 0 {
		return "Waiting for data…"
	}
	return "Connecting to " + strings.Join(urls, ", ") + " …"
}

// linkState is the right side of the tab line: how many aggregators are
// live and, only when it matters, how old the data is.
func (a *App) linkState() string {
	st := a.sh.st
	s := a.sh.snap
	if s == nil {
		return st.Warn.Render("◌ connecting")
	}
	live := 0
	for _, c := range s.Conns {
		if c.State == ConnLive {
			live++
		}
	}
	var out string
	switch {
	case live == len(s.Conns) && len(s.Conns) == 1:
		out = st.OK.Render("● live")
	case live == len(s.Conns):
		out = st.OK.Render("● " + strconv.Itoa(live) + "/" + strconv.Itoa(len(s.Conns)) + " live")
	case live == 0:
		out = st.Crit.Render("✕ disconnected")
	default:
		out = st.Warn.Render("● " + strconv.Itoa(live) + "/" + strconv.Itoa(len(s.Conns)) + " live")
	}
	if last := s.LastData(); !last.IsZero() {
		if age := a.sh.now.Sub(last); age > 3*a.o.Refresh {
			out += " " + st.Warn.Render("STALE "+Duration(age))
		}
	}
	return out
}

func (a *App) statusLine() string {
	st := a.sh.st
	if a.filtering {
		return a.input.View()
	}
	if a.commanding {
		return a.cmdline.View()
	}
	if a.problem != "" {
		return st.Warn.Render(a.problem)
	}
	if f, ok := a.pages[a.active].(filterable); ok && f.Filter() != "" {
		n, tot := f.Counts()
		return st.Warn.Render("filter “"+f.Filter()+"”") + st.Dim.Render(" "+strconv.Itoa(n)+" of "+strconv.Itoa(tot)+" · esc clears")
	}
	if s := a.sh.snap; s != nil {
		var down []string
		for _, c := range s.Conns {
			if c.State != ConnLive {
				d := c.Name + " " + c.State.String()
				if c.Err != "" {
					d += ": " + c.Err
				}
				down = append(down, d)
			}
		}
		if len(down) > 0 {
			return st.Warn.Render(strings.Join(down, "; ") + " (retrying)")
		}
	}
	if e := a.historyErr(); e != "" {
		return st.Dim.Render("history unavailable: " + e)
	}
	return st.Dim.Render(a.breadcrumbs())
}

// breadcrumbs says where the current view sits: "Fleet › Singapore ›
// sin-h100-032".
func (a *App) breadcrumbs() string {
	crumbs := []string{"Fleet"}
	switch a.active {
	case pageNode:
		if r := a.sh.snap.Node(a.node.id); r != nil {
			crumbs = append(crumbs, r.View.Region, orDash(r.View.Hostname))
		} else if a.node.id != "" {
			crumbs = append(crumbs, a.node.id)
		}
	case pageFleet:
	default:
		crumbs = append(crumbs, a.pages[a.active].Title())
		if f, ok := a.pages[a.active].(filterable); ok && f.Filter() != "" {
			crumbs = append(crumbs, "“"+f.Filter()+"”")
		}
	}
	return strings.Join(crumbs, " › ")
}

func (a *App) helpView() string {
	st := a.sh.st
	var b strings.Builder
	b.WriteString(st.Section.Render("Keys") + "\n\n")
	b.WriteString(a.help.FullHelpView(a.km.FullHelp()))
	b.WriteString("\n\n" + st.Dim.Render("Views: 1 fleet by region · 2 every node · 3 one node's GPUs · 4 jobs and residency · 5 cost · 6 alerts · 7 one job"))
	b.WriteString("\n" + st.Dim.Render("Press any key to close this help; q to quit."))
	return b.String()
}

// commandKey handles a key while the command bar is open.
func (a *App) commandKey(msg tea.KeyPressMsg) tea.Cmd {
	switch {
	case key.Matches(msg, a.km.Cancel):
		a.commanding = false
		a.cmdline.Blur()
		return nil
	case key.Matches(msg, a.km.Accept):
		a.commanding = false
		a.cmdline.Blur()
		cmd, problem := runCommand(a.cmdline.Value(), a.sh.snap)
		a.problem = problem
		return cmd
	}
	var cmd tea.Cmd
	a.cmdline, cmd = a.cmdline.Update(msg)
	return cmd
}

// silenceFor is how long x silences an alert.
const silenceFor = time.Hour

// markAlert toggles the acknowledgement (ack) or the silence of the alert
// under the cursor on its aggregator.
func (a *App) markAlert(ack bool) tea.Cmd {
	lp, _ := a.pages[pageAlerts].(*listPage[AlertRow])
	if lp == nil || a.src == nil {
		return nil
	}
	al := lp.currentRow()
	if al == nil {
		return nil
	}
	ids, id := al.IDs, al.ID
	if len(ids) > 1 {
		id = strconv.Itoa(len(ids)) + " alerts of " + al.Node
	}
	action, what := "ack", "acknowledged "
	switch {
	case ack && al.Acked:
		action, what = "unack", "no longer acknowledged: "
	case !ack && !al.SilencedUntil.IsZero():
		action, what = "unsilence", "no longer silenced: "
	case !ack:
		action, what = "silence", "silenced for "+Duration(silenceFor)+": "
	}
	src := a.src
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, id := range ids {
			if err := src.MarkAlert(ctx, id, action, silenceFor); err != nil {
				return markMsg{err: err}
			}
		}
		return markMsg{what: what + id + " (shown with the next update)"}
	}
}

// selectedID is the id under the cursor (node, job, region, alert), for y.
func (a *App) selectedID() string {
	if s, ok := a.pages[a.active].(interface{ Selected() string }); ok {
		return s.Selected()
	}
	return ""
}

// footerKeys lists only the keys the current page answers to.
func (a *App) footerKeys() []key.Binding {
	km := &a.km
	p := a.pages[a.active]
	keys := []key.Binding{km.NextView}
	if l, ok := p.(interface{ Enterable() bool }); ok && l.Enterable() {
		keys = append(keys, km.Enter)
	}
	if len(a.stack) > 0 {
		keys = append(keys, km.Back)
	}
	if _, ok := p.(filterable); ok {
		keys = append(keys, km.Filter)
	}
	if _, ok := p.(sortable); ok {
		keys = append(keys, km.Sort)
	}
	keys = append(keys, km.Command)
	if a.selectedID() != "" {
		keys = append(keys, km.Copy)
		if a.active == pageAlerts {
			keys = append(keys, km.Ack, km.Silence)
		}
	}
	keys = append(keys, km.Help, km.Quit)
	if a.graphsRange() { // last: it names the range, which the graphs' titles show too
		r := km.RangeUp
		r.SetHelp("[ ]", "range "+a.sh.hist.Range().Name)
		keys = append(keys, r)
	}
	return keys
}
