package insight

import (
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/policy"
	"github.com/fleettop/fleettop/wire"
)

// multi sums exact money in several currencies; it is rounded and converted
// once, at the end.
type multi map[string]cost.Exact

func (m multi) add(e cost.Exact, currency string) {
	if !e.IsZero() {
		m[currency] = m[currency].Add(e)
	}
}

func (m multi) addMicros(micros int64, currency string) {
	if micros != 0 {
		m.add(cost.MakeExact(micros, 0), currency)
	}
}

func (m multi) merge(o multi) {
	for c, e := range o {
		m.add(e, c)
	}
}

// accrue returns what the node's lease charges over [from, to).
func (ns *costNode) accrue(from, to time.Time) multi {
	m := multi{}
	if len(ns.versions) == 0 || !to.After(from) {
		return m
	}
	for _, a := range cost.Accrue(ns.versions, ns.origin, from, to) {
		m.add(a.Charge, a.Currency)
	}
	return m
}

// prepaid returns what the node's hourly-billed lease charged ahead over
// [from, to): its accrual less the same lease billed per second.
func (ns *costNode) prepaid(from, to time.Time) multi {
	hourly := false
	for _, v := range ns.versions {
		hourly = hourly || v.Billing == fleet.BillPerStartedHour
	}
	m := multi{}
	if !hourly || !to.After(from) {
		return m
	}
	per := slices.Clone(ns.versions)
	for i := range per {
		per[i].Billing = fleet.BillPerSecond
	}
	for _, a := range cost.Accrue(ns.versions, ns.origin, from, to) {
		m.add(a.Charge, a.Currency)
	}
	for _, a := range cost.Accrue(per, ns.origin, from, to) {
		m.add(cost.MakeExact(0, 0).Sub(a.Charge), a.Currency)
	}
	return m
}

// line accumulates one CostLine.
type line struct {
	gpus                                  int
	burn, idleBurn, today, month, idleMon multi
	proj                                  multi // month so far plus the lease's accrual to month end
}

func newLine() *line {
	return &line{burn: multi{}, idleBurn: multi{}, today: multi{}, month: multi{}, idleMon: multi{}, proj: multi{}}
}

type jobAgg struct {
	job     fleet.Job
	regions map[string]struct{}
	jurs    map[string]struct{}
	nodes   map[string]struct{}
	gpus    int
	utilSum float64
	utilN   int
	burn    multi
	spend   multi
	viol    string
}

// Summarize implements aggregator.Insights.
func (e *Engine) Summarize(now time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	// Money runs on the ledger's clock (simulated in the demo), so that
	// "today" is the day the store books samples and leases in.
	mnow := now
	if e.clock != nil {
		mnow = e.clock()
	}
	ms, ds := e.monthStart(mnow), e.dayStart(mnow)
	me := ms.AddDate(0, 1, 0)
	dk, mk := e.dayKey(mnow), e.monthKey(mnow)
	thr := e.cfg.Rules.IdleThreshold

	var sum wire.Summary
	burn, idleBurn, today, month, proj, blindBurn := multi{}, multi{}, multi{}, multi{}, multi{}, multi{}
	prepaid := multi{}
	groups := map[[2]string]*line{}
	group := func(by, g string) *line {
		if g == "" {
			g = noGroup
		}
		l := groups[[2]string{by, g}]
		if l == nil {
			l = newLine()
			groups[[2]string{by, g}] = l
		}
		return l
	}
	jobs := map[string]*jobAgg{}
	var ending []wire.LeaseEnding
	var utilSum float64
	var utilN int
	var trs []policy.Transition
	var conds []policy.Condition

	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for id, ns := range sh.nodes {
			gpus, lost := len(ns.devs), 0
			for i := range ns.devs {
				if ns.devs[i].lost {
					lost++
				}
			}
			sum.GPUsLost += lost
			switch ns.state {
			case wire.StateOffline:
				sum.NodesOffline++
				sum.GPUsOffline += gpus - lost
			case wire.StateStale:
				sum.NodesStale++
				sum.GPUsStale += gpus - lost
			case wire.StateDegraded:
				sum.NodesDegraded++
				sum.GPUsOnline += gpus - lost
			default:
				sum.NodesOnline++
				sum.GPUsOnline += gpus - lost
			}
			online := ns.state == "" || ns.state == wire.StateOnline || ns.state == wire.StateDegraded
			lines := [3]*line{group("region", ns.info.Region), group("provider", ns.provider), group("model", ns.model)}
			nodeToday, nodeMonth := ns.accrue(ds, mnow), ns.accrue(ms, mnow)
			c, hasCarry := e.carry[id]
			if hasCarry && e.carryDay == dk {
				nodeToday.merge(c.today)
			}
			if hasCarry && e.carryMonth == mk {
				nodeMonth.merge(c.month)
			}
			today.merge(nodeToday)
			prepaid.merge(ns.prepaid(ds, mnow))
			month.merge(nodeMonth)
			nodeRest := ns.accrue(mnow, me)
			proj.merge(nodeMonth)
			proj.merge(nodeRest)
			per, leased := ns.terms(mnow)
			if !leased {
				per.Price.Micros = 0
			} else if end := per.End; !end.IsZero() && end.Sub(mnow) <= e.cfg.LeasesEndingWithin {
				ending = append(ending, wire.LeaseEnding{Node: id, Lease: ns.leaseID, GPUs: max(per.GPUs, gpus), End: end})
			}
			cur := per.Price.Currency
			// The lease bills per.GPUs whatever the sensors see: GPUs it
			// pays for beyond the devices enumerated are idle and nobody's
			// (paid but blind, with the lost ones).
			billed := per.GPUs
			if billed <= 0 {
				billed = len(ns.devs)
			}
			blind := max(0, billed-len(ns.devs))
			idleGPUs := blind
			for k := range ns.devs {
				d := &ns.devs[k]
				if online && !d.lost && d.hasUtil {
					utilSum += d.util
					utilN++
				}
				if k < billed && (!online || d.idle(thr)) {
					idleGPUs++
				}
				if k < billed && d.lost {
					blind++
				}
			}
			nodeBurn := per.Price.Micros * int64(billed)
			nodeIdle := per.Price.Micros * int64(idleGPUs)
			burn.addMicros(nodeBurn, cur)
			idleBurn.addMicros(nodeIdle, cur)
			if blind > 0 {
				sum.GPUsBlind += blind
				blindBurn.addMicros(per.Price.Micros*int64(blind), cur)
			}
			var idleM cost.Exact
			if ns.month.key == mk {
				idleM = ns.month.idle
			}
			for _, l := range lines {
				l.gpus += billed
				l.burn.addMicros(nodeBurn, cur)
				l.idleBurn.addMicros(nodeIdle, cur)
				l.today.merge(nodeToday)
				l.month.merge(nodeMonth)
				l.proj.merge(nodeMonth)
				l.proj.merge(nodeRest)
				l.idleMon.add(idleM, cur)
				if hasCarry && e.carryMonth == mk {
					l.idleMon.merge(c.idleMonth)
				}
			}
			// Teams: the node's spend split by the teams whose jobs held its
			// GPUs (sampled), the rest (dark time, prepaid hours, what the
			// ledger carried over a restart) unattributed, so the teams are a
			// partition of the fleet figure; and the burn of the GPUs their
			// jobs hold now.
			var dayTeams, monthTeams map[string]*cost.Exact
			if ns.day.key == dk {
				dayTeams = ns.day.teams
			}
			if ns.month.key == mk {
				monthTeams = ns.month.teams
			}
			splitTeams(nodeToday, dayTeams, cur, func(t string) multi { return group("team", t).today })
			splitTeams(nodeMonth, monthTeams, cur, func(t string) multi { return group("team", t).month })
			procs := ns.tracker.Procs()
			if extra := billed - len(ns.devs); extra > 0 {
				l := group("team", noGroup)
				l.gpus += extra
				l.burn.addMicros(per.Price.Micros*int64(extra), cur)
				l.idleBurn.addMicros(per.Price.Micros*int64(extra), cur)
			}
			for k, d := range ns.devs {
				if k >= billed {
					break // seen but not billed
				}
				team, job := noGroup, fleet.Job{}
				for _, p := range procs {
					if p.Device == d.index && p.Job.ID != "" {
						job = p.Job
						if job.Team != "" {
							team = job.Team
						}
						break
					}
				}
				l := group("team", team)
				l.gpus++
				l.burn.addMicros(per.Price.Micros, cur)
				if !online || d.idle(thr) {
					l.idleBurn.addMicros(per.Price.Micros, cur)
				}
				if job.ID == "" {
					continue
				}
				ja := jobs[job.ID]
				if ja == nil {
					ja = &jobAgg{job: job, regions: map[string]struct{}{}, jurs: map[string]struct{}{}, nodes: map[string]struct{}{}, burn: multi{}, spend: multi{}}
					jobs[job.ID] = ja
				}
				ja.gpus++
				ja.regions[ns.info.Region] = struct{}{}
				ja.jurs[ns.info.Jurisdiction] = struct{}{}
				if _, seen := ja.nodes[id]; !seen {
					ja.nodes[id] = struct{}{}
					if a := ns.jobs[job.ID]; a != nil {
						ja.spend.add(*a, cur)
					}
				}
				if d.hasUtil {
					ja.utilSum += d.util
					ja.utilN++
				}
				ja.burn.addMicros(per.Price.Micros, cur)
				if ja.viol == "" {
					if v := e.cfg.Rules.Violation(job.DataClass, ns.info.Jurisdiction); v != "" {
						ja.viol = v
					}
				}
			}
			// Time-driven rules (offline) on the aggregator's clock.
			ns.info.Leased = ns.leasedAt(now)
			conds = e.cfg.Rules.Conditions(&ns.tracker, ns.info, now, conds[:0])
			if !sameConds(ns.active, conds) {
				ns.active = slices.Clone(conds)
				trs = append(trs, e.book.Sync("node/"+id, conds, now)...)
			}
		}
		sh.mu.Unlock()
	}

	cur := e.cfg.Currency
	sum.Currency = cur
	if utilN > 0 {
		sum.Util = utilSum / float64(utilN)
	}
	sum.BurnPerHour = e.conv(burn)
	sum.IdleBurnPerHour = e.conv(idleBurn)
	sum.BlindBurnPerHour = e.conv(blindBurn)
	sum.SpendToday = e.conv(today)
	sum.PrepaidToday = e.conv(prepaid)
	sum.SpendMonth = e.conv(month)
	sum.ProjectedMonth = e.conv(proj)

	// Budgets.
	var budget []policy.Condition
	keys := make([][2]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := strings.Compare(byOrder(a[0]), byOrder(b[0])); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	for _, k := range keys {
		l := groups[k]
		cl := wire.CostLine{By: k[0], Group: k[1], GPUs: l.gpus, BurnPerHour: e.conv(l.burn), IdleBurn: e.conv(l.idleBurn),
			SpendToday: e.conv(l.today), SpendMonth: e.conv(l.month), IdleSpend: e.conv(l.idleMon), ProjectedMonth: e.conv(l.proj)}
		var b int64
		switch k[0] {
		case "region":
			b = e.cfg.RegionBudgets[k[1]]
		case "team":
			b = e.cfg.TeamBudgets[k[1]]
		}
		if b > 0 {
			cl.Budget = fleet.Money{Micros: b, Currency: cur}
			budget = e.cfg.Rules.Budget(k[0], k[1], cl.SpendMonth.Micros, b, cur, budget)
		}
		sum.Costs = append(sum.Costs, cl)
	}
	trs = append(trs, e.book.Sync("budget", budget, now)...)
	e.apportion(&sum, keys, groups, map[string]multi{"burn": burn, "idle": idleBurn, "today": today, "month": month, "proj": proj})

	slices.SortFunc(ending, func(a, b wire.LeaseEnding) int {
		if c := a.End.Compare(b.End); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	sum.LeasesEnding = ending

	views := make([]wire.JobView, 0, len(jobs))
	for _, ja := range jobs {
		v := wire.JobView{Job: ja.job, Regions: sortStrings(ja.regions), Jurisdictions: sortStrings(ja.jurs),
			Nodes: sortStrings(ja.nodes), GPUs: ja.gpus, BurnPerHour: e.conv(ja.burn), Spend: e.conv(ja.spend),
			Allowed: ja.viol == "", Violation: ja.viol}
		if ja.utilN > 0 {
			v.Util = ja.utilSum / float64(ja.utilN)
		}
		views = append(views, v)
	}
	slices.SortFunc(views, func(a, b wire.JobView) int { return strings.Compare(a.ID, b.ID) })

	e.emit(trs)
	sum.AlertsOpen = e.book.OpenCount()
	return sum, views, e.book.Alerts(now)
}

// splitTeams adds a node's spend (all of it) to its teams: each team its
// sampled share, and what is left unattributed. The sampled shares count
// from the previous sample and the accrual from the node's origin, so they
// can exceed the spend by a sample's worth: then, in team order, each team
// gets at most what is left, so the teams are always an exact partition of
// the node's spend and every breakdown adds up to the fleet figure.
func splitTeams(spend multi, teams map[string]*cost.Exact, cur string, to func(team string) multi) {
	rest := spend[cur]
	names := make([]string, 0, len(teams))
	for t := range teams {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		a := *teams[t]
		if a.Rat().Cmp(rest.Rat()) > 0 {
			a = rest
			if a.Rat().Sign() < 0 {
				a = cost.Exact{}
			}
		}
		to(t).add(a, cur)
		rest = rest.Sub(a)
	}
	if rest.Rat().Sign() > 0 {
		to(noGroup).add(rest, cur)
	}
	for c, e := range spend {
		if c != cur {
			to(noGroup).add(e, c)
		}
	}
}

// apportion makes every breakdown add up to the fleet figure to the
// micro-unit: where a breakdown's groups are an exact partition of the fleet
// figure, the rounded fleet figure is split among them by largest remainder
// (cost.Apportion) instead of rounding each group on its own.
func (e *Engine) apportion(sum *wire.Summary, keys [][2]string, groups map[[2]string]*line, fleetFig map[string]multi) {
	figs := []struct {
		name  string
		total int64
		part  func(l *line) multi
		field func(c *wire.CostLine) *fleet.Money
	}{
		{"burn", sum.BurnPerHour.Micros, func(l *line) multi { return l.burn }, func(c *wire.CostLine) *fleet.Money { return &c.BurnPerHour }},
		{"idle", sum.IdleBurnPerHour.Micros, func(l *line) multi { return l.idleBurn }, func(c *wire.CostLine) *fleet.Money { return &c.IdleBurn }},
		{"today", sum.SpendToday.Micros, func(l *line) multi { return l.today }, func(c *wire.CostLine) *fleet.Money { return &c.SpendToday }},
		{"month", sum.SpendMonth.Micros, func(l *line) multi { return l.month }, func(c *wire.CostLine) *fleet.Money { return &c.SpendMonth }},
		{"proj", sum.ProjectedMonth.Micros, func(l *line) multi { return l.proj }, func(c *wire.CostLine) *fleet.Money { return &c.ProjectedMonth }},
	}
	byIdx := map[string][]int{}
	for i, k := range keys {
		byIdx[k[0]] = append(byIdx[k[0]], i)
	}
	for _, f := range figs {
		exact := e.rat(fleetFig[f.name])
		for _, idx := range byIdx {
			parts := make([]*big.Rat, len(idx))
			acc := new(big.Rat)
			for j, i := range idx {
				parts[j] = e.rat(f.part(groups[keys[i]]))
				acc.Add(acc, parts[j])
			}
			if acc.Cmp(exact) != 0 {
				continue // not a partition of the fleet figure (e.g. sampled team spend)
			}
			for j, v := range cost.Apportion(f.total, parts) {
				f.field(&sum.Costs[idx[j]]).Micros = v
			}
		}
	}
}

// rat is m's exact value in the display currency; currencies without a rate
// are left out, as conv leaves them out.
func (e *Engine) rat(m multi) *big.Rat {
	out := new(big.Rat)
	for c, x := range m {
		if v, err := e.cfg.Rates.ConvertRat(x, c); err == nil {
			out.Add(out, v)
		}
	}
	return out
}

func byOrder(by string) string {
	switch by {
	case "region":
		return "0"
	case "provider":
		return "1"
	case "model":
		return "2"
	}
	return "3" + by
}

// conv converts a multi-currency sum to the display currency, rounding once.
// A currency without a rate is left out and logged once.
func (e *Engine) conv(m multi) fleet.Money {
	for c := range m {
		if _, ok := e.cfg.Rates.Rate(c); !ok {
			e.warnRate(c)
			delete(m, c)
		}
	}
	out, err := e.cfg.Rates.Sum(m)
	if err != nil { // unreachable: every currency left has a rate
		return fleet.Money{Currency: e.cfg.Currency}
	}
	return out
}

func (e *Engine) warnRate(c string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.warned[c] {
		e.warned[c] = true
		e.log.Warn("no exchange rate: leave it out of the totals; add it under rates: in the config", "currency", c, "display", e.cfg.Currency)
	}
}
