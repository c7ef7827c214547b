package fleet

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseMicros parses a plain decimal amount ("2.35", "50000", "-0.5") into
// integer micro-units, exactly: no float, no exponent, at most six decimals
// (a seventh is an error, never a rounding). This is fleettop's one money
// parser; every config file and flag that holds an amount goes through it.
func ParseMicros(s string) (int64, error) {
	s = strings.TrimSpace(s)
	body, neg := strings.CutPrefix(s, "-")
	ip, fp, hasDot := strings.Cut(body, ".")
	if ip == "" || (hasDot && fp == "") {
		return 0, fmt.Errorf("%q is not a decimal amount such as 2.35", s)
	}
	if len(fp) > 6 {
		return 0, fmt.Errorf("%q has more than 6 decimals", s)
	}
	if len(ip) > 12 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	var v int64
	for _, c := range ip + (fp + "000000")[:6] {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal amount such as 2.35", s)
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, nil
}

// Rounding is how FormatMicros rounds an amount it shortens when the digits
// it drops are exactly half a step.
type Rounding uint8

const (
	// HalfAway rounds ties away from zero: 2.345 is "2.35", -2.345 "-2.35".
	// Screens and messages show it (the TUI, Money.String in alert texts).
	HalfAway Rounding = iota
	// HalfEven rounds ties to the even digit: 2.345 is "2.34", 2.355 "2.36",
	// as cost.RoundRat rounds exact amounts. Reports show it, so a column of
	// rounded figures does not drift upward.
	HalfEven
)

// FormatMicros formats micro-units as a plain decimal with decimals (0..6)
// decimals, rounded by r: FormatMicros(2_345_000, 2, HalfEven) is "2.34".
// It is fleettop's one money formatter; each view picks its rounding and adds
// its own decoration (thousands separators, a currency code).
func FormatMicros(micros int64, decimals int, r Rounding) string {
	decimals = min(max(decimals, 0), 6)
	div := int64(1)
	for range 6 - decimals {
		div *= 10
	}
	neg := micros < 0
	u := uint64(micros)
	if neg {
		u = -u
	}
	q, rem := u/uint64(div), u%uint64(div)
	if twice := 2 * rem; twice > uint64(div) || twice == uint64(div) && (r == HalfAway || q&1 == 1) {
		q++
	}
	scale := uint64(1)
	for range decimals {
		scale *= 10
	}
	s := strconv.FormatUint(q/scale, 10)
	if decimals > 0 {
		frac := strconv.FormatUint(q%scale, 10)
		s += "." + strings.Repeat("0", decimals-len(frac)) + frac
	}
	if neg && q != 0 {
		s = "-" + s
	}
	return s
}
