package fleet

import (
	"fmt"
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

// FormatMicros formats micro-units with decimals (0..6) decimals, rounded
// half to even: FormatMicros(2_345_000, 2) is "2.34", (2_355_000, 2) "2.36".
//
// Only tests call it so far (deadcode lists it): the TUI and the report still
// round half away from zero with their own formatters, and moving them onto
// this one rule changes figures users see by a cent, so it is left for a
// change of its own.
func FormatMicros(micros int64, decimals int) string {
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
	q, r := u/uint64(div), u%uint64(div)
	if twice := 2 * r; twice > uint64(div) || twice == uint64(div) && q&1 == 1 {
		q++
	}
	scale := uint64(1)
	for range decimals {
		scale *= 10
	}
	s := fmt.Sprintf("%d", q/scale)
	if decimals > 0 {
		s += fmt.Sprintf(".%0*d", decimals, q%scale)
	}
	if neg && q != 0 {
		s = "-" + s
	}
	return s
}
