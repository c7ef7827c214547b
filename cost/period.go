package cost

import (
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Burn returns what gpus GPUs at price per GPU-hour cost per hour.
func Burn(price fleet.Money, gpus int) fleet.Money {
	return fleet.Money{Micros: mulCheck(price.Micros, int64(gpus)), Currency: price.Currency}
}

// IdleSpend is price × idle GPU-time: the spend on GPU-minutes whose mean
// utilisation was under the idle threshold. DarkSpend is the same for leased
// GPU-time with no report. Both are exact; round once at the end.
func IdleSpend(pricePerHour int64, idle time.Duration) Exact {
	return PriceTimes(pricePerHour, idle.Milliseconds())
}

// DarkSpend is price × leased GPU-time that no report covered ("paid but dark").
func DarkSpend(pricePerHour int64, dark time.Duration) Exact {
	return PriceTimes(pricePerHour, dark.Milliseconds())
}

// Periods returns the start of now's day and month and the end of its month
// in loc (nil: UTC): the bounds of "spend today", "month-to-date" and the
// month-end projection.
func Periods(now time.Time, loc *time.Location) (dayStart, monthStart, monthEnd time.Time) {
	if loc == nil {
		loc = time.UTC
	}
	t := now.In(loc)
	dayStart = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	monthStart = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
	monthEnd = monthStart.AddDate(0, 1, 0)
	return dayStart, monthStart, monthEnd
}

// Spend returns what the lease vs cost over [from, to) in currency cur
// (Accrue's charge), exactly.
func Spend(vs []Version, origin, from, to time.Time, cur string) Exact {
	for _, a := range Accrue(vs, origin, from, to) {
		if a.Currency == cur {
			return a.Charge
		}
	}
	return Exact{}
}

// Project returns month-to-date spend plus burnPerHour (micro-units per
// hour) for the rest of the month after now: the projected month total.
func Project(monthToDate Exact, burnPerHour int64, now time.Time, loc *time.Location) Exact {
	_, _, end := Periods(now, loc)
	left := end.Sub(now)
	if left <= 0 {
		return monthToDate
	}
	return monthToDate.Add(PriceTimes(burnPerHour, left.Milliseconds()))
}

// EffectivePricePerUsedHour returns spend per used GPU-hour in micro-units
// (rounded half to even); ok is false when no GPU-time was used.
func EffectivePricePerUsedHour(spend Exact, used time.Duration) (micros int64, ok bool) {
	if used <= 0 {
		return 0, false
	}
	return EffectivePrice(spend.Rat(), used.Milliseconds()), true
}

// Budget thresholds, in percent of the budget.
const (
	BudgetWarnPercent     = 80
	BudgetCriticalPercent = 100
)

// BudgetLevel is how far spend has gone into a budget.
type BudgetLevel int

// Budget levels.
const (
	BudgetOK       BudgetLevel = iota
	BudgetWarn                 // at or above 80%
	BudgetExceeded             // at or above 100%
)

func (l BudgetLevel) String() string {
	switch l {
	case BudgetWarn:
		return "warning"
	case BudgetExceeded:
		return "exceeded"
	}
	return "ok"
}

// Budget is a monthly limit for one region or team, in micro-units of the
// display currency.
type Budget struct {
	Scope string // "region" or "team"
	Name  string
	Limit int64
}

// BudgetState is a budget with its month-to-date spend.
type BudgetState struct {
	Budget
	Spent   int64
	Percent *big.Rat // Spent / Limit × 100, exact
	Level   BudgetLevel
}

// CheckBudget compares spent (micro-units) with b's limit: warning at 80%,
// exceeded at 100%, compared exactly. A non-positive limit is always exceeded
// by positive spend.
func CheckBudget(b Budget, spent int64) BudgetState {
	st := BudgetState{Budget: b, Spent: spent, Percent: new(big.Rat)}
	if b.Limit <= 0 {
		if spent > 0 {
			st.Level = BudgetExceeded
		}
		return st
	}
	st.Percent.SetFrac(new(big.Int).Mul(big.NewInt(spent), big.NewInt(100)), big.NewInt(b.Limit))
	switch {
	case st.Percent.Cmp(big.NewRat(BudgetCriticalPercent, 1)) >= 0:
		st.Level = BudgetExceeded
	case st.Percent.Cmp(big.NewRat(BudgetWarnPercent, 1)) >= 0:
		st.Level = BudgetWarn
	}
	return st
}

// CheckBudgets checks every budget against spent, keyed "scope/name"
// (e.g. "region/Singapore", "team/vision"); sorted by scope and name.
func CheckBudgets(budgets []Budget, spent map[string]int64) []BudgetState {
	out := make([]BudgetState, 0, len(budgets))
	for _, b := range budgets {
		out = append(out, CheckBudget(b, spent[b.Scope+"/"+b.Name]))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Scope != out[j].Scope {
			return out[i].Scope < out[j].Scope
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// NodeLease is a node's lease, for LeasesEnding.
type NodeLease struct {
	Node  string
	Lease fleet.Lease
}

// Ending is a lease that ends soon.
type Ending struct {
	NodeLease
	Left time.Duration
}

// LeasesEnding returns the leases that end after now and within the
// horizon, soonest first (ties by node).
func LeasesEnding(leases []NodeLease, now time.Time, within time.Duration) []Ending {
	var out []Ending
	for _, l := range leases {
		if l.Lease.End.IsZero() || !l.Lease.End.After(now) {
			continue
		}
		if left := l.Lease.End.Sub(now); left <= within {
			out = append(out, Ending{NodeLease: l, Left: left})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Left != out[j].Left {
			return out[i].Left < out[j].Left
		}
		return out[i].Node < out[j].Node
	})
	return out
}

// FormatPercent formats an exact percentage with one decimal.
func FormatPercent(p *big.Rat) string { return fmt.Sprintf("%s%%", p.FloatString(1)) }
