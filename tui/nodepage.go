package tui

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// ---- Node ----

type nodePage struct{ docPage[NodeRow] }

func newNodePage(sh *shared) *nodePage {
	return &nodePage{newDocPage(sh, "Node", (*Snapshot).Node, (*Snapshot).firstNodeID)}
}

// Target is the node shown and its aggregator; ok is false when none.
func (p *nodePage) Target() (agg int, id string, ok bool) {
	if p.row == nil {
		return 0, "", false
	}
	return p.row.Agg, p.row.View.ID, true
}

// View draws the node in sections: who and what it costs, its history
// over the range picked, its GPUs, its processes and its recent events.
func (p *nodePage) View() string {
	st := p.sh.st
	if p.row == nil {
		if p.id == "" {
			return st.Dim.Render("No node yet. Pick one in Nodes (2) and press enter.")
		}
		return st.Warn.Render("Node " + p.id + " is no longer reported by any aggregator.")
	}
	d := nodeDoc{sh: p.sh, w: p.doc.w, r: p.row, v: p.row.View}
	d.header()
	d.graphs()
	d.devices()
	d.processes()
	d.events()
	return p.doc.window(d.lines)
}

// nodeDoc is the Node view being laid out, line by line.
type nodeDoc struct {
	sh    *shared
	w     int
	r     *NodeRow
	v     *wire.NodeView
	lines []string
}

func (d *nodeDoc) add(s string)         { d.lines = append(d.lines, Fit(s, d.w)) }
func (d *nodeDoc) lbl(l string) string  { return d.sh.st.Label.Render(l) }
func (d *nodeDoc) section(title string) { d.add(d.sh.st.Section.Render(title)) }
func (d *nodeDoc) dim(s string)         { d.add(d.sh.st.Dim.Render(s)) }
func (d *nodeDoc) blank()               { d.lines = append(d.lines, "") }
func (d *nodeDoc) join(parts []string)  { d.add(strings.Join(parts, "  ")) }

// header: the node's name, place and state; its lease and burn; its
// sources' health; its host.
func (d *nodeDoc) header() {
	st, v := d.sh.st, d.v
	stc := stateText(d.sh, v)
	title := st.Value.Render(orDash(v.Hostname))
	if v.ID != v.Hostname { // the id only when it tells something new
		title += " " + st.Dim.Render("("+v.ID+")")
	}
	title += "  " + v.Region + "/" + v.Jurisdiction + "  " + v.Provider
	if v.Site != "" {
		title += " · " + d.lbl("site ") + v.Site
	}
	d.add(title + "  " + stc.style.Render(stc.text))
	d.add(d.leaseLine())
	if len(v.Sources) > 0 || v.GPUsBlind > 0 {
		// Each collector source's health, and GPUs paid for but not seen.
		src := []string{d.lbl("Sources")}
		for _, s := range v.Sources {
			if s.Up {
				src = append(src, st.OK.Render(s.Name+" up"))
			} else {
				src = append(src, st.Crit.Render(s.Name+" down")+" "+Fit(s.Reason, 40))
			}
		}
		if v.GPUsBlind > 0 {
			src = append(src, st.Warn.Render("paid but blind: "+strconv.Itoa(v.GPUsBlind)+" of "+strconv.Itoa(v.GPUs)+" GPUs not visible"))
		}
		d.join(src)
	}
	host := []string{}
	if x, ok := v.Host["cpu_util"]; ok {
		host = append(host, d.lbl("CPU ")+Percent(x))
	}
	if x, ok := v.Host["load1"]; ok {
		host = append(host, d.lbl("load ")+strconv.FormatFloat(x, 'f', 1, 64))
	}
	if u, ok := v.Host["mem_used"]; ok {
		host = append(host, d.lbl("RAM ")+memString(u, v.Host["mem_total"]))
	}
	host = append(host, d.lbl("seq ")+strconv.FormatUint(v.Seq, 10), d.lbl("gaps ")+strconv.FormatUint(v.Gaps, 10))
	d.join(host)
	d.blank()
}

func (d *nodeDoc) leaseLine() string {
	v, r := d.v, d.r
	cur := d.sh.snap.Currency
	lease := d.lbl("Lease ") + orDash(v.Lease.ID)
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
		if now := d.sh.now; !now.IsZero() && v.Lease.End.After(now) {
			lease += " (in " + Duration(v.Lease.End.Sub(now)) + ")"
		}
	}
	return lease + "   " + d.lbl("Burn ") + Money(r.Burn, cur) + "/h  " + d.lbl("Idle ") + Money(r.IdleBurn, cur) + "/h"
}

// graphs: the node's utilisation and power over the range picked.
func (d *nodeDoc) graphs() {
	h := &d.sh.hist
	rng := h.Range().Name
	all, _, ok := h.forNode(d.v.ID)
	if !ok {
		d.dim(Fit("History "+rng, 16) + " loading…  ([ ] picks 1m 15m 1h 24h 7d)")
		d.blank()
		return
	}
	limit := 0.0
	for i := range d.v.Devices {
		limit += d.v.Devices[i].PowerLimit
	}
	if limit <= 0 {
		limit = math.NaN() // scale to the highest point
	}
	d.add(graph(d.sh.st, "Utilisation", rng, all.util, 0, 1, Percent, d.w))
	d.add(graph(d.sh.st, "Power", rng, all.power, 0, limit, Watts, d.w))
	d.blank()
}

// devices: one row per GPU (MIG instances under theirs), with the range's
// utilisation and power sparklines when the screen is wide enough.
func (d *nodeDoc) devices() {
	st, v := d.sh.st, d.v
	_, hist, _ := d.sh.hist.forNode(v.ID)
	rng := d.sh.hist.Range().Name
	clocks := d.w >= 96
	// The columns as deviceRow draws them.
	hdr := FitRight("GPU", 3) + " " + Fit("Model", 11) + " " + Fit("Utilisation", 19) + " " + FitRight("SM act", 6) + " " +
		FitRight("Memory", 13) + " " + FitRight("Power", 10) + " " + FitRight("Temp", 6)
	if clocks {
		hdr += " " + FitRight("SM MHz", 8) + " " + FitRight("Mem MHz", 8)
	}
	rowW := cellWidth(hdr)
	spark := max(0, min(30, (d.w-rowW-4)/2)) // what the figures leave, in two columns
	if spark > 4 {
		hdr = Fit(hdr, rowW) + "  " + Fit("Util "+rng, spark) + "  " + Fit("Power "+rng, spark)
	}
	d.add(st.TableHeader.Render(Fit(hdr, d.w)))
	for i := range v.Devices {
		dv := &v.Devices[i]
		row := deviceRow(st, dv, clocks)
		if spark > 4 {
			h := hist[dv.Index]
			row += "  " + st.Spark.Render(Sparkline(Downsample(h.util, spark), 0, 1, spark))
			row += "  " + st.Spark.Render(Sparkline(Downsample(h.power, spark), 0, math.Max(dv.PowerLimit, 1), spark))
		}
		d.add(row)
	}
	d.blank()
}

// deviceRow is one GPU's figures now.
func deviceRow(st *Styles, d *wire.DeviceView, clocks bool) string {
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
	return b.String()
}

// processes: the compute processes and their jobs, by GPU then PID.
func (d *nodeDoc) processes() {
	d.section("Processes")
	if len(d.v.Procs) == 0 {
		d.dim("  no compute processes")
		d.blank()
		return
	}
	d.add(d.sh.st.TableHeader.Render(Fit("GPU      PID Name             Memory Job          Team      Data class", d.w)))
	procs := slices.Clone(d.v.Procs)
	slices.SortFunc(procs, func(a, b fleet.Process) int {
		if c := cmp.Compare(a.Device, b.Device); c != 0 {
			return c
		}
		return cmp.Compare(a.PID, b.PID)
	})
	for _, pr := range procs {
		d.add(FitRight(strconv.Itoa(pr.Device), 3) + " " + FitRight(strconv.FormatUint(uint64(pr.PID), 10), 8) + " " +
			Fit(orDash(pr.Name), 16) + " " + FitRight(Bytes(float64(pr.UsedMemory)), 6) + " " +
			Fit(orDash(pr.Job.ID), 12) + " " + Fit(orDash(pr.Job.Team), 9) + " " + orDash(pr.Job.DataClass))
	}
	d.blank()
}

// events: the node's recent events, newest first.
func (d *nodeDoc) events() {
	st := d.sh.st
	d.section("Events")
	if len(d.v.Events) == 0 {
		d.dim("  none recently")
	}
	for i := len(d.v.Events) - 1; i >= 0; i-- {
		e := d.v.Events[i]
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
		d.add(e.Time.Local().Format("01-02 15:04:05") + " " + sev + " " + Fit(string(e.Kind), 9) + " " + Fit(dev, 6) + " " + e.Message)
	}
}

func metricInt(m map[string]float64, name string) string {
	if x, ok := m[name]; ok {
		return strconv.Itoa(int(math.Round(x)))
	}
	return "-"
}
