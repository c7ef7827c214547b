package tui

import (
	"strconv"
	"strings"
)

// ---- Job ----

// jobPage is one job: who owns it, what data it processes and whether it
// may be where it runs, what it costs, and each of its nodes.
type jobPage struct{ docPage[JobRow] }

func newJobPage(sh *shared) *jobPage {
	return &jobPage{newDocPage(sh, "Job", (*Snapshot).Job, (*Snapshot).firstJobID)}
}

func (p *jobPage) View() string {
	st := p.sh.st
	w := p.doc.w
	if p.row == nil {
		if p.id == "" {
			return st.Dim.Render("No job yet. Pick one in Jobs (4) and press enter, or type :job NAME.")
		}
		return st.Warn.Render("Job " + p.id + " is no longer reported by any aggregator.")
	}
	j := p.row
	s := p.sh.snap
	cur := s.Currency
	var lines []string
	add := func(l string) { lines = append(lines, Fit(l, w)) }
	lbl := func(l string) string { return st.Label.Render(l) }

	add(st.Value.Render(j.ID) + "  " + lbl("team ") + orDash(j.Team) + "  " + lbl("data class ") + orDash(j.DataClass) +
		"  " + lbl("from ") + orDash(j.Source))
	if j.Allowed {
		add(st.OK.Render("placement allowed") + " " + st.Dim.Render("in "+strings.Join(j.Jurisdictions, ", ")))
	} else {
		add(st.Crit.Render("RESIDENCY VIOLATION") + " " + j.Violation)
	}
	add(lbl("GPUs ") + strconv.Itoa(j.GPUs) + "   " + lbl("Util ") + Percent(j.Util) + " " + st.bar(j.Util, 10) +
		"   " + lbl("Burn ") + Money(j.BurnMicros, cur) + "/h   " + lbl("This month ") + Money(j.SpendMicros, cur) +
		"   " + lbl("Regions ") + strings.Join(j.Regions, ", "))
	add("")
	add(st.Section.Render("Nodes") + st.Dim.Render("  (:node NAME opens one)"))
	add(st.TableHeader.Render(Fit(Fit("Node", 24)+" "+Fit("Region", 12)+" "+Fit("Jur", 4)+" "+Fit("Provider", 12)+" "+
		FitRight("Util", 7)+" "+FitRight("Burn/h", 12)+" State", w)))
	for _, id := range j.Nodes {
		r := s.Node(id)
		if r == nil {
			add(Fit(id, 24) + " " + st.Dim.Render("not on screen"))
			continue
		}
		v := r.View
		stc := stateText(p.sh, v)
		util := "-"
		if r.Util == r.Util {
			util = Percent(r.Util)
		}
		add(Fit(orDash(v.Hostname), 24) + " " + Fit(v.Region, 12) + " " + Fit(v.Jurisdiction, 4) + " " + Fit(v.Provider, 12) +
			" " + FitRight(util, 7) + " " + FitRight(AmountShort(r.Burn), 12) + " " + stc.style.Render(stc.text))
	}
	return p.doc.window(lines)
}
