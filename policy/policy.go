// Package policy holds fleettop's rules as pure logic on fleet types: data
// residency (a data class may only be processed in some jurisdictions) and
// the alert rules (critical XIDs, uncorrectable ECC, thermal, offline, idle
// leases, budgets). It keeps per-node rule state in a NodeTracker and the set
// of alerts, with their start and end, in a Book. No I/O, no clock: every time
// is passed in.
package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// DefaultCriticalXIDs are the XIDs that mean a GPU needs attention: 48 (DBE
// ECC), 63/64 (row remapping), 74 (NVLink), 79 (fallen off the bus), 94/95
// (contained/uncontained ECC).
var DefaultCriticalXIDs = []int64{48, 63, 64, 74, 79, 94, 95}

// ThermalThrottleMask holds the bits of NVML's clock-event reasons that mean thermal slowdown
// (software and hardware thermal slowdown).
const ThermalThrottleMask = 0x20 | 0x40

// Rules configures residency and the alert rules. The zero value raises
// nothing; DefaultRules is what fleettop runs with when the config is silent.
type Rules struct {
	// Residency maps a data class to the jurisdictions (ISO 3166-1 alpha-2)
	// where it may be processed. A class not listed is unrestricted.
	Residency map[string][]string
	// CriticalXIDs raise a critical alert per device and XID; it stays open
	// XIDHold after the last occurrence.
	CriticalXIDs []int64
	XIDHold      time.Duration
	// ECCUncorrected alerts while a device's volatile uncorrected ECC count
	// is above zero (or for XIDHold after an ECC event).
	ECCUncorrected bool
	// ThermalThrottle alerts while a device reports thermal slowdown.
	ThermalThrottle bool
	// TempAbove alerts while a device is hotter than this (°C); 0 disables.
	TempAbove float64
	// OfflineAfter alerts when a node has been offline (as the aggregator
	// judges it: 30 s silent by default) this long; 0 disables. The default,
	// 90 s, raises the alert within 2 minutes of the node's last word.
	OfflineAfter time.Duration
	// IdleThreshold is the utilisation (ratio 0..1) under which a GPU is idle.
	IdleThreshold float64
	// IdleAfter alerts when every GPU of a leased node has been idle this
	// long; 0 disables.
	IdleAfter time.Duration
	// BudgetWarn and BudgetCrit are the fractions of a budget at which a
	// warning and a critical alert open (0.8 and 1.0 by default).
	BudgetWarn, BudgetCrit float64
	// AlertFor and AlertClear are the hysteresis against flapping (see
	// Hysteresis): a warning opens only once its condition has held for
	// AlertFor, and an alert closes only once its condition has been clear
	// for AlertClear (30 s and 1 min by default).
	AlertFor, AlertClear time.Duration
}

// Hysteresis is the book's hold and clear windows (Book.SetHysteresis) for
// an alert of kind and severity under r. Warnings wait AlertFor; critical
// alerts open at once (an XID 79 or a residency breach is not noise). Every
// alert waits AlertClear before it closes, except those whose rule has a
// window of its own: XIDs (XIDHold after the last one), offline
// (OfflineAfter; a node back is clear at once), idle (IdleAfter) and
// budgets (a month's spend only grows).
func (r *Rules) Hysteresis(kind fleet.EventKind, sev fleet.Severity) (hold, clear time.Duration) {
	switch kind {
	case fleet.EventXID, fleet.EventOffline, fleet.EventIdle, fleet.EventBudget:
		return 0, 0
	}
	if sev != fleet.SevCritical {
		hold = r.AlertFor
	}
	return hold, r.AlertClear
}

// DefaultRules returns the rules used when the config says nothing.
func DefaultRules() Rules {
	return Rules{
		CriticalXIDs:    slices.Clone(DefaultCriticalXIDs),
		XIDHold:         time.Hour,
		ECCUncorrected:  true,
		ThermalThrottle: true,
		TempAbove:       90,
		OfflineAfter:    90 * time.Second,
		IdleThreshold:   0.05,
		IdleAfter:       2 * time.Hour,
		BudgetWarn:      0.8,
		BudgetCrit:      1.0,
		AlertFor:        30 * time.Second,
		AlertClear:      time.Minute,
	}
}

// Allowed reports whether data of class may be processed in jurisdiction.
// An empty class or a class without a rule is unrestricted.
func (r *Rules) Allowed(class, jurisdiction string) bool {
	if class == "" {
		return true
	}
	allowed, ok := r.Residency[class]
	if !ok {
		return true
	}
	for _, j := range allowed {
		if strings.EqualFold(j, jurisdiction) {
			return true
		}
	}
	return false
}

// Violation returns a one-line explanation when class may not be processed in
// jurisdiction, "" when it may.
func (r *Rules) Violation(class, jurisdiction string) string {
	if r.Allowed(class, jurisdiction) {
		return ""
	}
	j := jurisdiction
	if j == "" {
		j = "an unknown jurisdiction"
	}
	return fmt.Sprintf("data class %s may run only in %s, not in %s", class, strings.Join(r.Residency[class], ", "), j)
}

func (r *Rules) criticalXID(code int64) bool { return slices.Contains(r.CriticalXIDs, code) }

// Condition is an alert that holds now; a Book turns conditions into alerts
// with a start and an end. ID is stable for as long as the condition holds.
type Condition struct {
	ID       string
	Kind     fleet.EventKind
	Severity fleet.Severity
	Node     string
	Region   string
	Device   int
	Job      string
	Message  string
}

// NodeInfo is what the rules need to know about a node.
type NodeInfo struct {
	ID           string
	Hostname     string
	Region       string
	Jurisdiction string
	// Leased reports that the node is under an active lease (we pay for it).
	Leased bool
	// Billed and Visible are the GPUs the lease pays for and those seen
	// and not lost: fewer visible than billed is "paid but blind".
	Billed, Visible int
	// SourcesDown are the collector's sources reported down.
	SourcesDown []fleet.SourceStatus
}

// devState is the rule-relevant part of one device's latest sample.
type devState struct {
	index     int
	eccUncorr float64
	hasECC    bool
	throttle  uint64
	temp      float64
	hasTemp   bool
	util      float64
	hasUtil   bool
}

type xidKey struct {
	dev  int
	code int64
}

// NodeTracker is the rule state of one node. It is not safe for concurrent
// use: its owner locks around it.
type NodeTracker struct {
	devs      []devState
	procs     []fleet.Process
	xids      map[xidKey]time.Time // last occurrence of a critical XID
	eccEvents map[int]time.Time    // last ECC event per device
	last      time.Time            // time of the newest sample
	idle      bool
	idleSince time.Time
	offline   bool
	offSince  time.Time
}

// Procs returns the node's current process list (do not modify it).
func (t *NodeTracker) Procs() []fleet.Process { return t.procs }

// IdleSince returns when every GPU of the node went idle, and whether they are.
func (t *NodeTracker) IdleSince() (time.Time, bool) { return t.idleSince, t.idle }

// Observe folds one sample of the node into t.
func (r *Rules) Observe(t *NodeTracker, s *fleet.Sample) {
	if s.Time.After(t.last) {
		t.last = s.Time
	}
	t.offline = false
	if s.ProcsSet {
		// A copy into the tracker's own list, reused: a node's processes
		// change with nearly every sample (their utilisation), and keeping
		// the caller's list instead would need a new one each time (1 MB/s
		// of garbage at 1,250 nodes, which the GC paid for).
		t.procs = append(t.procs[:0], s.Procs...)
	}
	anyUtil, allIdle := false, true
	for i := range s.Devices {
		d := &s.Devices[i]
		st := t.dev(i, d.Index)
		st.eccUncorr, st.hasECC = d.Get(fleet.MetricECCUncorrected)
		th, _ := d.Get(fleet.MetricThrottle)
		st.throttle = uint64(th)
		st.temp, st.hasTemp = d.Get(fleet.MetricTemp)
		st.util, st.hasUtil = d.Get(fleet.MetricUtil)
		if st.hasUtil {
			anyUtil = true
			if st.util >= r.IdleThreshold {
				allIdle = false
			}
		}
	}
	switch {
	case len(s.Devices) == 0:
		// no device readings in this record: idleness unchanged
	case anyUtil && allIdle:
		if !t.idle {
			t.idle, t.idleSince = true, s.Time
		}
	default:
		t.idle = false
	}
	for _, e := range s.Events {
		switch e.Kind {
		case fleet.EventXID:
			if r.criticalXID(e.Code) {
				if t.xids == nil {
					t.xids = make(map[xidKey]time.Time)
				}
				t.xids[xidKey{e.Device, e.Code}] = e.Time
			}
		case fleet.EventECC:
			if r.ECCUncorrected && e.Severity == fleet.SevCritical {
				if t.eccEvents == nil {
					t.eccEvents = make(map[int]time.Time)
				}
				t.eccEvents[e.Device] = e.Time
			}
		}
	}
}

// dev returns the state of device index, made on first sight; a node's
// samples list its devices in the same order each time, so position hint
// is tried first.
func (t *NodeTracker) dev(hint, index int) *devState {
	if hint < len(t.devs) && t.devs[hint].index == index {
		return &t.devs[hint]
	}
	for i := range t.devs {
		if t.devs[i].index == index {
			return &t.devs[i]
		}
	}
	t.devs = append(t.devs, devState{index: index})
	return &t.devs[len(t.devs)-1]
}

// SetState records the aggregator's view of the node (wire.StateOnline,
// "stale", "offline") at time at.
func (r *Rules) SetState(t *NodeTracker, state string, at time.Time) {
	if state == "offline" {
		if !t.offline {
			t.offline, t.offSince = true, at
		}
		return
	}
	t.offline = false
}

// Conditions appends to dst every condition that holds on the node at now,
// in a stable order. Device conditions are judged on the newest sample;
// durations (XID hold, idle) on sample times; offline on aggregator time.
//
// It runs on every sample, on the collector session's goroutine: each kind
// is judged by a function of its own, so that their message formatting does
// not add up in one stack frame (a session's stack is sized by its deepest
// call, and 1,250 sessions hold 1,250 stacks).
func (r *Rules) Conditions(t *NodeTracker, n NodeInfo, now time.Time, dst []Condition) []Condition {
	j := judging{r: r, t: t, n: n, host: n.Hostname, base: Condition{Node: n.ID, Region: n.Region, Device: -1}}
	if j.host == "" {
		j.host = n.ID
	}
	dst = j.residency(dst)
	for i := range t.devs {
		dst = j.device(&t.devs[i], dst)
	}
	if len(t.xids) > 0 {
		dst = j.xids(dst)
	}
	if r.IdleAfter > 0 && n.Leased && t.idle && !t.offline && t.last.Sub(t.idleSince) >= r.IdleAfter {
		dst = j.idle(dst)
	}
	if n.Leased && !t.offline && n.Visible < n.Billed {
		dst = j.blind(dst)
	}
	if !t.offline {
		for _, s := range n.SourcesDown {
			dst = j.source(s, dst)
		}
	}
	if r.OfflineAfter > 0 && t.offline && now.Sub(t.offSince) >= r.OfflineAfter {
		dst = j.offline(dst)
	}
	return dst
}

// judging is one node's Conditions call.
type judging struct {
	r    *Rules
	t    *NodeTracker
	n    NodeInfo
	host string    // the hostname, else the id
	base Condition // node and region set
}

// residency: one condition per job and node, in process order.
func (j *judging) residency(dst []Condition) []Condition {
	t, n := j.t, &j.n
	for i, p := range t.procs {
		if p.Job.ID == "" || j.r.Allowed(p.Job.DataClass, n.Jurisdiction) {
			continue
		}
		if slices.ContainsFunc(t.procs[:i], func(q fleet.Process) bool { return q.Job.ID == p.Job.ID }) {
			continue
		}
		c := j.base
		c.ID = "residency/" + p.Job.ID + "/" + n.ID
		c.Kind, c.Severity, c.Job = fleet.EventResidency, fleet.SevCritical, p.Job.ID
		c.Message = fmt.Sprintf("job %s on %s: %s", p.Job.ID, j.host, j.r.Violation(p.Job.DataClass, n.Jurisdiction))
		dst = append(dst, c)
	}
	return dst
}

// device: uncorrectable ECC errors (counted, or an event within XIDHold)
// and thermal throttling or heat.
func (j *judging) device(d *devState, dst []Condition) []Condition {
	r, t, id := j.r, j.t, j.n.ID
	if r.ECCUncorrected && d.hasECC && d.eccUncorr > 0 {
		c := j.base
		c.ID = fmt.Sprintf("ecc/%s/%d", id, d.index)
		c.Kind, c.Severity, c.Device = fleet.EventECC, fleet.SevCritical, d.index
		c.Message = fmt.Sprintf("%s GPU %d: %.0f uncorrectable ECC errors", j.host, d.index, d.eccUncorr)
		dst = append(dst, c)
	} else if at, ok := t.eccEvents[d.index]; ok && r.XIDHold > 0 && t.last.Sub(at) < r.XIDHold {
		c := j.base
		c.ID = fmt.Sprintf("ecc/%s/%d", id, d.index)
		c.Kind, c.Severity, c.Device = fleet.EventECC, fleet.SevCritical, d.index
		c.Message = fmt.Sprintf("%s GPU %d: uncorrectable ECC error", j.host, d.index)
		dst = append(dst, c)
	}
	throttled := r.ThermalThrottle && d.throttle&ThermalThrottleMask != 0
	hot := r.TempAbove > 0 && d.hasTemp && d.temp > r.TempAbove
	if throttled || hot {
		c := j.base
		c.ID = fmt.Sprintf("thermal/%s/%d", id, d.index)
		c.Kind, c.Severity, c.Device = fleet.EventThermal, fleet.SevWarning, d.index
		if throttled {
			c.Message = fmt.Sprintf("%s GPU %d: thermal throttling", j.host, d.index)
		} else {
			c.Message = fmt.Sprintf("%s GPU %d: above %.0f °C", j.host, d.index, r.TempAbove)
		}
		dst = append(dst, c)
	}
	return dst
}

// xids: one condition per device and XID code seen within XIDHold.
func (j *judging) xids(dst []Condition) []Condition {
	r, t := j.r, j.t
	keys := make([]xidKey, 0, len(t.xids))
	for k, at := range t.xids {
		if r.XIDHold > 0 && t.last.Sub(at) >= r.XIDHold {
			delete(t.xids, k)
			continue
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b xidKey) int {
		if a.dev != b.dev {
			return a.dev - b.dev
		}
		return int(a.code - b.code)
	})
	for _, k := range keys {
		c := j.base
		c.ID = fmt.Sprintf("xid/%s/%d/%d", j.n.ID, k.dev, k.code)
		c.Kind, c.Severity, c.Device = fleet.EventXID, fleet.SevCritical, k.dev
		c.Message = fmt.Sprintf("%s GPU %d: %s", j.host, k.dev, fleet.XIDText(k.code))
		dst = append(dst, c)
	}
	return dst
}

func (j *judging) idle(dst []Condition) []Condition {
	t := j.t
	c := j.base
	c.ID = "idle/" + j.n.ID
	c.Kind, c.Severity = fleet.EventIdle, fleet.SevWarning
	c.Message = fmt.Sprintf("%s: leased and idle (under %.0f%%) for %s", j.host, j.r.IdleThreshold*100, roundDur(t.last.Sub(t.idleSince)))
	return append(dst, c)
}

func (j *judging) blind(dst []Condition) []Condition {
	c := j.base
	c.ID = "blind/" + j.n.ID
	c.Kind, c.Severity = fleet.EventBlind, fleet.SevWarning
	c.Message = fmt.Sprintf("%s: paid but blind: the lease pays for %d GPUs, %d visible", j.host, j.n.Billed, j.n.Visible)
	return append(dst, c)
}

func (j *judging) source(s fleet.SourceStatus, dst []Condition) []Condition {
	c := j.base
	c.ID = "source/" + j.n.ID + "/" + s.Name
	c.Kind, c.Severity = fleet.EventSource, fleet.SevWarning
	c.Message = fmt.Sprintf("%s: source %s down: %s", j.host, s.Name, s.Reason)
	return append(dst, c)
}

func (j *judging) offline(dst []Condition) []Condition {
	c := j.base
	c.ID = "offline/" + j.n.ID
	c.Kind, c.Severity = fleet.EventOffline, fleet.SevWarning
	c.Message = fmt.Sprintf("%s: offline since %s", j.host, j.t.offSince.UTC().Format(time.RFC3339))
	return append(dst, c)
}

// Budget conditions: spent and budget are micro-units of the same currency.
// scope is "region" or "team"; group the region or team name.
func (r *Rules) Budget(scope, group string, spent, budget int64, currency string, dst []Condition) []Condition {
	if budget <= 0 {
		return dst
	}
	ratio := float64(spent) / float64(budget)
	c := Condition{Kind: fleet.EventBudget, Device: -1}
	if scope == "region" {
		c.Region = group
	}
	pct := func(f float64) int { return int(f*100 + 0.5) }
	for _, th := range []struct {
		at  float64
		sev fleet.Severity
	}{{r.BudgetWarn, fleet.SevWarning}, {r.BudgetCrit, fleet.SevCritical}} {
		if th.at <= 0 || ratio < th.at {
			continue
		}
		c.ID = fmt.Sprintf("budget/%s/%s/%d", scope, group, pct(th.at))
		c.Severity = th.sev
		c.Message = fmt.Sprintf("%s %s: %d%% of the monthly budget %s reached", scope, group,
			pct(th.at), fleet.Money{Micros: budget, Currency: currency})
		dst = append(dst, c)
	}
	return dst
}

func roundDur(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}
