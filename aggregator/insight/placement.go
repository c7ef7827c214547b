package insight

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/store"
)

// Placement is the money and policy state of the nodes that share a region,
// provider and jurisdiction, in the display currency: what the Prometheus
// exporter publishes.
type Placement struct {
	Region, Provider, Jurisdiction string
	GPUs                           int
	BurnPerHour                    fleet.Money
	// SpendMonth and IdleSpendMonth are this calendar month's (UTC) spend
	// and idle spend so far; they reset when a month starts.
	SpendMonth     fleet.Money
	IdleSpendMonth fleet.Money
	// Violations counts (job, node) pairs breaking a residency rule now.
	Violations int
	// AlertsOpen counts open alerts of the placement's nodes by severity.
	AlertsOpen map[fleet.Severity]int
}

type placeKey struct{ region, provider, jurisdiction string }

type placeAcc struct {
	gpus              int
	burn, spend, idle cost.Sums
	viol              int
	alerts            map[fleet.Severity]int
}

// Placements returns the fleet's money and policy state grouped by region,
// provider and jurisdiction, sorted by those. Money is the same as
// Summarize's (the ledger's, with a store, on the ledger's clock), and each
// figure is apportioned so that the placements add up to the fleet figure to
// the micro-unit. Alerts that belong to no node (budgets) are not counted
// here.
func (e *Engine) Placements(now time.Time) []Placement {
	mnow := now
	if e.clock != nil {
		mnow = e.clock()
	}
	cal := e.day(mnow)
	ms, mk := cal.monthStart, cal.mk
	var led map[string][]store.NodeLine
	var places map[string]store.NodePlace
	if e.st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		lg, err := e.st.LiveLedger(ctx, ms, mnow)
		cancel()
		if err != nil {
			e.log.Warn("read the ledger: placements count this run only", "err", err)
		} else {
			led, places = byNode(map[string][]store.NodeLine{}, lg.Lines), lg.Places
		}
	}
	accs := map[placeKey]*placeAcc{}
	acc := func(k placeKey) *placeAcc {
		a := accs[k]
		if a == nil {
			a = &placeAcc{alerts: map[fleet.Severity]int{}}
			accs[k] = a
		}
		return a
	}
	nodeKey := map[string]placeKey{}
	e.eachNode(func(id string, ns *costNode) {
		k := placeKey{ns.info.Region, ns.provider, ns.info.Jurisdiction}
		nodeKey[id] = k
		a := acc(k)
		v, leased := ns.terms(mnow)
		billed := v.GPUs
		if billed <= 0 {
			billed = len(ns.devs)
		}
		a.gpus += billed
		if leased {
			a.burn.AddMicros(v.Price.Micros*int64(billed), v.Price.Currency)
		}
		switch {
		case led != nil:
			a.spend.Merge(spendOf(led[id], false))
			a.idle.Merge(spendOf(led[id], true))
		default:
			a.spend.Merge(ns.accrue(ms, mnow))
			if k := len(ns.versions); k > 0 && ns.month.key == mk {
				a.idle.Add(ns.month.idle, ns.versions[k-1].Price.Currency)
			}
		}
		for _, c := range ns.active {
			if c.Kind == fleet.EventResidency {
				a.viol++
			}
		}
	})
	for id, lines := range led { // billed by the ledger, not seen since the engine started
		if _, ok := nodeKey[id]; ok {
			continue
		}
		p := places[id]
		a := acc(placeKey{p.Region, p.Provider, p.Jurisdiction})
		a.spend.Merge(spendOf(lines, false))
		a.idle.Merge(spendOf(lines, true))
	}
	for _, al := range e.book.Alerts(now) {
		if !al.Open() {
			continue
		}
		if k, ok := nodeKey[al.Node]; ok {
			accs[k].alerts[al.Severity]++
		}
	}
	keys := make([]placeKey, 0, len(accs))
	for k := range accs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y placeKey) int {
		return strings.Compare(x.region+"\x00"+x.provider+"\x00"+x.jurisdiction, y.region+"\x00"+y.provider+"\x00"+y.jurisdiction)
	})
	out := make([]Placement, len(keys))
	for i, k := range keys {
		a := accs[k]
		out[i] = Placement{Region: k.region, Provider: k.provider, Jurisdiction: k.jurisdiction, GPUs: a.gpus,
			Violations: a.viol, AlertsOpen: a.alerts}
	}
	for _, f := range []struct {
		part  func(a *placeAcc) *cost.Sums
		field func(p *Placement) *fleet.Money
	}{
		{func(a *placeAcc) *cost.Sums { return &a.burn }, func(p *Placement) *fleet.Money { return &p.BurnPerHour }},
		{func(a *placeAcc) *cost.Sums { return &a.spend }, func(p *Placement) *fleet.Money { return &p.SpendMonth }},
		{func(a *placeAcc) *cost.Sums { return &a.idle }, func(p *Placement) *fleet.Money { return &p.IdleSpendMonth }},
	} {
		var all cost.Sums
		parts := make([]*cost.Sums, len(keys))
		for i, k := range keys {
			parts[i] = f.part(accs[k])
			all.Merge(*parts[i])
		}
		total := e.conv(&all)
		for i, v := range e.splitExact(total.Micros, parts) {
			*f.field(&out[i]) = fleet.Money{Micros: v, Currency: total.Currency}
		}
	}
	return out
}
