package insight

// Money helpers used until the cost package offers them. Exact integer
// arithmetic only: micro-units, 128-bit intermediates, no floats.

import (
	"errors"
	"math/bits"
	"strings"

	"github.com/fleettop/fleettop/fleet"
)

// Rate is an exact decimal exchange rate: Coef × 10^-Scale.
type Rate struct {
	Coef  int64
	Scale uint8
}

// ParseRate parses a positive decimal string such as "0.74" exactly.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" || len(frac) > 12 {
		return Rate{}, errors.New("not a decimal with at most 12 decimals")
	}
	var coef int64
	for _, r := range intPart + frac {
		if r < '0' || r > '9' {
			return Rate{}, errors.New("not a decimal number")
		}
		if coef > (1<<62)/10 {
			return Rate{}, errors.New("too large")
		}
		coef = coef*10 + int64(r-'0')
	}
	if coef == 0 {
		return Rate{}, errors.New("zero")
	}
	return Rate{Coef: coef, Scale: uint8(len(frac))}, nil
}

// ParseMicros parses a decimal amount ("2.85", "-1", "50000") into micro-units.
func ParseMicros(s string) (int64, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" || len(frac) > 6 {
		return 0, errors.New("not a decimal with at most 6 decimals")
	}
	frac += strings.Repeat("0", 6-len(frac))
	var v int64
	for _, r := range intPart + frac {
		if r < '0' || r > '9' {
			return 0, errors.New("not a decimal number")
		}
		if v > (1<<62)/10 {
			return 0, errors.New("too large")
		}
		v = v*10 + int64(r-'0')
	}
	if neg {
		v = -v
	}
	return v, nil
}

// mulDiv returns a*b/c rounded half away from zero, for a ≥ 0 or < 0, b ≥ 0, c > 0.
func mulDiv(a int64, b, c uint64) int64 {
	neg := a < 0
	ua := uint64(a)
	if neg {
		ua = uint64(-a)
	}
	hi, lo := bits.Mul64(ua, b)
	if hi >= c {
		panic("insight: money overflow")
	}
	q, r := bits.Div64(hi, lo, c)
	if r >= c-r { // r*2 >= c without overflow
		q++
	}
	if neg {
		return -int64(q)
	}
	return int64(q)
}

// convert turns m into the display currency with the rate table; ok is false
// when no rate is known for m's currency.
func convert(m fleet.Money, to string, rates map[string]Rate) (fleet.Money, bool) {
	if m.Currency == to || m.Micros == 0 {
		return fleet.Money{Micros: m.Micros, Currency: to}, true
	}
	r, ok := rates[m.Currency]
	if !ok {
		return fleet.Money{Currency: to}, false
	}
	return fleet.Money{Micros: mulDiv(m.Micros, uint64(r.Coef), pow10(r.Scale)), Currency: to}, true
}

func pow10(n uint8) uint64 {
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p
}
