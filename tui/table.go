package tui

import (
	"strconv"
	"strings"

	"charm.land/lipgloss/v2"
)

// column describes one table column.
type column struct {
	title string
	width int  // minimum width in cells
	flex  int  // share of the spare width (0: fixed)
	right bool // right-aligned
	drop  int  // 0: always shown; higher numbers are dropped first when narrow
	util  bool // cell is a utilisation bar followed by a percentage
	spark bool // cell is a sparkline of series (ratios 0..1) over the column's width
}

// cell is one rendered cell: plain text (or, for util columns, a ratio) and
// an optional style.
type cell struct {
	text   string
	ratio  float64
	series []float64 // spark columns: oldest first, NaN for a gap
	style  *lipgloss.Style
}

// table is a scrolling table that renders only its visible rows.
type table struct {
	st      *Styles
	cols    []column
	shown   []int // indices of the columns that fit
	widths  []int // width of each shown column
	width   int
	height  int // rows of data that fit (the header line is extra)
	n       int // number of rows
	cursor  int
	offset  int
	sortCol int // column index sorted on; -1 none
	desc    bool
	cells   []cell // scratch, reused per row
}

func newTable(st *Styles, cols []column) table {
	return table{st: st, cols: cols, sortCol: -1}
}

// setSize lays the columns out for w×h cells (h includes the header line).
func (t *table) setSize(w, h int) {
	t.width, t.height = w, max(h-1, 0)
	t.shown = t.shown[:0]
	for i := range t.cols {
		t.shown = append(t.shown, i)
	}
	need := func() int {
		n := 0
		for _, i := range t.shown {
			n += t.cols[i].width + 1
		}
		return n - 1
	}
	for need() > w {
		worst, at := 0, -1
		for k, i := range t.shown {
			if t.cols[i].drop > worst {
				worst, at = t.cols[i].drop, k
			}
		}
		if at < 0 {
			break
		}
		t.shown = append(t.shown[:at], t.shown[at+1:]...)
	}
	t.widths = t.widths[:0]
	flex := 0
	for _, i := range t.shown {
		t.widths = append(t.widths, t.cols[i].width)
		flex += t.cols[i].flex
	}
	if spare := w - need(); spare > 0 && flex > 0 {
		given := 0
		last := -1
		for k, i := range t.shown {
			if f := t.cols[i].flex; f > 0 {
				add := spare * f / flex
				t.widths[k] += add
				given += add
				last = k
			}
		}
		t.widths[last] += spare - given
	}
	t.clamp()
}

func (t *table) setRows(n int) {
	t.n = n
	t.clamp()
}

func (t *table) clamp() {
	if t.cursor >= t.n {
		t.cursor = t.n - 1
	}
	if t.cursor < 0 {
		t.cursor = 0
	}
	if t.offset > t.cursor {
		t.offset = t.cursor
	}
	if t.height > 0 && t.cursor >= t.offset+t.height {
		t.offset = t.cursor - t.height + 1
	}
	if maxOff := max(t.n-t.height, 0); t.offset > maxOff {
		t.offset = maxOff
	}
	if t.offset < 0 {
		t.offset = 0
	}
}

func (t *table) move(d int) {
	t.cursor += d
	t.clamp()
}

// scroll moves the window (mouse wheel) and drags the cursor along.
func (t *table) scroll(d int) {
	t.offset = max(0, min(t.offset+d, max(t.n-t.height, 0)))
	if t.cursor < t.offset {
		t.cursor = t.offset
	}
	if t.height > 0 && t.cursor >= t.offset+t.height {
		t.cursor = t.offset + t.height - 1
	}
	t.clamp()
}

// view renders the header and the visible rows; row fills the cells of the
// i-th row (in display order).
func (t *table) view(b *strings.Builder, row func(i int, cells []cell) []cell) {
	var hb strings.Builder
	for k, i := range t.shown {
		if k > 0 {
			hb.WriteByte(' ')
		}
		title := t.cols[i].title
		if i == t.sortCol {
			if t.desc {
				title += "▼"
			} else {
				title += "▲"
			}
		}
		if t.cols[i].right {
			hb.WriteString(FitRight(title, t.widths[k]))
		} else {
			hb.WriteString(Fit(title, t.widths[k]))
		}
	}
	end := min(t.offset+t.height, t.n)
	head := Fit(hb.String(), t.width)
	if more := scrollHint(t.offset, t.n-end); more != "" && cellWidth(more) < t.width/2 {
		// Rows off screen: say how many, at the right end of the header.
		head = Fit(head, t.width-cellWidth(more)) + more
	}
	b.WriteString(t.st.paint(&t.st.TableHeader, head))
	for r := t.offset; r < end; r++ {
		b.WriteByte('\n')
		t.cells = row(r, t.cells[:0])
		sel := r == t.cursor
		var lb strings.Builder
		for k, i := range t.shown {
			if k > 0 {
				lb.WriteByte(' ')
			}
			var c cell
			if i < len(t.cells) {
				c = t.cells[i]
			}
			w := t.widths[k]
			col := &t.cols[i]
			switch {
			case col.util:
				lb.WriteString(t.utilCell(c, w, sel))
			case col.spark:
				sp := Sparkline(Downsample(c.series, w), 0, 1, w)
				if !sel {
					sp = t.st.paint(&t.st.Spark, sp)
				}
				lb.WriteString(sp)
			case c.style != nil && !sel:
				s := c.text
				if col.right {
					s = FitRight(s, w)
				} else {
					s = Fit(s, w)
				}
				lb.WriteString(t.st.paint(c.style, s))
			case col.right:
				lb.WriteString(FitRight(c.text, w))
			default:
				lb.WriteString(Fit(c.text, w))
			}
		}
		line := lb.String()
		if sel {
			line = t.st.paint(&t.st.Selected, Fit(line, t.width))
		}
		b.WriteString(line)
	}
}

// scrollHint is " 3 above ↑ 12 more ↓" for rows above and below the
// window; "" when every row is on screen.
func scrollHint(above, below int) string {
	s := ""
	if above > 0 {
		s += " " + strconv.Itoa(above) + " above ↑"
	}
	if below > 0 {
		s += " " + strconv.Itoa(below) + " more ↓"
	}
	return s
}

// utilCell draws "████▌    63.2%" in w cells; without a value, "-".
func (t *table) utilCell(c cell, w int, sel bool) string {
	if c.text == "-" || c.ratio != c.ratio {
		return FitRight("-", w)
	}
	pct := Percent(c.ratio)
	bw := w - 7
	if bw < 3 {
		return FitRight(pct, w)
	}
	bar := Bar(c.ratio, bw)
	if !sel {
		bar = t.st.bar(c.ratio, bw)
	}
	return bar + " " + FitRight(pct, 6)
}
