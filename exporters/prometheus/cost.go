package prometheus

import (
	"slices"
	"strings"
	"time"

	"github.com/fleettop/fleettop/wire"
)

// Cost by who pays and what is wasted: the series the cost dashboard groups
// by team, job and budget, and the paid-but-dark and paid-but-blind burn.
// Every amount is the engine's, in its display currency, except dark burn,
// which is each lease's own burn in its lease currency (as the nodes report
// it; dashboards sum it by currency).
var (
	famTeamBurn     = gauge("fleettop_team_cost_burn_per_hour", "What a team's GPUs cost per hour now; team=\"(none)\" is GPUs running no job of a known team.")
	famTeamIdleBurn = gauge("fleettop_team_cost_idle_burn_per_hour", "What a team's idle or dark GPUs cost per hour now.")
	famTeamSpend    = counter("fleettop_team_cost_spend_total", "A team's spend this month (in the aggregator's time zone); resets at the start of a month.")
	famJobBurn      = gauge("fleettop_job_cost_burn_per_hour", "What a job's GPUs cost per hour now.")
	famJobGPUs      = gauge("fleettop_job_gpus", "GPUs a job runs on, by the jurisdiction list it spans.")
	famBudget       = gauge("fleettop_budget_month", "Monthly budget of a region or team (by=\"region\"|\"team\"); 0: none set.")
	famProjected    = gauge("fleettop_cost_projected_month", "This month's spend so far plus what the leases accrue to its end, per region, provider or model.")
	famBlindGPUs    = gauge("fleettop_gpus_blind", "GPUs the leases bill that no sensor sees (never enumerated, or lost): paid but blind.")
	famBlindBurn    = gauge("fleettop_cost_blind_burn_per_hour", "What the paid-but-blind GPUs cost per hour.")
	famDarkBurn     = gauge("fleettop_cost_dark_burn_per_hour", "Lease burn of nodes that are not reporting (stale or offline): paid but dark, in the lease currency.")
	famDarkNodes    = gauge("fleettop_nodes_dark", "Leased nodes not reporting (stale or offline).")
)

// costSeries writes the team, job, budget, blind and dark series. It runs on
// unfiltered expositions only (they are fleet-wide figures). Caller holds e.mu.
func (e *Exporter) costSeries(s sink, now time.Time) {
	sum, jobs, _ := e.ins.Summarize(now)
	cur := sum.Currency
	if cur == "" {
		return // an engine without a display currency has no money to show
	}
	var teams []wire.CostLine
	for _, c := range sum.Costs {
		if c.By == "team" {
			teams = append(teams, c)
		}
	}
	teamLS := make([]*labelSet, len(teams))
	for i, c := range teams {
		teamLS[i] = newLabelSet([]label{{"team", c.Group}, {"currency", cur}})
	}
	for i, c := range teams {
		s.sample(famTeamBurn, teamLS[i], units(c.BurnPerHour.Micros))
	}
	for i, c := range teams {
		s.sample(famTeamIdleBurn, teamLS[i], units(c.IdleBurn.Micros))
	}
	for i, c := range teams {
		s.sample(famTeamSpend, teamLS[i], units(c.SpendMonth.Micros))
	}
	jobLS := make([]*labelSet, len(jobs))
	jobMoney := make([]*labelSet, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		ls := []label{{"job", j.ID}, {"team", j.Team}, {"data_class", j.DataClass}, {"jurisdictions", strings.Join(j.Jurisdictions, ",")}}
		jobLS[i] = newLabelSet(slices.Clone(ls))
		jobMoney[i] = newLabelSet(append(ls, label{"currency", cur}))
	}
	for i := range jobs {
		s.sample(famJobBurn, jobMoney[i], units(jobs[i].BurnPerHour.Micros))
	}
	for i := range jobs {
		s.sample(famJobGPUs, jobLS[i], float64(jobs[i].GPUs))
	}
	for _, c := range sum.Costs {
		if c.By == "region" || c.By == "team" {
			s.sample(famBudget, newLabelSet([]label{{"by", c.By}, {"group", c.Group}, {"currency", cur}}), units(c.Budget.Micros))
		}
	}
	for _, c := range sum.Costs {
		if c.By == "region" || c.By == "provider" || c.By == "model" {
			s.sample(famProjected, newLabelSet([]label{{"by", c.By}, {"group", c.Group}, {"currency", cur}}), units(c.ProjectedMonth.Micros))
		}
	}
	s.sample(famBlindGPUs, newLabelSet(nil), float64(sum.GPUsBlind))
	s.sample(famBlindBurn, newLabelSet([]label{{"currency", cur}}), units(sum.BlindBurnPerHour.Micros))
	e.darkSeries(s)
}

// darkSeries sums the lease burn of nodes not reporting, per placement and
// lease currency, and counts them per placement.
func (e *Exporter) darkSeries(s sink) {
	type key struct {
		p        place
		currency string
	}
	burn := map[key]int64{}
	count := map[place]int{}
	var keys []key
	var places []place
	for i := range e.snap.nodes {
		// Every placement and lease currency gets a series, 0 while all
		// its nodes report, so a dashboard shows zero rather than nothing.
		n := &e.snap.nodes[i]
		dark := n.state == wire.StateStale || n.state == wire.StateOffline
		if _, ok := count[n.c.place]; !ok {
			places = append(places, n.c.place)
			count[n.c.place] = 0
		}
		if dark {
			count[n.c.place]++
		}
		if n.burn.Currency == "" {
			continue
		}
		k := key{n.c.place, n.burn.Currency}
		if _, ok := burn[k]; !ok {
			keys = append(keys, k)
			burn[k] = 0
		}
		if dark {
			burn[k] += n.burn.Micros
		}
	}
	cmpPlace := func(a, b place) int {
		return strings.Compare(a.region+"\xff"+a.provider+"\xff"+a.jurisdiction, b.region+"\xff"+b.provider+"\xff"+b.jurisdiction)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmpPlace(a.p, b.p); c != 0 {
			return c
		}
		return strings.Compare(a.currency, b.currency)
	})
	slices.SortFunc(places, cmpPlace)
	for _, k := range keys {
		s.sample(famDarkBurn, placeLabels(k.p, label{"currency", k.currency}), units(burn[k]))
	}
	for _, p := range places {
		s.sample(famDarkNodes, placeLabels(p), float64(count[p]))
	}
}
