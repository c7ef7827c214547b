package tui

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/fleettop/fleettop/wire"
)

// ---- Cost ----

type costPage struct {
	sh    *shared
	doc   doc
	lines []string
}

func newCostPage(sh *shared) *costPage { return &costPage{sh: sh} }

func (p *costPage) Title() string { return "Cost" }
func (p *costPage) SetSize(w, h int) {
	p.doc.w, p.doc.h = w, h
	p.SetData(p.sh.snap)
}
func (p *costPage) Update(msg tea.Msg, km *KeyMap) tea.Cmd {
	p.doc.update(msg, km)
	return nil
}
func (p *costPage) View() string { return p.doc.window(p.lines) }

// HistoryChanged lays the document out again with the new history.
func (p *costPage) HistoryChanged() { p.SetData(p.sh.snap) }

// SetData lays the cost document out once per snapshot.
func (p *costPage) SetData(s *Snapshot) {
	if s == nil {
		p.lines = nil
		return
	}
	d := &costDoc{st: p.sh.st, w: p.doc.w, cur: s.Currency}
	d.totals(s)
	d.history(&p.sh.hist, s)
	d.breakdowns(s)
	d.idleWaste(s)
	d.smIdle(s)
	d.leases(s)
	p.lines = d.lines
}

// costDoc is the cost document being laid out: lines fitted to the width,
// one section after another.
type costDoc struct {
	st    *Styles
	w     int
	cur   string // the display currency
	lines []string
}

// topRanked is how many nodes a ranked section lists.
const topRanked = 10

func (d *costDoc) add(x string) { d.lines = append(d.lines, Fit(x, d.w)) }

// section starts a section after a blank line.
func (d *costDoc) section(title string) {
	d.add("")
	d.add(d.st.Section.Render(title))
}

// header adds a ranked section's column header, or says, dimmed, why the
// section has no rows.
func (d *costDoc) header(rows int, cols, none string) {
	if rows == 0 {
		d.add(d.st.Dim.Render("  " + none))
	} else {
		d.add(d.st.TableHeader.Render(Fit(cols, d.w)))
	}
}

// more says how many rows a ranked section leaves out.
func (d *costDoc) more(n int) { d.add(d.st.Dim.Render("  … " + strconv.Itoa(n) + " more")) }

// totals is the first line: burn, idle burn, spend and projection.
func (d *costDoc) totals(s *Snapshot) {
	st, cur, sm := d.st, d.cur, &s.Summary
	d.add(st.Label.Render("Burn ") + Money(sm.BurnPerHour.Micros, cur) + "/h   " +
		st.Label.Render("Idle burn ") + Money(sm.IdleBurn.Micros, cur) + "/h   " +
		st.Label.Render("Today ") + Money(sm.SpendToday.Micros, cur) + "   " +
		st.Label.Render("Month-to-date ") + Money(sm.SpendMonth.Micros, cur) + "   " +
		st.Label.Render("Projected ") + Money(sm.ProjectedMonth.Micros, cur))
	if s.Unconverted {
		d.add(st.Warn.Render("* some amounts are in currencies without a rate and are left out"))
	}
}

// history graphs what the money bought over the range picked: utilisation,
// and the share of GPU time paid for and idle.
func (d *costDoc) history(hist *histState, s *Snapshot) {
	st, w := d.st, d.w
	rng := hist.Range().Name
	h, ok := fleetSeries(hist, s.Regions)
	if !ok {
		d.add(st.Dim.Render(Fit("History "+rng, 16) + " loading…  ([ ] picks " + rangeNames() + ")"))
		return
	}
	d.add(graph(st, "Utilisation", rng, h.util, 0, 1, Percent, w))
	d.add(graph(st, "Idle share", rng, h.idle, 0, 1, Percent, w))
	d.add(graph(st, "Power", rng, h.power, 0, math.NaN(), Watts, w))
}

// breakdowns are the cost lines by region, provider, model and team, or,
// when the aggregator sends none, the live burn derived from the nodes.
func (d *costDoc) breakdowns(s *Snapshot) {
	by := map[string][]wire.CostLine{}
	for _, c := range s.Costs {
		by[c.By] = append(by[c.By], c)
	}
	fallback := fallbackCosts(s)
	for _, group := range []string{"region", "provider", "model", "team"} {
		rows := by[group]
		derived := len(rows) == 0
		if derived {
			rows = fallback[group]
		}
		d.section("By " + group + " (" + d.cur + ")")
		d.add(d.st.TableHeader.Render(Fit(Fit(strings.ToUpper(group[:1])+group[1:], 16)+
			"  GPUs     Burn/h     Idle/h      Today      Month  Idle month     Budget", d.w)))
		if len(rows) == 0 {
			d.add(d.st.Dim.Render("  no data"))
		}
		for _, c := range rows {
			d.costLine(c, derived)
		}
	}
}

// costLine is one group's row; a derived row has live burn only, as spend
// needs the cost engine.
func (d *costDoc) costLine(c wire.CostLine, derived bool) {
	budget := "-"
	if c.Budget.Micros != 0 {
		budget = AmountShort(c.Budget.Micros)
	}
	today, month, idleMonth := AmountShort(c.SpendToday.Micros), AmountShort(c.SpendMonth.Micros), AmountShort(c.IdleSpend.Micros)
	if derived {
		today, idleMonth = "-", "-"
		if c.SpendMonth.Micros == 0 {
			month = "-"
		}
	}
	d.add(Fit(c.Group, 16) + " " + FitRight(strconv.Itoa(c.GPUs), 5) + " " +
		FitRight(AmountShort(c.BurnPerHour.Micros), 10) + " " + FitRight(AmountShort(c.IdleBurn.Micros), 10) + " " +
		FitRight(today, 10) + " " + FitRight(month, 10) + " " + FitRight(idleMonth, 11) + " " + FitRight(budget, 10))
}

// idleWaste ranks nodes by what their idle GPUs burn.
func (d *costDoc) idleWaste(s *Snapshot) {
	d.section("Idle waste, ranked (" + d.cur + "/h)")
	idle := make([]*NodeRow, 0, 16)
	idleN := 0
	if s.Paged { // the aggregators rank the whole fleet
		idle = append(idle, s.IdleTop...)
		idleN = s.IdleNodes
	} else {
		for _, n := range s.Nodes {
			if n.IdleBurn > 0 {
				idle = append(idle, n)
			}
		}
		idleN = len(idle)
	}
	slices.SortFunc(idle, cmpIdleBurn)
	d.header(len(idle), "Node             Region       Provider     Idle GPUs     Idle/h   Util", "no idle GPUs")
	for _, n := range idle[:min(len(idle), topRanked)] {
		d.add(Fit(orDash(n.View.Hostname), 16) + " " + Fit(n.View.Region, 12) + " " + Fit(n.View.Provider, 12) + " " +
			FitRight(strconv.Itoa(n.IdleGPUs)+"/"+strconv.Itoa(n.GPUs), 9) + " " + FitRight(AmountShort(n.IdleBurn), 10) + " " +
			FitRight(Percent(n.Util), 6))
	}
	if idleN > topRanked {
		d.more(idleN - topRanked)
	}
}

// smIdle ranks the nodes paid for by their profiling SM activity, lowest
// first (only GPUs with GPM report it). Utilisation counts a GPU busy when
// any kernel runs; SM activity says how much of it the work uses.
func (d *costDoc) smIdle(s *Snapshot) {
	d.section("Paid for, SMs idle: ranked by SM activity (" + d.cur + "/h)")
	rows := make([]*NodeRow, 0, 16)
	for _, n := range s.Nodes {
		if !math.IsNaN(n.SMActive) && n.Burn > 0 {
			rows = append(rows, n)
		}
	}
	slices.SortFunc(rows, func(a, b *NodeRow) int {
		if c := cmp.Compare(a.SMActive, b.SMActive); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Burn, a.Burn); c != 0 {
			return c
		}
		return strings.Compare(a.View.ID, b.View.ID)
	})
	d.header(len(rows), "Node             Region       Provider      GPUs     Burn/h   Util  SM act",
		"no GPU reports SM activity (profiling needs Hopper or newer)")
	for _, n := range rows[:min(len(rows), topRanked)] {
		d.add(Fit(orDash(n.View.Hostname), 16) + " " + Fit(n.View.Region, 12) + " " + Fit(n.View.Provider, 12) + " " +
			FitRight(strconv.Itoa(n.GPUs), 5) + " " + FitRight(AmountShort(n.Burn), 10) + " " +
			FitRight(Percent(n.Util), 5) + " " + FitRight(Percent(n.SMActive), 6))
	}
	if len(rows) > topRanked {
		d.more(len(rows) - topRanked)
	}
}

// leases lists the leases ending within the horizon.
func (d *costDoc) leases(s *Snapshot) {
	d.section("Leases ending soon")
	d.header(len(s.Leases), "Node             Lease            GPUs  Ends        In", "none within the horizon")
	for _, l := range s.Leases {
		in := d.st.Crit.Render("ended")
		if l.End.After(s.Built) {
			in = Duration(l.End.Sub(s.Built))
		}
		d.add(Fit(l.Node, 16) + " " + Fit(orDash(l.Lease), 16) + " " + FitRight(strconv.Itoa(l.GPUs), 4) + "  " +
			l.End.Format("2006-01-02") + "  " + in)
	}
	if s.Paged && s.LeasesEnding > len(s.Leases) {
		d.more(s.LeasesEnding - len(s.Leases))
	}
}

// fallbackCosts derives burn by region, provider, model and team from the
// nodes and jobs when the aggregator sends no cost breakdown.
func fallbackCosts(s *Snapshot) map[string][]wire.CostLine {
	acc := map[[2]string]*wire.CostLine{}
	addLine := func(by, g string, gpus int, burn, idle int64) {
		k := [2]string{by, g}
		c := acc[k]
		if c == nil {
			c = &wire.CostLine{By: by, Group: g}
			acc[k] = c
		}
		c.GPUs += gpus
		c.BurnPerHour.Micros += burn
		c.IdleBurn.Micros += idle
	}
	for _, n := range s.Nodes {
		addLine("region", n.View.Region, n.GPUs, n.Burn, n.IdleBurn)
		addLine("provider", n.View.Provider, n.GPUs, n.Burn, n.IdleBurn)
		if n.GPUs > 0 {
			per := map[string]int{}
			for i := range n.View.Devices {
				if n.View.Devices[i].Instance.Profile == "" {
					per[ShortModel(n.View.Devices[i].Model)]++
				}
			}
			for m, k := range per {
				addLine("model", m, k, n.Burn*int64(k)/int64(n.GPUs), n.IdleBurn*int64(k)/int64(n.GPUs))
			}
		}
	}
	for _, j := range s.Jobs {
		addLine("team", orDash(j.Team), j.GPUs, j.BurnMicros, 0)
		k := [2]string{"team", orDash(j.Team)}
		acc[k].SpendMonth.Micros += j.SpendMicros
	}
	out := map[string][]wire.CostLine{}
	for _, c := range acc {
		out[c.By] = append(out[c.By], *c)
	}
	for _, rows := range out {
		slices.SortFunc(rows, func(a, b wire.CostLine) int {
			if c := cmp.Compare(b.BurnPerHour.Micros, a.BurnPerHour.Micros); c != 0 {
				return c
			}
			return strings.Compare(a.Group, b.Group)
		})
	}
	return out
}
