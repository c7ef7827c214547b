package tui

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// The Fleet view is a dashboard: what needs a decision comes first. Above
// the region table, a banner names every residency violation (job, data
// class, node, region); below it, panels fill the rest of the screen by
// priority: open alerts, budgets, paid-but-dark leases, idle spend.

// maxBanner is the most residency lines the banner takes; more are counted.
const maxBanner = 3

// residencyBanner returns one line per open residency violation, at most
// maxBanner, the last one counting the rest.
func residencyBanner(sh *shared, w int) []string {
	s := sh.snap
	if s == nil {
		return nil
	}
	st := sh.st
	var viol []*fleet.Alert
	for i := range s.Alerts {
		if a := &s.Alerts[i]; a.Kind == fleet.EventResidency && a.Open() {
			viol = append(viol, a)
		}
	}
	if len(viol) == 0 {
		return nil
	}
	jobs := make(map[string]*JobRow, len(s.Jobs))
	for i := range s.Jobs {
		jobs[s.Jobs[i].ID] = &s.Jobs[i]
	}
	var out []string
	for i, a := range viol {
		if i == maxBanner-1 && len(viol) > maxBanner {
			out = append(out, st.Crit.Render("RESIDENCY")+" "+strconv.Itoa(len(viol)-i)+" more violations · 6 lists them")
			break
		}
		class, team := "", ""
		if j := jobs[a.Job]; j != nil {
			class, team = j.DataClass, j.Team
		}
		host := a.Node
		if r := s.Node(a.Node); r != nil && r.View.Hostname != "" {
			host = r.View.Hostname
		}
		line := st.Crit.Render("RESIDENCY") + " job " + st.Value.Render(orDash(a.Job))
		if class != "" {
			line += " (" + class
			if team != "" {
				line += ", team " + team
			}
			line += ")"
		}
		line += " on " + st.Value.Render(orDash(host)) + " in " + orDash(a.Region)
		if _, why, ok := strings.Cut(a.Message, ": "); ok {
			line += " — " + why
		}
		out = append(out, Fit(line, w))
	}
	return out
}

// panel is one titled block of the dashboard.
type panel struct {
	title string
	lines []string
}

// dashboardPanels draws as many panels as fit in lines lines of w cells,
// most urgent first; each panel keeps at least its title and one line.
func dashboardPanels(b *strings.Builder, sh *shared, w, lines int) {
	s := sh.snap
	if s == nil || lines < 3 {
		return
	}
	st := sh.st
	panels := []panel{alertsPanel(sh), budgetPanel(sh), darkPanel(sh), idlePanel(sh)}
	for _, p := range panels {
		if len(p.lines) == 0 {
			continue
		}
		// A blank line, the title, at least one line.
		if lines < 3 {
			break
		}
		b.WriteString("\n" + Fit(st.Section.Render(p.title), w) + "\n")
		lines -= 2
		n := min(len(p.lines), lines)
		if n < len(p.lines) && n > 0 {
			n-- // room for "… N more"
		}
		for _, l := range p.lines[:n] {
			b.WriteString(Fit("  "+l, w) + "\n")
		}
		lines -= n
		if n < len(p.lines) && lines > 0 {
			b.WriteString(st.Dim.Render(Fit("  … "+strconv.Itoa(len(p.lines)-n)+" more", w)) + "\n")
			lines--
		}
	}
}

// alertsPanel lists open alerts, critical first, one line each (the
// residency ones are in the banner already).
func alertsPanel(sh *shared) panel {
	st := sh.st
	s := sh.snap
	var crit, warn int
	var open []*fleet.Alert
	for i := range s.Alerts {
		a := &s.Alerts[i]
		if !a.Open() || a.SilencedUntil.After(sh.now) {
			continue
		}
		switch a.Severity {
		case fleet.SevCritical:
			crit++
		case fleet.SevWarning:
			warn++
		}
		if a.Kind != fleet.EventResidency {
			open = append(open, a)
		}
	}
	if crit+warn == 0 && len(open) == 0 {
		return panel{}
	}
	slices.SortStableFunc(open, func(a, b *fleet.Alert) int { return fleet.CompareAlerts(*a, *b) })
	p := panel{title: "Open alerts  " + strconv.Itoa(crit) + " critical · " + strconv.Itoa(warn) + " warning"}
	for _, a := range open {
		sev := st.Warn.Render(Fit(string(a.Severity), 8))
		if a.Severity == fleet.SevCritical {
			sev = st.Crit.Render(Fit(string(a.Severity), 8))
		}
		where := orDash(a.Node)
		if a.Job != "" {
			where += " · job " + a.Job
		}
		if a.Acked {
			where += " · ack " + a.AckedBy
		}
		p.lines = append(p.lines, sev+" "+alertText(a)+st.Dim.Render("  "+where))
	}
	return p
}

// budgetPanel shows each budget's use and month-end projection, those
// heading over budget first.
func budgetPanel(sh *shared) panel {
	st := sh.st
	s := sh.snap
	var rows []wire.CostLine
	for _, c := range s.Costs {
		if c.Budget.Micros > 0 {
			rows = append(rows, c)
		}
	}
	if len(rows) == 0 {
		return panel{}
	}
	over := func(c wire.CostLine) bool { return c.ProjectedMonth.Micros > c.Budget.Micros }
	slices.SortStableFunc(rows, func(a, b wire.CostLine) int {
		return cmp.Compare(float64(b.SpendMonth.Micros)/float64(b.Budget.Micros), float64(a.SpendMonth.Micros)/float64(a.Budget.Micros))
	})
	slices.SortStableFunc(rows, func(a, b wire.CostLine) int { return cmp.Compare(boolInt(over(b)), boolInt(over(a))) })
	p := panel{title: "Budgets this month"}
	for _, c := range rows {
		used := float64(c.SpendMonth.Micros) / float64(c.Budget.Micros)
		l := Fit(c.By+" "+c.Group, 22) + " " + st.bar(min(used, 1), 10) + " " + FitRight(Percent(used), 6) +
			" of " + Money(c.Budget.Micros, s.Currency)
		if c.ProjectedMonth.Micros > 0 {
			proj := "projected " + Money(c.ProjectedMonth.Micros, s.Currency)
			if over(c) {
				proj = st.Warn.Render(proj + " — over budget")
			}
			l += " · " + proj
		}
		p.lines = append(p.lines, l)
	}
	return p
}

// darkPanel lists leased nodes that are paid for but not reporting.
func darkPanel(sh *shared) panel {
	st := sh.st
	s := sh.snap
	// Ranked once per snapshot (by the aggregators, or by Merger.Snapshot).
	dark, n := s.DarkTop, s.DarkNodes
	if len(dark) == 0 {
		return panel{}
	}
	p := panel{title: "Paid but dark  " + strconv.Itoa(n) + " nodes not reporting"}
	for _, r := range dark {
		p.lines = append(p.lines, Fit(orDash(r.View.Hostname), 24)+" "+Fit(r.View.Region, 12)+" "+
			st.Crit.Render(stateText(sh, r.View).text)+"  "+Money(r.Burn, s.Currency)+"/h")
	}
	return p
}

// idlePanel lists the nodes whose idle GPUs cost the most.
func idlePanel(sh *shared) panel {
	s := sh.snap
	idle := s.IdleTop // ranked once per snapshot, like DarkTop
	if len(idle) == 0 {
		return panel{}
	}
	p := panel{title: "Top idle spend  paid for, doing nothing"}
	for _, r := range idle {
		jobs := strings.Join(r.Jobs, ",")
		p.lines = append(p.lines, Fit(orDash(r.View.Hostname), 24)+" "+Fit(r.View.Region, 12)+" "+
			FitRight(strconv.Itoa(r.IdleGPUs)+"/"+strconv.Itoa(r.GPUs)+" idle", 10)+"  "+
			FitRight(Money(r.IdleBurn, s.Currency)+"/h", 14)+"  "+orDash(jobs))
	}
	return p
}

// alertText is an alert's message without the node's name in front (the
// row names the node), so the cause (e.g. "GPU 2: XID 79") survives narrow
// screens.
func alertText(a *fleet.Alert) string {
	if i := strings.Index(a.Message, " GPU "); i > 0 && !strings.Contains(a.Message[:i], " ") {
		return a.Message[i+1:]
	}
	if a.Node != "" {
		if rest, ok := strings.CutPrefix(a.Message, a.Node+" "); ok {
			return rest
		}
	}
	return a.Message
}
