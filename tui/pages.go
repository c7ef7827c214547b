package tui

import (
	"cmp"
	"math"
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/fleettop/fleettop/wire"
)

// Page numbers, in tab order.
const (
	pageFleet = iota
	pageNodes
	pageNode
	pageJobs
	pageCost
	pageAlerts
	pageJob
	numPages
)

// shared is what every page reads besides its own rows: styles, the latest
// snapshot and the current time (updated once a second).
type shared struct {
	st   *Styles
	snap *Snapshot
	now  time.Time
	hist histState // owned by the root model
}

// navMsg asks the root to open a page (pushing the current one for esc).
type navMsg struct {
	page   int
	node   string // pageNode: which node
	job    string // pageJob: which job
	filter string // list pages: filter to apply
}

func nav(m navMsg) tea.Cmd { return func() tea.Msg { return m } }

func cmpFloat(a, b float64) int {
	// NaN (unknown) compares below every number: first in ascending order,
	// last in the descending orders that busy, hot and costly columns use.
	switch an, bn := math.IsNaN(a), math.IsNaN(b); {
	case an && bn:
		return 0
	case an:
		return -1
	case bn:
		return 1
	}
	return cmp.Compare(a, b)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func memString(used, total float64) string {
	if total <= 0 {
		return "-"
	}
	return Bytes(used) + "/" + Bytes(total)
}

// stateText shows a node's state; offline nodes say since when.
func stateText(sh *shared, v *wire.NodeView) cell {
	switch v.State {
	case wire.StateOnline:
		return cell{text: "online", style: &sh.st.OK}
	case wire.StateDegraded:
		return cell{text: "degraded", style: &sh.st.Warn}
	case wire.StateStale:
		return cell{text: "stale", style: &sh.st.Warn}
	default:
		t := "offline"
		if !v.LastSeen.IsZero() && !sh.now.IsZero() {
			t += " " + Duration(sh.now.Sub(v.LastSeen))
		}
		return cell{text: t, style: &sh.st.Crit}
	}
}

// ---- Fleet ----

func newFleetPage(sh *shared) *listPage[RegionRow] {
	st := sh.st
	p := &listPage[RegionRow]{
		title: "Fleet",
		t: newTable(st, []column{
			{title: "Region", width: 12, flex: 1},
			{title: "Jur", width: 3},
			{title: "Providers", width: 10, flex: 1, drop: 6},
			{title: "Nodes", width: 5, right: true},
			{title: "GPUs", width: 5, right: true, drop: 5},
			{title: "Accelerators", width: 14, flex: 2, drop: 2},
			{title: "Utilisation", width: 15, flex: 1, util: true},
			{title: rangeLabel("Util", &sh.hist), width: 12, flex: 1, spark: true, drop: 8},
			{title: "Memory", width: 11, right: true, drop: 4},
			{title: "Power", width: 7, right: true, drop: 7},
			{title: "Burn/h", width: 9, right: true},
			{title: "Idle/h", width: 9, right: true, drop: 3},
			{title: "Alerts", width: 6, right: true},
		}),
		get:    func(s *Snapshot) []RegionRow { return s.Regions },
		id:     func(r *RegionRow) string { return r.Region },
		search: func(r *RegionRow) string { return r.search },
		cells: func(r *RegionRow, c []cell) []cell {
			alerts := cell{text: strconv.Itoa(r.Alerts)}
			if r.Alerts > 0 {
				alerts.style = &st.Crit
			}
			hist, _ := sh.hist.region(r.Region)
			return append(c,
				cell{text: r.Region}, cell{text: r.Jurisdiction}, cell{text: r.Providers},
				cell{text: strconv.Itoa(r.Nodes)}, cell{text: strconv.Itoa(r.GPUs)}, cell{text: r.Models},
				cell{ratio: r.Util}, cell{series: hist.util}, cell{text: memString(r.MemUsed, r.MemTotal)}, cell{text: Watts(r.Power)},
				cell{text: AmountShort(r.Burn)}, cell{text: AmountShort(r.IdleBurn)}, alerts)
		},
		enter: func(r *RegionRow) tea.Cmd {
			return nav(navMsg{page: pageNodes, filter: strings.ToLower(r.Region)})
		},
	}
	p.sorts = []sortKey[RegionRow]{
		{col: 0, cmp: func(a, b *RegionRow) int { return strings.Compare(a.Region, b.Region) }},
		{col: 6, desc: true, cmp: func(a, b *RegionRow) int { return cmpFloat(a.Util, b.Util) }},
		{col: 10, desc: true, cmp: func(a, b *RegionRow) int { return cmp.Compare(a.Burn, b.Burn) }},
		{col: 11, desc: true, cmp: func(a, b *RegionRow) int { return cmp.Compare(a.IdleBurn, b.IdleBurn) }},
		{col: 4, desc: true, cmp: func(a, b *RegionRow) int { return cmp.Compare(a.GPUs, b.GPUs) }},
		{col: 12, desc: true, cmp: func(a, b *RegionRow) int { return cmp.Compare(a.Alerts, b.Alerts) }},
	}
	p.headerH = 4
	p.extraH = func() int { return len(residencyBanner(sh, p.w)) }
	p.header = func(b *strings.Builder) {
		for _, l := range residencyBanner(sh, p.w) {
			b.WriteString(l + "\n")
		}
		fleetHeader(b, sh, p.w, p.headerH-1)
	}
	p.footer = func(b *strings.Builder, lines int) { dashboardPanels(b, sh, p.w, lines) }
	p.onHistory = func() { p.t.cols[7].title = rangeLabel("Util", &sh.hist) }
	return p
}

// fleetHeader draws the fleet at a glance in lines lines, flowing the
// figures to the width, then a blank line.
func fleetHeader(b *strings.Builder, sh *shared, w, lines int) {
	st := sh.st
	s := sh.snap
	if s == nil {
		s = &Snapshot{}
	}
	sm := &s.Summary
	cur := s.Currency
	star := ""
	if s.Unconverted {
		star = "*"
	}
	money := func(m int64) string { return Money(m, cur) + star }
	if s.Dark() {
		// No aggregator answers: the last figures would read as current.
		money = func(int64) string { return "—" }
	}
	lbl := func(l string) string { return st.Label.Render(l) }
	val := func(v string) string { return st.Value.Render(v) }
	stale := strconv.Itoa(sm.GPUsStale) + " stale"
	if sm.GPUsStale > 0 {
		stale = st.Warn.Render(stale)
	}
	off := strconv.Itoa(sm.GPUsOffline) + " offline"
	if sm.GPUsOffline > 0 {
		off = st.Crit.Render(off)
	}
	alerts := strconv.Itoa(sm.AlertsOpen) + " open"
	if sm.AlertsOpen > 0 {
		alerts = st.Crit.Render(alerts)
	} else {
		alerts = val(alerts)
	}
	chips := []string{
		lbl("GPUs ") + val(grouped(strconv.Itoa(sm.GPUsOnline))+" online") + " · " + stale + " · " + off,
		lbl("Util ") + val(Percent(sm.Util)) + " " + st.bar(sm.Util, 10),
		lbl("Alerts ") + alerts,
		lbl("Burn ") + val(money(sm.BurnPerHour.Micros)+"/h"),
		lbl("Idle burn ") + val(money(sm.IdleBurn.Micros)+"/h"),
		lbl("Today ") + val(money(sm.SpendToday.Micros)),
		lbl("Month-to-date ") + val(money(sm.SpendMonth.Micros)),
		lbl("Projected ") + val(money(sm.ProjectedMonth.Micros)),
	}
	flow(b, chips, w, lines, "   ")
	b.WriteString("\n")
}

// flow writes chips separated by sep, wrapping at w, in exactly lines lines
// (chips that do not fit are left out); each line ends with "\n".
func flow(b *strings.Builder, chips []string, w, lines int, sep string) {
	line, lw, n := "", 0, 0
	for _, c := range chips {
		cw := cellWidth(c)
		if lw > 0 && lw+len(sep)+cw > w {
			if n < lines {
				b.WriteString(Fit(line, w))
				b.WriteString("\n")
				n++
			}
			line, lw = "", 0
		}
		if lw > 0 {
			line += sep
			lw += len(sep)
		}
		line += c
		lw += cw
	}
	if lw > 0 && n < lines {
		b.WriteString(Fit(line, w))
		b.WriteString("\n")
		n++
	}
	for ; n < lines; n++ {
		b.WriteString("\n")
	}
}

// ---- Nodes ----

func newNodesPage(sh *shared) *listPage[*NodeRow] {
	st := sh.st
	p := &listPage[*NodeRow]{
		title: "Nodes",
		t: newTable(st, []column{
			{title: "Node", width: 14, flex: 2},
			{title: "Region", width: 10, flex: 1, drop: 3},
			{title: "Provider", width: 10, flex: 1, drop: 6},
			{title: "Accel", width: 9, drop: 4},
			{title: "Utilisation", width: 14, flex: 1, util: true},
			{title: "Memory", width: 11, right: true, drop: 5},
			{title: "Hot", width: 4, right: true, drop: 7},
			{title: "Power", width: 6, right: true, drop: 8},
			{title: "Burn/h", width: 8, right: true},
			{title: "Jobs", width: 8, flex: 1, drop: 2},
			{title: "State", width: 11},
		}),
		get:    func(s *Snapshot) []*NodeRow { return s.Nodes },
		id:     func(r **NodeRow) string { return (*r).View.ID },
		search: func(r **NodeRow) string { return (*r).search },
		cells: func(rp **NodeRow, c []cell) []cell {
			r := *rp
			v := r.View
			hot := "-"
			if !math.IsNaN(r.Hottest) {
				hot = strconv.Itoa(int(math.Round(r.Hottest))) + "°"
			}
			jobs := strings.Join(r.Jobs, ",")
			return append(c,
				cell{text: orDash(v.Hostname)}, cell{text: v.Region}, cell{text: v.Provider}, cell{text: r.Models},
				cell{ratio: r.Util}, cell{text: memString(r.MemUsed, r.MemTotal)}, cell{text: hot},
				cell{text: Watts(r.Power)}, cell{text: AmountShort(r.Burn)}, cell{text: orDash(jobs)},
				stateText(sh, v))
		},
		enter: func(r **NodeRow) tea.Cmd { return nav(navMsg{page: pageNode, node: (*r).View.ID}) },
	}
	p.sorts = []sortKey[*NodeRow]{
		{col: 1, wire: wire.SortDefault, cmp: func(a, b **NodeRow) int { return 0 }}, // snapshot order: region, hostname
		{col: 0, wire: wire.SortHost, cmp: func(a, b **NodeRow) int { return strings.Compare((*a).View.Hostname, (*b).View.Hostname) }},
		{col: 4, wire: wire.SortUtil, desc: true, cmp: func(a, b **NodeRow) int { return cmpFloat((*a).Util, (*b).Util) }},
		{col: 8, wire: wire.SortBurn, desc: true, cmp: func(a, b **NodeRow) int { return cmp.Compare((*a).Burn, (*b).Burn) }},
		{col: 6, wire: wire.SortTemp, desc: true, cmp: func(a, b **NodeRow) int { return cmpFloat((*a).Hottest, (*b).Hottest) }},
		{col: 10, wire: wire.SortState, cmp: func(a, b **NodeRow) int { return strings.Compare((*a).View.State, (*b).View.State) }},
		{col: 7, wire: wire.SortPower, desc: true, cmp: func(a, b **NodeRow) int { return cmpFloat((*a).Power, (*b).Power) }},
		{col: 5, wire: wire.SortMem, desc: true, cmp: func(a, b **NodeRow) int { return cmpFloat((*a).MemUsed, (*b).MemUsed) }},
		{col: 2, wire: wire.SortProvider, cmp: func(a, b **NodeRow) int { return strings.Compare((*a).View.Provider, (*b).View.Provider) }},
		{col: 9, wire: wire.SortJobs, cmp: func(a, b **NodeRow) int {
			return strings.Compare(strings.Join((*a).Jobs, ","), strings.Join((*b).Jobs, ","))
		}},
	}
	p.paged = func(s *Snapshot) (int, int, int, bool) { return s.NodesOffset, s.NodesTotal, s.NodesKnown, s.Paged }
	// Narrowed to a region (enter on the Fleet view, :region): the
	// region's history above its nodes.
	p.extraH = func() int {
		if regionNamed(sh.snap, p.filter) != "" {
			return 3
		}
		return 0
	}
	p.header = func(b *strings.Builder) {
		if r := regionNamed(sh.snap, p.filter); r != "" {
			for _, l := range regionGraphs(sh, r, p.w) {
				b.WriteString(l + "\n")
			}
		}
	}
	p.onHistory = func() {}
	return p
}

// regionNamed is the region whose name filter is (any case), "" when none.
func regionNamed(s *Snapshot, filter string) string {
	if s == nil || filter == "" {
		return ""
	}
	for i := range s.Regions {
		if r := s.Regions[i].Region; strings.EqualFold(r, filter) {
			return r
		}
	}
	return ""
}

// regionGraphs draws a region's utilisation and power over the range
// picked, then a blank line: three lines.
func regionGraphs(sh *shared, region string, w int) []string {
	rng := sh.hist.Range().Name
	h, ok := sh.hist.region(region)
	if !ok {
		return []string{sh.st.Dim.Render(Fit(region+" "+rng, 16) + " history loading…  ([ ] picks " + rangeNames() + ")"), "", ""}
	}
	return []string{
		Fit(graph(sh.st, "Utilisation", rng, h.util, 0, 1, Percent, w), w),
		Fit(graph(sh.st, "Power", rng, h.power, 0, math.NaN(), Watts, w), w),
		"",
	}
}

// ---- Jobs ----

func newJobsPage(sh *shared) *listPage[JobRow] {
	st := sh.st
	p := &listPage[JobRow]{
		title: "Jobs",
		t: newTable(st, []column{
			{title: "Job", width: 12, flex: 1},
			{title: "Team", width: 8, drop: 5},
			{title: "Data class", width: 11, drop: 4},
			{title: "Regions", width: 12, flex: 1, drop: 3},
			{title: "Nodes", width: 5, right: true, drop: 6},
			{title: "GPUs", width: 5, right: true},
			{title: "Utilisation", width: 14, flex: 1, util: true},
			{title: "Burn/h", width: 8, right: true},
			{title: "Spend", width: 9, right: true, drop: 2},
			{title: "Residency", width: 10, flex: 1},
		}),
		get:    func(s *Snapshot) []JobRow { return s.Jobs },
		id:     func(r *JobRow) string { return r.ID },
		search: func(r *JobRow) string { return r.search },
		cells: func(r *JobRow, c []cell) []cell {
			res := cell{text: "allowed", style: &st.OK}
			if !r.Allowed {
				res = cell{text: "VIOLATION", style: &st.Crit}
				if r.Violation != "" {
					res.text += ": " + r.Violation
				}
			}
			return append(c,
				cell{text: r.ID}, cell{text: orDash(r.Team)}, cell{text: orDash(r.DataClass)},
				cell{text: strings.Join(r.Regions, ",")}, cell{text: strconv.Itoa(len(r.Nodes))},
				cell{text: strconv.Itoa(r.GPUs)}, cell{ratio: r.Util}, cell{text: AmountShort(r.BurnMicros)},
				cell{text: AmountShort(r.SpendMicros)}, res)
		},
		enter: func(r *JobRow) tea.Cmd { return nav(navMsg{page: pageJob, job: r.ID}) },
	}
	p.sorts = []sortKey[JobRow]{
		{col: 0, wire: wire.JobSortID, cmp: func(a, b *JobRow) int { return 0 }},
		{col: 7, wire: wire.JobSortBurn, desc: true, cmp: func(a, b *JobRow) int { return cmp.Compare(a.BurnMicros, b.BurnMicros) }},
		{col: 6, wire: wire.JobSortUtil, desc: true, cmp: func(a, b *JobRow) int { return cmpFloat(a.Util, b.Util) }},
		{col: 5, wire: wire.JobSortGPUs, desc: true, cmp: func(a, b *JobRow) int { return cmp.Compare(a.GPUs, b.GPUs) }},
		{col: 1, wire: wire.JobSortTeam, cmp: func(a, b *JobRow) int { return strings.Compare(a.Team, b.Team) }},
		{col: 9, wire: wire.JobSortResidency, cmp: func(a, b *JobRow) int {
			return cmp.Compare(boolInt(a.Allowed), boolInt(b.Allowed))
		}},
	}
	p.paged = func(s *Snapshot) (int, int, int, bool) { return s.JobsOffset, s.JobsTotal, s.JobsKnown, s.Paged }
	return p
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
