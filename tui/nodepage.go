package tui

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/fleettop/fleettop/fleet"
)

// ---- Node ----

type nodePage struct {
	docPage
	row     *NodeRow
	hist    *History
	histFor string
}

func newNodePage(sh *shared) *nodePage { return &nodePage{docPage: docPage{sh: sh}} }

func (p *nodePage) Title() string { return "Node" }

// SetNode selects the node to show.
func (p *nodePage) SetNode(id string) {
	if id != p.id {
		p.doc.offset = 0
	}
	p.id = id
	p.SetData(p.sh.snap)
}

// Target is the node shown and its aggregator; ok is false when none.
func (p *nodePage) Target() (agg int, id string, ok bool) {
	if p.row == nil {
		return 0, "", false
	}
	return p.row.Agg, p.row.View.ID, true
}

// SetHistory stores fetched history for the node it belongs to.
func (p *nodePage) SetHistory(id string, h *History) {
	p.hist, p.histFor = h, id
}

func (p *nodePage) SetData(s *Snapshot) {
	if s == nil {
		return
	}
	if p.id == "" && len(s.Nodes) > 0 {
		p.id = s.Nodes[0].View.ID // nothing chosen yet: the first node
	}
	p.row = s.Node(p.id)
}

func (p *nodePage) View() string {
	st := p.sh.st
	w := p.doc.w
	if p.row == nil {
		if p.id == "" {
			return st.Dim.Render("No node yet. Pick one in Nodes (2) and press enter.")
		}
		return st.Warn.Render("Node " + p.id + " is no longer reported by any aggregator.")
	}
	r := p.row
	v := r.View
	cur := p.sh.snap.Currency
	var lines []string
	add := func(s string) { lines = append(lines, Fit(s, w)) }
	lbl := func(l string) string { return st.Label.Render(l) }

	stc := stateText(p.sh, v)
	title := st.Value.Render(orDash(v.Hostname))
	if v.ID != v.Hostname { // the id only when it tells something new
		title += " " + st.Dim.Render("("+v.ID+")")
	}
	title += "  " + v.Region + "/" + v.Jurisdiction + "  " + v.Provider
	if v.Site != "" {
		title += " · " + lbl("site ") + v.Site
	}
	title += "  " + stc.style.Render(stc.text)
	add(title)
	lease := lbl("Lease ") + orDash(v.Lease.ID)
	if v.Lease.PricePerGPUHour.Micros != 0 {
		lease += "  " + Money(v.Lease.PricePerGPUHour.Micros, v.Lease.PricePerGPUHour.Currency) + "/GPU-h"
	}
	if v.Lease.Billing != "" {
		lease += " per " + string(v.Lease.Billing)
	}
	if v.Lease.Reserved {
		lease += " reserved"
	}
	if !v.Lease.End.IsZero() {
		lease += "  ends " + v.Lease.End.Format("2006-01-02")
		if !p.sh.now.IsZero() && v.Lease.End.After(p.sh.now) {
			lease += " (in " + Duration(v.Lease.End.Sub(p.sh.now)) + ")"
		}
	}
	lease += "   " + lbl("Burn ") + Money(r.Burn, cur) + "/h  " + lbl("Idle ") + Money(r.IdleBurn, cur) + "/h"
	add(lease)
	if len(v.Sources) > 0 || v.GPUsBlind > 0 {
		// Each collector source's health, and GPUs paid for but not seen.
		src := []string{lbl("Sources")}
		for _, s := range v.Sources {
			if s.Up {
				src = append(src, p.sh.st.OK.Render(s.Name+" up"))
			} else {
				src = append(src, p.sh.st.Crit.Render(s.Name+" down")+" "+Fit(s.Reason, 40))
			}
		}
		if v.GPUsBlind > 0 {
			src = append(src, p.sh.st.Warn.Render("paid but blind: "+strconv.Itoa(v.GPUsBlind)+" of "+strconv.Itoa(v.GPUs)+" GPUs not visible"))
		}
		add(strings.Join(src, "  "))
	}
	host := []string{}
	if x, ok := v.Host["cpu_util"]; ok {
		host = append(host, lbl("CPU ")+Percent(x))
	}
	if x, ok := v.Host["load1"]; ok {
		host = append(host, lbl("load ")+strconv.FormatFloat(x, 'f', 1, 64))
	}
	if u, ok := v.Host["mem_used"]; ok {
		host = append(host, lbl("RAM ")+memString(u, v.Host["mem_total"]))
	}
	host = append(host, lbl("seq ")+strconv.FormatUint(v.Seq, 10), lbl("gaps ")+strconv.FormatUint(v.Gaps, 10))
	add(strings.Join(host, "  "))
	add("")

	// Devices.
	var hist map[int]DeviceHistory
	if p.hist != nil && p.histFor == v.ID {
		hist = p.hist.Devices
	}
	spark := max(0, min(30, (w-86)/2))
	clocks := w >= 96
	hdr := "GPU Model       Utilisation  SM act        Memory        Power      Temp"
	if clocks {
		hdr += "   SM MHz  Mem MHz"
	}
	if spark > 4 {
		hdr += "  " + Fit("Util history", spark) + "  " + Fit("Power history", spark)
	}
	add(st.TableHeader.Render(Fit(hdr, w)))
	for i := range v.Devices {
		d := &v.Devices[i]
		m := d.Metrics
		var b strings.Builder
		name := ShortModel(d.Model)
		if in := d.Instance; in.Profile != "" {
			name = " ↳" + in.Profile // a MIG instance, under its GPU
		}
		b.WriteString(FitRight(strconv.Itoa(d.Index), 3) + " " + Fit(name, 11) + " ")
		if u, ok := deviceUtil(d); ok {
			b.WriteString(st.bar(u, 12) + " " + FitRight(Percent(u), 6))
		} else {
			b.WriteString(FitRight("-", 19))
		}
		// SM activity beside utilisation: "100 %" busy can be a few SMs.
		sm := "-"
		if x, ok := m["sm_active"]; ok {
			sm = Percent(x)
		}
		b.WriteString(" " + FitRight(sm, 6))
		b.WriteString(" " + FitRight(memString(m["mem_used"], float64(d.MemoryTotal)), 13))
		pw := "-"
		if x, ok := m["power"]; ok {
			pw = Watts(x)
			if d.PowerLimit > 0 {
				pw += "/" + Watts(d.PowerLimit)
			}
		}
		b.WriteString(" " + FitRight(pw, 10))
		tmp := "-"
		if x, ok := m["temp"]; ok {
			tmp = strconv.Itoa(int(math.Round(x))) + "°C"
		}
		tcell := FitRight(tmp, 6)
		if x, ok := m["temp"]; ok && x >= 85 {
			tcell = st.Crit.Render(tcell)
		}
		b.WriteString(" " + tcell)
		if clocks {
			b.WriteString(" " + FitRight(metricInt(m, "sm_clock"), 8) + " " + FitRight(metricInt(m, "mem_clock"), 8))
		}
		if spark > 4 {
			h := hist[d.Index]
			b.WriteString("  " + st.Spark.Render(Sparkline(points(h.Util), 0, 1, spark)))
			b.WriteString("  " + st.Spark.Render(Sparkline(points(h.Power), 0, math.Max(d.PowerLimit, 1), spark)))
		}
		add(b.String())
	}
	add("")

	// Processes and their jobs.
	add(st.Section.Render("Processes"))
	if len(v.Procs) == 0 {
		add(st.Dim.Render("  no compute processes"))
	} else {
		add(st.TableHeader.Render(Fit("GPU      PID Name             Memory Job          Team      Data class", w)))
		procs := slices.Clone(v.Procs)
		slices.SortFunc(procs, func(a, b fleet.Process) int {
			if c := cmp.Compare(a.Device, b.Device); c != 0 {
				return c
			}
			return cmp.Compare(a.PID, b.PID)
		})
		for _, pr := range procs {
			add(FitRight(strconv.Itoa(pr.Device), 3) + " " + FitRight(strconv.FormatUint(uint64(pr.PID), 10), 8) + " " +
				Fit(orDash(pr.Name), 16) + " " + FitRight(Bytes(float64(pr.UsedMemory)), 6) + " " +
				Fit(orDash(pr.Job.ID), 12) + " " + Fit(orDash(pr.Job.Team), 9) + " " + orDash(pr.Job.DataClass))
		}
	}
	add("")

	// Recent events, newest first.
	add(st.Section.Render("Events"))
	if len(v.Events) == 0 {
		add(st.Dim.Render("  none recently"))
	}
	for i := len(v.Events) - 1; i >= 0; i-- {
		e := v.Events[i]
		sev := Fit(string(e.Severity), 8)
		switch e.Severity {
		case fleet.SevCritical:
			sev = st.Crit.Render(sev)
		case fleet.SevWarning:
			sev = st.Warn.Render(sev)
		}
		dev := "node"
		if e.Device >= 0 {
			dev = "GPU " + strconv.Itoa(e.Device)
		}
		add(e.Time.Local().Format("01-02 15:04:05") + " " + sev + " " + Fit(string(e.Kind), 9) + " " + Fit(dev, 6) + " " + e.Message)
	}
	return p.doc.window(lines)
}

func metricInt(m map[string]float64, name string) string {
	if x, ok := m[name]; ok {
		return strconv.Itoa(int(math.Round(x)))
	}
	return "-"
}
