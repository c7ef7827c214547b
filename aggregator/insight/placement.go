package insight

import (
	"slices"
	"strings"
	"time"

	"github.com/fleettop/fleettop/fleet"
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
	burn, spend, idle multi
	viol              int
	alerts            map[fleet.Severity]int
}

// Placements returns the fleet's money and policy state grouped by region,
// provider and jurisdiction, sorted by those. Alerts that belong to no node
// (budgets) are not counted here.
func (e *Engine) Placements(now time.Time) []Placement {
	ms, mk := e.monthStart(now), e.monthKey(now)
	accs := map[placeKey]*placeAcc{}
	nodeKey := map[string]placeKey{}
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for id, ns := range sh.nodes {
			k := placeKey{ns.info.Region, ns.provider, ns.info.Jurisdiction}
			nodeKey[id] = k
			a := accs[k]
			if a == nil {
				a = &placeAcc{burn: multi{}, spend: multi{}, idle: multi{}, alerts: map[fleet.Severity]int{}}
				accs[k] = a
			}
			a.gpus += len(ns.devs)
			a.spend.merge(ns.accrue(ms, now))
			if v, ok := ns.terms(now); ok {
				a.burn.addMicros(v.Price.Micros*int64(len(ns.devs)), v.Price.Currency)
			}
			if k := len(ns.versions); k > 0 && ns.month.key == mk {
				a.idle.add(ns.month.idle, ns.versions[k-1].Price.Currency)
			}
			for _, c := range ns.active {
				if c.Kind == fleet.EventResidency {
					a.viol++
				}
			}
		}
		sh.mu.Unlock()
	}
	for _, al := range e.book.Alerts(now) {
		if !al.Open() {
			continue
		}
		if k, ok := nodeKey[al.Node]; ok {
			accs[k].alerts[al.Severity]++
		}
	}
	out := make([]Placement, 0, len(accs))
	for k, a := range accs {
		out = append(out, Placement{Region: k.region, Provider: k.provider, Jurisdiction: k.jurisdiction, GPUs: a.gpus,
			BurnPerHour: e.conv(a.burn), SpendMonth: e.conv(a.spend), IdleSpendMonth: e.conv(a.idle),
			Violations: a.viol, AlertsOpen: a.alerts})
	}
	slices.SortFunc(out, func(x, y Placement) int {
		return strings.Compare(x.Region+"\x00"+x.Provider+"\x00"+x.Jurisdiction, y.Region+"\x00"+y.Provider+"\x00"+y.Jurisdiction)
	})
	return out
}
