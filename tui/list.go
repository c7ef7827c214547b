package tui

import (
	"math"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// page is one view of the TUI: a component the root model sizes, feeds and
// draws.
type page interface {
	Title() string
	SetSize(w, h int)
	SetData(s *Snapshot)
	// Update handles the keys and mouse events the root does not.
	Update(msg tea.Msg, km *KeyMap) tea.Cmd
	// View draws the page into at most h lines of w cells.
	View() string
}

// filterable pages answer to "/".
type filterable interface {
	SetFilter(q string)
	Filter() string
	Counts() (shown, total int)
}

// sortable pages answer to "s" and "S".
type sortable interface {
	CycleSort()
	ReverseSort()
}

// sortKey orders rows by one column.
type sortKey[R any] struct {
	col  int
	desc bool // natural direction is descending (busiest, costliest first)
	cmp  func(a, b *R) int
	wire string // the aggregator's name of this order (wire.Sort*), for paged lists
}

// listPage is a filterable, sortable table over rows of type R. The sorted,
// filtered index is rebuilt when data, filter or sort change — never in
// View, which only formats the visible rows.
type listPage[R any] struct {
	title   string
	t       table
	all     []R
	idx     []int
	filter  string
	sorts   []sortKey[R]
	sortI   int
	desc    bool
	get     func(*Snapshot) []R
	id      func(*R) string
	search  func(*R) string
	cells   func(*R, []cell) []cell
	enter   func(*R) tea.Cmd
	headerH int                      // lines above the table
	header  func(b *strings.Builder) // draws headerH lines
	// extraH, when set, is how many more lines the header needs for the
	// current data (the Fleet view's residency banner).
	extraH func() int
	// footer, when set, draws below a table that takes only the lines its
	// rows need, in the lines left (the Fleet view's panels).
	footer func(b *strings.Builder, lines int)
	// onHistory, when set, is called when the history on screen changed
	// (fetched, or another range picked).
	onHistory func()
	w, h      int

	// paged reports, for a snapshot whose rows the aggregators page, where
	// its rows start and how many there are in all. Such a list does not
	// filter or sort itself: it asks for a page (query) and shows what
	// comes, a placeholder for rows still on their way.
	paged   func(*Snapshot) (offset, total, known int, ok bool)
	remote  bool
	pageOff int
	total   int
	known   int // rows in all, whatever the filter (paged)
}

// query is the page of rows this list wants from the aggregators: its
// filter and order, and the rows of its window.
func (p *listPage[R]) query() (sort string, desc bool, filter string, offset, limit int) {
	if len(p.sorts) > 0 {
		sort = p.sorts[p.sortI].wire
	}
	return sort, p.desc, p.filter, p.t.offset, max(p.t.height, 1)
}

func (p *listPage[R]) Title() string { return p.title }

func (p *listPage[R]) SetSize(w, h int) {
	p.w, p.h = w, h
	p.layout()
}

// headerLines is the header's height for the current data.
func (p *listPage[R]) headerLines() int {
	if p.extraH != nil {
		return p.headerH + p.extraH()
	}
	return p.headerH
}

// layout sizes the table: everything below the header, or with a footer
// only what its rows need.
func (p *listPage[R]) layout() {
	th := p.h - p.headerLines()
	if p.footer != nil {
		th = min(th, max(len(p.idx), 1)+1)
	}
	p.t.setSize(p.w, max(th, 1))
}

func (p *listPage[R]) SetData(s *Snapshot) {
	keep := p.current()
	p.all = p.get(s)
	p.remote = false
	if p.paged != nil {
		p.pageOff, p.total, p.known, p.remote = p.paged(s)
	}
	p.rebuild(keep)
	if p.footer != nil || p.extraH != nil {
		p.layout()
		p.t.clamp()
	}
}

// rebuild filters and sorts, keeping the row with id keep under the cursor.
func (p *listPage[R]) rebuild(keep string) {
	p.idx = p.idx[:0]
	if p.remote { // the aggregators filtered and sorted
		for i := range p.all {
			p.idx = append(p.idx, i)
		}
		if len(p.sorts) > 0 {
			k := p.sorts[p.sortI]
			p.t.sortCol, p.t.desc = k.col, k.desc != p.desc
		}
		p.t.setRows(p.total)
		return
	}
	q := strings.ToLower(p.filter)
	for i := range p.all {
		if q == "" || strings.Contains(p.search(&p.all[i]), q) {
			p.idx = append(p.idx, i)
		}
	}
	if len(p.sorts) > 0 {
		k := p.sorts[p.sortI]
		desc := k.desc != p.desc
		slices.SortStableFunc(p.idx, func(a, b int) int {
			c := k.cmp(&p.all[a], &p.all[b])
			if desc {
				c = -c
			}
			return c
		})
		p.t.sortCol = k.col
		p.t.desc = desc
	}
	p.t.setRows(len(p.idx))
	if keep != "" && p.id != nil {
		for pos, i := range p.idx {
			if p.id(&p.all[i]) == keep {
				p.t.cursor = pos
				p.t.clamp()
				break
			}
		}
	}
}

// currentRow is the row under the cursor, or nil.
func (p *listPage[R]) currentRow() *R {
	if p.t.cursor < len(p.idx) {
		return &p.all[p.idx[p.t.cursor]]
	}
	return nil
}

func (p *listPage[R]) current() string {
	if r := p.at(p.t.cursor); r != nil && p.id != nil {
		return p.id(r)
	}
	return ""
}

// at returns the row at display position i, nil when it is not here (yet).
func (p *listPage[R]) at(i int) *R {
	if p.remote {
		i -= p.pageOff
	}
	if i < 0 || i >= len(p.idx) {
		return nil
	}
	return &p.all[p.idx[i]]
}

func (p *listPage[R]) SetFilter(q string) {
	if p.remote && q != p.filter {
		p.t.cursor, p.t.offset = 0, 0 // a new list comes
	}
	p.filter = q
	keep := p.current()
	p.rebuild(keep)
	if p.extraH != nil { // the header may depend on the filter (a region's graphs)
		p.layout()
		p.t.clamp()
	}
}

func (p *listPage[R]) Filter() string { return p.filter }

func (p *listPage[R]) Counts() (int, int) {
	if p.remote {
		return p.total, p.known
	}
	return len(p.idx), len(p.all)
}

func (p *listPage[R]) CycleSort() {
	if len(p.sorts) == 0 {
		return
	}
	p.sortI = (p.sortI + 1) % len(p.sorts)
	p.desc = false
	if p.remote {
		p.t.cursor, p.t.offset = 0, 0
	}
	p.rebuild(p.current())
}

func (p *listPage[R]) ReverseSort() {
	p.desc = !p.desc
	if p.remote {
		p.t.cursor, p.t.offset = 0, 0
	}
	p.rebuild(p.current())
}

func (p *listPage[R]) Update(msg tea.Msg, km *KeyMap) tea.Cmd {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		switch {
		case key.Matches(msg, km.Up):
			p.t.move(-1)
		case key.Matches(msg, km.Down):
			p.t.move(1)
		case key.Matches(msg, km.PageUp):
			p.t.move(-max(p.t.height-1, 1))
		case key.Matches(msg, km.PageDown):
			p.t.move(max(p.t.height-1, 1))
		case key.Matches(msg, km.Top):
			p.t.move(-p.t.n)
		case key.Matches(msg, km.Bottom):
			p.t.move(p.t.n)
		case key.Matches(msg, km.Enter):
			if r := p.at(p.t.cursor); p.enter != nil && r != nil {
				return p.enter(r)
			}
		}
	case tea.MouseWheelMsg:
		switch msg.Button {
		case tea.MouseWheelUp:
			p.t.scroll(-3)
		case tea.MouseWheelDown:
			p.t.scroll(3)
		}
	}
	return nil
}

func (p *listPage[R]) View() string {
	var b strings.Builder
	if p.header != nil {
		p.header(&b)
	}
	p.t.view(&b, func(i int, cells []cell) []cell {
		if r := p.at(i); r != nil {
			return p.cells(r, cells)
		}
		for k := range p.t.cols { // on its way from the aggregator
			c := cell{text: "-", ratio: math.NaN()}
			if k == 0 {
				c.text = "…"
			}
			cells = append(cells, c)
		}
		return cells
	})
	shown := min(p.t.n-p.t.offset, p.t.height)
	if p.t.n == 0 {
		b.WriteString("\n")
		shown = 1
		if len(p.all) == 0 && (!p.remote || p.filter == "") {
			b.WriteString(p.t.st.Dim.Render("  nothing to show yet"))
		} else {
			b.WriteString(p.t.st.Dim.Render("  no row matches the filter " + `"` + p.filter + `"`))
		}
	}
	if p.footer != nil {
		b.WriteString("\n")
		p.footer(&b, p.h-p.headerLines()-1-shown)
	}
	return b.String()
}

// HistoryChanged lays the page out again for new history.
func (p *listPage[R]) HistoryChanged() {
	if p.onHistory != nil {
		p.onHistory()
		p.layout()
		p.t.clamp()
	}
}

// Selected is the id of the row under the cursor ("" when none), for y.
func (p *listPage[R]) Selected() string { return p.current() }

// Enterable reports whether enter opens something from this list.
func (p *listPage[R]) Enterable() bool { return p.enter != nil && p.at(p.t.cursor) != nil }
