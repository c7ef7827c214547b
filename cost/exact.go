// Package cost is fleettop's money logic, pure functions on fleet types:
// exact amounts, lease accrual per second or per started hour across price
// versions, currency conversion, idle and "paid but dark" spend, spend
// today / month-to-date / projected, effective price per used GPU-hour,
// budgets and leases that end soon.
//
// Money is integer micro-units plus, where pricing per GPU-hour by the
// millisecond leaves a fraction, an exact remainder (Exact). Rounding happens
// once, at the end, half to even (Round).
package cost

import (
	"fmt"
	"math/big"
	"math/bits"
)

// RemDen is the denominator of Exact.Rem: milliseconds per hour, so a price
// per GPU-hour times GPU-milliseconds is exact.
const RemDen = 3_600_000

// Exact is an exact amount of one currency: Micros + Rem/RemDen micro-units,
// with 0 ≤ Rem < RemDen (so Micros is the floor).
type Exact struct {
	Micros int64 `json:"micros"`
	Rem    int64 `json:"rem"`
}

// MakeExact returns micros + rem/RemDen, normalised.
func MakeExact(micros, rem int64) Exact {
	micros += rem / RemDen
	rem %= RemDen
	if rem < 0 {
		rem += RemDen
		micros--
	}
	return Exact{micros, rem}
}

// Add returns e + o.
func (e Exact) Add(o Exact) Exact { return MakeExact(e.Micros+o.Micros, e.Rem+o.Rem) }

// Sub returns e − o.
func (e Exact) Sub(o Exact) Exact { return MakeExact(e.Micros-o.Micros, e.Rem-o.Rem) }

// IsZero reports whether e is zero.
func (e Exact) IsZero() bool { return e.Micros == 0 && e.Rem == 0 }

// Rat returns e as a rational number of micro-units.
func (e Exact) Rat() *big.Rat {
	r := new(big.Rat).SetFrac64(e.Rem, RemDen)
	return r.Add(r, new(big.Rat).SetInt64(e.Micros))
}

// Round returns e rounded half to even to whole micro-units.
func (e Exact) Round() int64 {
	switch twice := 2 * e.Rem; {
	case twice < RemDen:
		return e.Micros
	case twice > RemDen:
		return e.Micros + 1
	default:
		return e.Micros + e.Micros&1
	}
}

func (e Exact) String() string { return fmt.Sprintf("%d+%d/%d", e.Micros, e.Rem, RemDen) }

// PriceTimes returns pricePerHour (micro-units per GPU-hour) × gpuMs
// (GPU-milliseconds), exactly. Negative inputs give negative amounts.
func PriceTimes(pricePerHour, gpuMs int64) Exact {
	neg := (pricePerHour < 0) != (gpuMs < 0)
	hi, lo := bits.Mul64(abs(pricePerHour), abs(gpuMs))
	if hi >= RemDen { // quotient would not fit 64 bits
		panic(fmt.Sprintf("cost: %d × %d overflows", pricePerHour, gpuMs))
	}
	q, r := bits.Div64(hi, lo, RemDen)
	if q > 1<<63-1 {
		panic(fmt.Sprintf("cost: %d × %d overflows", pricePerHour, gpuMs))
	}
	e := Exact{int64(q), int64(r)}
	if neg {
		return Exact{}.Sub(e)
	}
	return e
}

func abs(v int64) uint64 {
	if v < 0 {
		return uint64(-v)
	}
	return uint64(v)
}

// RoundRat rounds r (micro-units) half to even to an integer.
func RoundRat(r *big.Rat) int64 {
	num, den := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int)) // truncated toward zero
	// compare 2|m| with den
	twice := new(big.Int).Abs(m)
	twice.Lsh(twice, 1)
	switch c := twice.Cmp(den); {
	case c > 0 || (c == 0 && q.Bit(0) == 1):
		if r.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		panic("cost: amount overflows int64 micro-units")
	}
	return q.Int64()
}
