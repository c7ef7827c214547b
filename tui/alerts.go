package tui

import (
	"slices"
	"strconv"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/fleettop/fleettop/fleet"
)

// AlertRow is one line of the Alerts view: the alerts of one node with one
// cause (a thermal event on eight GPUs is one row, not eight), open or
// ended.
type AlertRow struct {
	fleet.Alert          // the most recent member, for severity, start and marks
	IDs         []string // every member's id
	Devices     []int    // the GPUs it concerns, ascending; empty for node-wide alerts
	cause       string
	search      string
}

// alertCause is an alert's message without the node and GPU in front:
// "sg-a1 GPU 2: XID 79 (…)" → "XID 79 (…)".
func alertCause(a *fleet.Alert) string {
	m := alertText(a)
	if rest, ok := strings.CutPrefix(m, "GPU "); ok {
		if _, cause, ok := strings.Cut(rest, ": "); ok {
			return cause
		}
	}
	return m
}

// groupAlerts folds alerts (in the snapshot's order: open first, by
// severity, newest first) into rows per node, kind, cause and open state,
// keeping that order.
func groupAlerts(alerts []fleet.Alert) []AlertRow {
	type key struct {
		node, kind, cause string
		open              bool
	}
	idx := map[key]int{}
	rows := make([]AlertRow, 0, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		k := key{a.Node, string(a.Kind), alertCause(a), a.Open()}
		j, ok := idx[k]
		if !ok {
			j = len(rows)
			idx[k] = j
			rows = append(rows, AlertRow{Alert: *a, cause: k.cause})
		}
		r := &rows[j]
		r.IDs = append(r.IDs, a.ID)
		if a.Device >= 0 {
			r.Devices = append(r.Devices, a.Device)
		}
		// The group is as old as its oldest member, acknowledged when every
		// member is, silenced while every member is.
		if a.Start.Before(r.Start) {
			r.Start = a.Start
		}
		r.Acked = r.Acked && a.Acked
		if a.SilencedUntil.Before(r.SilencedUntil) {
			r.SilencedUntil = a.SilencedUntil
		}
	}
	for i := range rows {
		r := &rows[i]
		slices.Sort(r.Devices)
		r.search = strings.ToLower(string(r.Severity) + " " + string(r.Kind) + " " + r.Node + " " + r.Region + " " + r.Job + " " + r.cause)
	}
	return rows
}

// devicesText is "GPU 5", "GPU 0,2,5" or "GPU ×8" (more than four).
func devicesText(devs []int) string {
	switch {
	case len(devs) == 0:
		return ""
	case len(devs) > 4:
		return "GPU ×" + strconv.Itoa(len(devs))
	}
	parts := make([]string, len(devs))
	for i, d := range devs {
		parts[i] = strconv.Itoa(d)
	}
	return "GPU " + strings.Join(parts, ",")
}

// ---- Alerts ----

func newAlertsPage(sh *shared) *listPage[AlertRow] {
	st := sh.st
	p := &listPage[AlertRow]{
		title: "Alerts",
		t: newTable(st, []column{
			{title: "Severity", width: 9},
			{title: "Kind", width: 9, drop: 4},
			{title: "Node", width: 12, flex: 1},
			{title: "Region", width: 10, drop: 3},
			{title: "Job", width: 8, flex: 1, drop: 2},
			{title: "Message", width: 22, flex: 3},
			{title: "Since", width: 11},
		}),
		get:    func(s *Snapshot) []AlertRow { return groupAlerts(s.Alerts) },
		id:     func(a *AlertRow) string { return a.ID },
		search: func(a *AlertRow) string { return a.search },
		cells: func(a *AlertRow, c []cell) []cell {
			sev := cell{text: string(a.Severity)}
			switch a.Severity {
			case fleet.SevCritical:
				sev.style = &st.Crit
			case fleet.SevWarning:
				sev.style = &st.Warn
			}
			since := "-"
			if a.Open() {
				if !a.Start.IsZero() && !sh.now.IsZero() {
					since = "open " + Duration(sh.now.Sub(a.Start))
				}
			} else {
				sev.style = &st.Dim
				since = "ended " + Duration(sh.now.Sub(a.End))
			}
			switch {
			case a.SilencedUntil.After(sh.now):
				sev.style = &st.Dim
				since = "silenced " + Duration(a.SilencedUntil.Sub(sh.now))
			case a.Acked:
				since += " ack"
			}
			node := orDash(a.Node)
			if d := devicesText(a.Devices); d != "" {
				node += " " + d
			}
			return append(c, sev, cell{text: string(a.Kind)}, cell{text: node},
				cell{text: orDash(a.Region)}, cell{text: orDash(a.Job)}, cell{text: a.cause}, cell{text: since})
		},
		enter: func(a *AlertRow) tea.Cmd {
			if a.Node == "" {
				return nil
			}
			return nav(navMsg{page: pageNode, node: a.Node})
		},
	}
	p.sorts = []sortKey[AlertRow]{
		{col: 0, cmp: func(a, b *AlertRow) int { return 0 }}, // open, severity, newest
		{col: 1, cmp: func(a, b *AlertRow) int { return strings.Compare(string(a.Kind), string(b.Kind)) }},
		{col: 2, cmp: func(a, b *AlertRow) int { return strings.Compare(a.Node, b.Node) }},
		{col: 3, cmp: func(a, b *AlertRow) int { return strings.Compare(a.Region, b.Region) }},
		{col: 6, desc: true, cmp: func(a, b *AlertRow) int { return a.Start.Compare(b.Start) }},
	}
	return p
}
