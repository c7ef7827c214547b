package cost

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"sort"
	"strings"

	"github.com/fleettop/fleettop/fleet"
)

// Rates converts amounts into one display currency. Rate(c) is the value
// of one unit of currency c in the display currency, an exact rational
// parsed from a decimal string; the display currency's own rate is 1.
type Rates struct {
	Display string
	rates   map[string]*big.Rat
}

// ParseRates builds a rate table from decimal strings ("0.74", "1"): each is
// the value of one unit of that currency in display.
func ParseRates(display string, decimals map[string]string) (Rates, error) {
	r := Rates{Display: strings.ToUpper(display), rates: map[string]*big.Rat{}}
	for c, s := range decimals {
		v, err := ParseDecimal(s)
		if err != nil {
			return Rates{}, fmt.Errorf("rate of %s: %w", c, err)
		}
		if v.Sign() <= 0 {
			return Rates{}, fmt.Errorf("rate of %s: must be positive", c)
		}
		r.rates[strings.ToUpper(c)] = v
	}
	return r, nil
}

// ParseDecimal parses a plain decimal ("12", "0.7425", "-3.5") exactly.
func ParseDecimal(s string) (*big.Rat, error) {
	s = strings.TrimSpace(s)
	body := strings.TrimPrefix(s, "-")
	ip, fp, _ := strings.Cut(body, ".")
	if ip == "" && fp == "" {
		return nil, fmt.Errorf("%q is not a decimal number", s)
	}
	for _, c := range ip + fp {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("%q is not a decimal number", s)
		}
	}
	v, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal number", s)
	}
	return v, nil
}

// Rate returns the value of one unit of cur in the display currency.
func (r Rates) Rate(cur string) (*big.Rat, bool) {
	cur = strings.ToUpper(cur)
	if cur == r.Display {
		return big.NewRat(1, 1), true
	}
	v, ok := r.rates[cur]
	return v, ok
}

// Currencies returns the currencies with a rate, sorted.
func (r Rates) Currencies() []string {
	out := make([]string, 0, len(r.rates))
	for c := range r.rates {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// MissingRateError says which currency has no rate into the display currency.
type MissingRateError struct{ From, To string }

func (e *MissingRateError) Error() string {
	return fmt.Sprintf("no exchange rate from %s to %s", e.From, e.To)
}

// ConvertRat returns the exact value of e (in cur) in the display currency,
// in micro-units.
func (r Rates) ConvertRat(e Exact, cur string) (*big.Rat, error) {
	rate, ok := r.Rate(cur)
	if !ok {
		return nil, &MissingRateError{From: cur, To: r.Display}
	}
	v := e.Rat()
	return v.Mul(v, rate), nil
}

// Convert returns m in the display currency, rounded half to even to the
// micro-unit.
func (r Rates) Convert(m fleet.Money) (fleet.Money, error) {
	if m.Currency == r.Display {
		return m, nil
	}
	rate, ok := r.Rate(m.Currency)
	if !ok {
		return fleet.Money{}, &MissingRateError{From: m.Currency, To: r.Display}
	}
	if v, ok := mulRound(m.Micros, rate); ok {
		return fleet.Money{Micros: v, Currency: r.Display}, nil
	}
	v := new(big.Rat).SetInt64(m.Micros)
	return fleet.Money{Micros: RoundRat(v.Mul(v, rate)), Currency: r.Display}, nil
}

// mulRound returns micros × rate rounded half to even, as RoundRat would,
// in 128-bit integer arithmetic (every row of the live view converts its
// lease's burn each second); ok is false when a part does not fit, and the
// caller takes big.Rat's way.
func mulRound(micros int64, rate *big.Rat) (int64, bool) {
	num, d := rate.Num(), uint64(1)
	if !rate.IsInt() { // Denom allocates a 1 for an integer
		den := rate.Denom()
		if !den.IsInt64() {
			return 0, false
		}
		d = uint64(den.Int64())
	}
	if !num.IsInt64() || num.Sign() < 0 {
		return 0, false
	}
	n := uint64(num.Int64())
	hi, lo := bits.Mul64(abs(micros), n)
	if hi >= d {
		return 0, false // the quotient would not fit 64 bits
	}
	q, rem := bits.Div64(hi, lo, d)
	if rem > d-rem || (rem == d-rem && q&1 == 1) { // rem > d/2, or a tie to the odd q
		q++
	}
	if q > math.MaxInt64 {
		return 0, false
	}
	if micros < 0 {
		return -int64(q), true
	}
	return int64(q), true
}

// Sum adds amounts in several currencies exactly and rounds once, half to
// even, to micro-units of the display currency: the rule for one line of a
// report. Amounts already in the display currency add up without big.Rat.
// Currencies without a rate are left out and returned, in the order added.
func (r Rates) Sum(s *Sums) (fleet.Money, []string) {
	var same Exact
	var other *big.Rat
	var missing []string
	for cur, e := range s.All() {
		if cur == r.Display {
			same = same.Add(e)
			continue
		}
		v, err := r.ConvertRat(e, cur)
		if err != nil {
			missing = append(missing, cur)
			continue
		}
		if other == nil {
			other = new(big.Rat)
		}
		other.Add(other, v)
	}
	if other == nil {
		return fleet.Money{Micros: same.Round(), Currency: r.Display}, missing
	}
	return fleet.Money{Micros: RoundRat(other.Add(other, same.Rat())), Currency: r.Display}, missing
}

// EffectivePrice returns spend (exact micro-units) per used GPU-hour, given
// used GPU-milliseconds (> 0), rounded half to even to micro-units.
func EffectivePrice(spend *big.Rat, usedGPUms int64) int64 {
	v := new(big.Rat).Mul(spend, big.NewRat(RemDen, usedGPUms))
	return RoundRat(v)
}

// Rebase returns the same table expressed in display currency to, which
// must have a rate in r (or be r's display currency).
func (r Rates) Rebase(to string) (Rates, error) {
	to = strings.ToUpper(to)
	if to == r.Display {
		return r, nil
	}
	base, ok := r.Rate(to)
	if !ok {
		return Rates{}, &MissingRateError{From: to, To: r.Display}
	}
	out := Rates{Display: to, rates: map[string]*big.Rat{}}
	for c, v := range r.rates {
		if c != to {
			out.rates[c] = new(big.Rat).Quo(v, base)
		}
	}
	if r.Display != "" {
		out.rates[r.Display] = new(big.Rat).Inv(base)
	}
	return out, nil
}
