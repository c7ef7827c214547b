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
	st := p.sh.st
	w := p.doc.w
	cur := s.Currency
	var lines []string
	add := func(x string) { lines = append(lines, Fit(x, w)) }
	// header adds a ranked section's column header, or says, dimmed, why
	// the section has no rows.
	header := func(rows int, cols, none string) {
		if rows == 0 {
			add(st.Dim.Render("  " + none))
		} else {
			add(st.TableHeader.Render(Fit(cols, w)))
		}
	}
	more := func(n int) { add(st.Dim.Render("  … " + strconv.Itoa(n) + " more")) }
	sm := &s.Summary
	add(st.Label.Render("Burn ") + Money(sm.BurnPerHour.Micros, cur) + "/h   " +
		st.Label.Render("Idle burn ") + Money(sm.IdleBurn.Micros, cur) + "/h   " +
		st.Label.Render("Today ") + Money(sm.SpendToday.Micros, cur) + "   " +
		st.Label.Render("Month-to-date ") + Money(sm.SpendMonth.Micros, cur) + "   " +
		st.Label.Render("Projected ") + Money(sm.ProjectedMonth.Micros, cur))
	if s.Unconverted {
		add(st.Warn.Render("* some amounts are in currencies without a rate and are left out"))
	}
	// What the money bought over the range picked: utilisation, and the
	// share of GPU time paid for and idle.
	rng := p.sh.hist.Range().Name
	if h, ok := fleetSeries(&p.sh.hist, s.Regions); ok {
		add(graph(st, "Utilisation", rng, h.util, 0, 1, Percent, w))
		add(graph(st, "Idle share", rng, h.idle, 0, 1, Percent, w))
		add(graph(st, "Power", rng, h.power, 0, math.NaN(), Watts, w))
	} else {
		add(st.Dim.Render(Fit("History "+rng, 16) + " loading…  ([ ] picks " + rangeNames() + ")"))
	}
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
		add("")
		add(st.Section.Render("By " + group + " (" + cur + ")"))
		add(st.TableHeader.Render(Fit(Fit(strings.ToUpper(group[:1])+group[1:], 16)+
			"  GPUs     Burn/h     Idle/h      Today      Month  Idle month     Budget", w)))
		if len(rows) == 0 {
			add(st.Dim.Render("  no data"))
		}
		for _, c := range rows {
			budget := "-"
			if c.Budget.Micros != 0 {
				budget = AmountShort(c.Budget.Micros)
			}
			today, month, idleMonth := AmountShort(c.SpendToday.Micros), AmountShort(c.SpendMonth.Micros), AmountShort(c.IdleSpend.Micros)
			if derived { // live burn only: spend needs the cost engine
				today, idleMonth = "-", "-"
				if c.SpendMonth.Micros == 0 {
					month = "-"
				}
			}
			add(Fit(c.Group, 16) + " " + FitRight(strconv.Itoa(c.GPUs), 5) + " " +
				FitRight(AmountShort(c.BurnPerHour.Micros), 10) + " " + FitRight(AmountShort(c.IdleBurn.Micros), 10) + " " +
				FitRight(today, 10) + " " + FitRight(month, 10) + " " + FitRight(idleMonth, 11) + " " + FitRight(budget, 10))
		}
	}

	// Idle waste: nodes ranked by what their idle GPUs burn.
	add("")
	add(st.Section.Render("Idle waste, ranked (" + cur + "/h)"))
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
	header(len(idle), "Node             Region       Provider     Idle GPUs     Idle/h   Util", "no idle GPUs")
	const topIdle = 10
	for i, n := range idle {
		if i == topIdle {
			break
		}
		add(Fit(orDash(n.View.Hostname), 16) + " " + Fit(n.View.Region, 12) + " " + Fit(n.View.Provider, 12) + " " +
			FitRight(strconv.Itoa(n.IdleGPUs)+"/"+strconv.Itoa(n.GPUs), 9) + " " + FitRight(AmountShort(n.IdleBurn), 10) + " " +
			FitRight(Percent(n.Util), 6))
	}
	if idleN > topIdle {
		more(idleN - topIdle)
	}

	// Paid for, SMs idle: nodes ranked by profiling SM activity, lowest
	// first (only GPUs with GPM report it). Utilisation counts a GPU busy
	// when any kernel runs; SM activity says how much of it the work uses.
	add("")
	add(st.Section.Render("Paid for, SMs idle: ranked by SM activity (" + cur + "/h)"))
	smIdle := make([]*NodeRow, 0, 16)
	for _, n := range s.Nodes {
		if !math.IsNaN(n.SMActive) && n.Burn > 0 {
			smIdle = append(smIdle, n)
		}
	}
	slices.SortFunc(smIdle, func(a, b *NodeRow) int {
		if c := cmp.Compare(a.SMActive, b.SMActive); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Burn, a.Burn); c != 0 {
			return c
		}
		return strings.Compare(a.View.ID, b.View.ID)
	})
	header(len(smIdle), "Node             Region       Provider      GPUs     Burn/h   Util  SM act",
		"no GPU reports SM activity (profiling needs Hopper or newer)")
	for i, n := range smIdle {
		if i == topIdle {
			more(len(smIdle) - topIdle)
			break
		}
		add(Fit(orDash(n.View.Hostname), 16) + " " + Fit(n.View.Region, 12) + " " + Fit(n.View.Provider, 12) + " " +
			FitRight(strconv.Itoa(n.GPUs), 5) + " " + FitRight(AmountShort(n.Burn), 10) + " " +
			FitRight(Percent(n.Util), 5) + " " + FitRight(Percent(n.SMActive), 6))
	}

	add("")
	add(st.Section.Render("Leases ending soon"))
	header(len(s.Leases), "Node             Lease            GPUs  Ends        In", "none within the horizon")
	for _, l := range s.Leases {
		in := "-"
		if l.End.After(s.Built) {
			in = Duration(l.End.Sub(s.Built))
		} else {
			in = st.Crit.Render("ended")
		}
		add(Fit(l.Node, 16) + " " + Fit(orDash(l.Lease), 16) + " " + FitRight(strconv.Itoa(l.GPUs), 4) + "  " +
			l.End.Format("2006-01-02") + "  " + in)
	}
	if s.Paged && s.LeasesEnding > len(s.Leases) {
		more(s.LeasesEnding - len(s.Leases))
	}
	p.lines = lines
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
