package cost

import (
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Version is one period of a lease's terms: it holds from From until the
// next version's From (versions are sorted by From).
type Version struct {
	From    time.Time
	Price   fleet.Money // per GPU-hour
	GPUs    int
	Billing fleet.Billing
	Start   time.Time // the lease's start; zero: unknown (accrues from origin)
	End     time.Time // the lease's end; zero: open-ended
	// Blind is how many of the GPUs no sensor sees (never enumerated, or
	// lost): paid but blind. They are billed all the same.
	Blind int
}

// Accrual is what a lease cost over an interval in one currency.
type Accrual struct {
	Currency string
	// LeasedGPUms is leased GPU-time in GPU-milliseconds.
	LeasedGPUms int64
	// Basis is price × leased GPU-time: the per-second value of the time,
	// which idle and dark spend are shares of.
	Basis Exact
	// Charge is what the lease bills for the interval: Basis when billed
	// per second; price × GPUs for every lease hour that starts inside the
	// interval when billed per started hour (a started hour is charged at
	// the price in effect when it starts, wholly to the interval it starts in).
	Charge Exact
	// BlindGPUms and Blind are the part of the leased GPU-time (and of
	// Basis) on GPUs no sensor saw: paid but blind.
	BlindGPUms int64
	Blind      Exact
}

// Accrue returns what the lease described by vs costs over [from, to), one
// Accrual per currency in order of first use. Leased time before origin
// (when fleettop started accounting for the lease) is not accrued; when a
// per-started-hour lease is first accounted for in the middle of one of its
// hours, that hour is charged at origin.
func Accrue(vs []Version, origin, from, to time.Time) []Accrual {
	return AccrueInto(nil, vs, origin, from, to)
}

// AccrueInto is Accrue into dst's room (dst's contents are dropped): the
// live view accrues every node's lease a few times a second, and a lease
// has one currency or two, so a small array on the caller's stack holds
// them without garbage.
func AccrueInto(dst []Accrual, vs []Version, origin, from, to time.Time) []Accrual {
	out := dst[:0]
	get := func(cur string) *Accrual {
		for i := range out {
			if out[i].Currency == cur {
				return &out[i]
			}
		}
		out = append(out, Accrual{Currency: cur})
		return &out[len(out)-1]
	}
	om, fm, tm := ms(origin), ms(from), ms(to)
	for i, v := range vs {
		a, b := LeaseSpan(vs, i, om)
		lo, hi := max(a, fm), min(b, tm)
		if hi <= lo || v.GPUs <= 0 {
			continue
		}
		acc := get(v.Price.Currency)
		gpuMs := int64(v.GPUs) * (hi - lo)
		acc.LeasedGPUms += gpuMs
		basis := PriceTimes(v.Price.Micros, gpuMs)
		acc.Basis = acc.Basis.Add(basis)
		if b := min(v.Blind, v.GPUs); b > 0 {
			acc.BlindGPUms += int64(b) * (hi - lo)
			acc.Blind = acc.Blind.Add(PriceTimes(v.Price.Micros, int64(b)*(hi-lo)))
		}
		if v.Billing != fleet.BillPerStartedHour {
			acc.Charge = acc.Charge.Add(basis)
			continue
		}
		anchor := om // a lease with no known start: hours from origin
		if !v.Start.IsZero() {
			anchor = ms(v.Start)
		}
		// The lease hour in progress when accounting began (origin after
		// the lease's start, off its grid) is charged at origin.
		if a == om && om > anchor && ceilGrid(anchor, om) != om && om >= lo && om < hi {
			acc.Charge = acc.Charge.Add(MakeExact(mulCheck(v.Price.Micros, int64(v.GPUs)), 0))
		}
		n := countGrid(anchor, lo, hi)
		acc.Charge = acc.Charge.Add(MakeExact(mulCheck(mulCheck(v.Price.Micros, int64(v.GPUs)), n), 0))
	}
	return out
}

// LeaseSpan returns the leased span [a, b) (Unix ms) of version i of vs:
// from its From (the first version: from the beginning), the lease's start
// and origin, to the next version's From and the lease's end.
func LeaseSpan(vs []Version, i int, origin int64) (a, b int64) {
	v := vs[i]
	a = origin
	if i > 0 {
		a = max(a, ms(v.From))
	}
	if !v.Start.IsZero() {
		a = max(a, ms(v.Start))
	}
	b = int64(1<<63 - 1)
	if i+1 < len(vs) {
		b = ms(vs[i+1].From)
	}
	if !v.End.IsZero() {
		b = min(b, ms(v.End))
	}
	return a, b
}

// ceilGrid returns the first instant anchor + k·hour (k ≥ 0) at or after t.
func ceilGrid(anchor, t int64) int64 {
	if t <= anchor {
		return anchor
	}
	k := (t - anchor + hourMs - 1) / hourMs
	return anchor + k*hourMs
}

// countGrid counts the instants anchor + k·hour (k ≥ 0) in [lo, hi).
func countGrid(anchor, lo, hi int64) int64 {
	if hi <= lo {
		return 0
	}
	first := ceilGrid(anchor, lo)
	if first >= hi {
		return 0
	}
	return (hi-1-first)/hourMs + 1
}

const hourMs = int64(time.Hour / time.Millisecond)

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func mulCheck(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	c := a * b
	if c/b != a {
		panic("cost: amount overflows int64 micro-units")
	}
	return c
}
