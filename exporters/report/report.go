// Package report builds fleettop's cost reports from the store's ledger and
// writes them as CSV, Markdown or JSON.
package report

import (
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/store"
)

// Line is one group's figures in one currency. Money is in micro-units,
// rounded half to even once per figure from the exact ledger sums.
type Line struct {
	Group       string
	Currency    string
	LeasedGPUms int64
	UsedGPUms   int64 // reported and not idle, within the lease
	IdleGPUms   int64
	DarkGPUms   int64
	Spend       int64
	IdleSpend   int64
	DarkSpend   int64
	// BlindGPUms and BlindSpend are the part of the dark figures on GPUs
	// the leases bill and no sensor sees (paid but blind).
	BlindGPUms   int64
	BlindSpend   int64
	EffectivePPH int64 // spend per used GPU-hour
	HasEffective bool  // false when no GPU-hour was used
}

// Report is a whole report.
type Report struct {
	By    string
	From  time.Time // inclusive, whole UTC hour
	To    time.Time // exclusive
	Lines []Line
	// Total sums every line; nil when lines are in several currencies.
	Total *Line
}

// Build turns ledger sums into report lines. With rates, every group is one
// line in rates.Display (each figure converted exactly, summed, then rounded
// once); without, a group has one line per currency it was paid in. Amounts
// in a currency without a rate get their own lines in that currency, never
// an error and never dropped.
func Build(by string, from, to time.Time, us []store.Usage, rates *cost.Rates) (Report, error) {
	r := Report{By: by, From: from, To: to}
	type acc struct {
		group, cur             string
		ms                     [5]int64 // leased, used, idle, dark, blind
		spend, idle, dk, blind *big.Rat
	}
	accs := map[[2]string]*acc{}
	total := &acc{spend: new(big.Rat), idle: new(big.Rat), dk: new(big.Rat), blind: new(big.Rat)}
	curs := map[string]bool{}
	for _, u := range us {
		cur := u.Currency
		conv := func(e cost.Exact) (*big.Rat, error) { return e.Rat(), nil }
		if rates != nil && hasRate(rates, u.Currency) {
			cur = rates.Display
			conv = func(e cost.Exact) (*big.Rat, error) { return rates.ConvertRat(e, u.Currency) }
		}
		curs[cur] = true
		k := [2]string{u.Group, cur}
		a := accs[k]
		if a == nil {
			a = &acc{group: u.Group, cur: cur, spend: new(big.Rat), idle: new(big.Rat), dk: new(big.Rat), blind: new(big.Rat)}
			accs[k] = a
		}
		for _, x := range []*acc{a, total} {
			x.ms[0] += u.LeasedGPUms
			x.ms[1] += u.UsedGPUms()
			x.ms[2] += u.IdleGPUms
			x.ms[3] += u.DarkGPUms
			x.ms[4] += u.BlindGPUms
			for _, p := range []struct {
				dst *big.Rat
				e   cost.Exact
			}{{x.spend, u.Spend}, {x.idle, u.Idle}, {x.dk, u.Dark}, {x.blind, u.Blind}} {
				v, err := conv(p.e)
				if err != nil {
					return Report{}, err
				}
				p.dst.Add(p.dst, v)
			}
		}
	}
	line := func(a *acc) Line {
		l := Line{Group: a.group, Currency: a.cur, LeasedGPUms: a.ms[0], UsedGPUms: a.ms[1], IdleGPUms: a.ms[2],
			DarkGPUms: a.ms[3], Spend: cost.RoundRat(a.spend), IdleSpend: cost.RoundRat(a.idle), DarkSpend: cost.RoundRat(a.dk),
			BlindGPUms: a.ms[4], BlindSpend: cost.RoundRat(a.blind)}
		if a.ms[1] > 0 {
			l.EffectivePPH, l.HasEffective = cost.EffectivePrice(a.spend, a.ms[1]), true
		}
		return l
	}
	for _, a := range accs {
		r.Lines = append(r.Lines, line(a))
	}
	sort.Slice(r.Lines, func(i, j int) bool {
		if r.Lines[i].Group != r.Lines[j].Group {
			return r.Lines[i].Group < r.Lines[j].Group
		}
		return r.Lines[i].Currency < r.Lines[j].Currency
	})
	if len(curs) == 1 {
		for c := range curs {
			total.cur = c
		}
		total.group = "total"
		t := line(total)
		r.Total = &t
		// The lines add up to the total to the micro-unit: the rounded
		// total is split by largest remainder, not each line rounded alone.
		for _, f := range []struct {
			total int64
			part  func(a *acc) *big.Rat
			field func(l *Line) *int64
		}{
			{t.Spend, func(a *acc) *big.Rat { return a.spend }, func(l *Line) *int64 { return &l.Spend }},
			{t.IdleSpend, func(a *acc) *big.Rat { return a.idle }, func(l *Line) *int64 { return &l.IdleSpend }},
			{t.DarkSpend, func(a *acc) *big.Rat { return a.dk }, func(l *Line) *int64 { return &l.DarkSpend }},
			{t.BlindSpend, func(a *acc) *big.Rat { return a.blind }, func(l *Line) *int64 { return &l.BlindSpend }},
		} {
			parts := make([]*big.Rat, len(r.Lines))
			for i, l := range r.Lines {
				parts[i] = f.part(accs[[2]string{l.Group, l.Currency}])
			}
			for i, v := range cost.Apportion(f.total, parts) {
				*f.field(&r.Lines[i]) = v
			}
		}
	}
	return r, nil
}

func hasRate(r *cost.Rates, cur string) bool {
	_, ok := r.Rate(cur)
	return ok
}

// GPUHours formats GPU-milliseconds as GPU-hours with three decimals
// (rounded half to even).
func GPUHours(ms int64) string { return decimal(big.NewRat(ms, 3_600_000), 3) }

// Amount formats micro-units with the given number of decimals (≤ 6),
// rounded half to even like the ledger's conversions.
func Amount(micros int64, decimals int) string {
	return fleet.FormatMicros(micros, decimals, fleet.HalfEven)
}

func decimal(v *big.Rat, decimals int) string {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals)), nil)
	scaled := new(big.Rat).Mul(v, new(big.Rat).SetInt(scale))
	n := big.NewInt(cost.RoundRat(scaled))
	neg := n.Sign() < 0
	n.Abs(n)
	q, m := new(big.Int).QuoRem(n, scale, new(big.Int))
	s := q.String()
	if decimals > 0 {
		s += fmt.Sprintf(".%0*d", decimals, m.Int64())
	}
	if neg {
		s = "-" + s
	}
	return s
}
