package tui

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"

	"github.com/fleettop/fleettop/fleet"
)

// Pure formatting helpers: every figure on screen goes through one of these,
// so they are table-tested and never allocate styles.

// Percent formats a ratio 0..1 as "NN.N%".
func Percent(ratio float64) string {
	if math.IsNaN(ratio) {
		return "-"
	}
	return strconv.FormatFloat(ratio*100, 'f', 1, 64) + "%"
}

// Bar draws a ratio 0..1 as a bar of width cells with eighth-block
// resolution; the remainder is padded with spaces.
func Bar(ratio float64, width int) string {
	if width <= 0 {
		return ""
	}
	if math.IsNaN(ratio) || ratio < 0 {
		ratio = 0
	}
	if ratio > 1 {
		ratio = 1
	}
	eighths := int(math.Round(ratio * float64(width*8)))
	full, part := eighths/8, eighths%8
	var b strings.Builder
	b.Grow(width * 3)
	for range full {
		b.WriteString("█")
	}
	n := full
	if part > 0 && n < width {
		b.WriteRune([]rune("▏▎▍▌▋▊▉")[part-1])
		n++
	}
	for ; n < width; n++ {
		b.WriteByte(' ')
	}
	return b.String()
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws the last width values, scaled between lo and hi (values
// outside are clamped); NaN draws a space. Fewer values are right-aligned.
func Sparkline(values []float64, lo, hi float64, width int) string {
	if width <= 0 {
		return ""
	}
	if len(values) > width {
		values = values[len(values)-width:]
	}
	var b strings.Builder
	for range width - len(values) {
		b.WriteByte(' ')
	}
	span := hi - lo
	for _, v := range values {
		if math.IsNaN(v) {
			b.WriteByte(' ')
			continue
		}
		r := 0.0
		if span > 0 {
			r = (v - lo) / span
		}
		i := int(math.Round(r * float64(len(sparkRunes)-1)))
		i = max(0, min(i, len(sparkRunes)-1))
		b.WriteRune(sparkRunes[i])
	}
	return b.String()
}

// Downsample returns vals in at most width points, each the mean of the
// values it stands for (gaps skipped; NaN where all are gaps), so that a
// sparkline shows the whole range rather than its newest width points.
func Downsample(vals []float64, width int) []float64 {
	if width <= 0 || len(vals) <= width {
		return vals
	}
	out := make([]float64, width)
	for i := range width {
		lo, hi := i*len(vals)/width, (i+1)*len(vals)/width
		sum, n := 0.0, 0
		for _, v := range vals[lo:hi] {
			if !math.IsNaN(v) {
				sum += v
				n++
			}
		}
		out[i] = math.NaN()
		if n > 0 {
			out[i] = sum / float64(n)
		}
	}
	return out
}

// Amount formats micro-units as a decimal with thousands separators and two
// decimals, rounded half away from zero: 1234567890 → "1,234.57".
func Amount(micros int64) string { return grouped(fleet.FormatMicros(micros, 2, fleet.HalfAway)) }

// AmountShort formats micro-units compactly for narrow columns: two decimals
// below 1,000, whole units below 100,000, then k and M with one decimal, all
// rounded half away from zero.
func AmountShort(micros int64) string {
	const unit = fleet.MicrosPerUnit
	a := micros
	if a < 0 {
		a = -a
	}
	// For k and M, the ties of one decimal are whole multiples of 1,000 (or
	// 1,000,000) micro-units, so dropping the rest toward zero before
	// rounding gives the figure that rounding the exact amount gives.
	switch {
	case a < 1_000*unit:
		return Amount(micros)
	case a < 100_000*unit:
		return grouped(fleet.FormatMicros(micros, 0, fleet.HalfAway))
	case a < 1_000_000*unit:
		return fleet.FormatMicros(micros/1_000, 1, fleet.HalfAway) + "k"
	default:
		return fleet.FormatMicros(micros/1_000_000, 1, fleet.HalfAway) + "M"
	}
}

// Money formats an amount with its currency code: "USD 1,234.56".
func Money(micros int64, currency string) string {
	if currency == "" {
		return Amount(micros)
	}
	return currency + " " + Amount(micros)
}

func pad2(n int64) string {
	if n < 10 {
		return "0" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

// grouped puts comma thousands separators into the whole part of a plain
// decimal such as "-1234.57" or "12345".
func grouped(s string) string {
	sign, digits := "", s
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		sign, digits = "-", rest
	}
	whole, frac, dot := strings.Cut(digits, ".")
	if len(whole) <= 3 {
		return s
	}
	var b strings.Builder
	b.WriteString(sign)
	pre := len(whole) % 3
	if pre > 0 {
		b.WriteString(whole[:pre])
	}
	for i := pre; i < len(whole); i += 3 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(whole[i : i+3])
	}
	if dot {
		b.WriteString("." + frac)
	}
	return b.String()
}

// Bytes formats a byte count in binary units with at most three significant
// digits before the unit: "80.0G", "512M", "1.5T".
func Bytes(n float64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatFloat(n, 'f', 0, 64) + "B"
	}
	suffix := "KMGTPE"
	i := -1
	for n >= unit && i < len(suffix)-1 {
		n /= unit
		i++
	}
	prec := 1
	if n >= 100 {
		prec = 0
	}
	return strconv.FormatFloat(n, 'f', prec, 64) + suffix[i:i+1]
}

// Watts formats power: "350W", "12.4kW", "1.20MW".
func Watts(w float64) string {
	switch {
	case w < 10_000:
		return strconv.FormatFloat(w, 'f', 0, 64) + "W"
	case w < 1_000_000:
		return strconv.FormatFloat(w/1e3, 'f', 1, 64) + "kW"
	default:
		return strconv.FormatFloat(w/1e6, 'f', 2, 64) + "MW"
	}
}

// Duration formats a duration coarsely for "ago" and "in" columns: "45s",
// "12m", "3h05m", "4d07h".
func Duration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		h := int(d / time.Hour)
		m := int((d % time.Hour) / time.Minute)
		return strconv.Itoa(h) + "h" + pad2(int64(m)) + "m"
	default:
		days := int(d / (24 * time.Hour))
		h := int((d % (24 * time.Hour)) / time.Hour)
		return strconv.Itoa(days) + "d" + pad2(int64(h)) + "h"
	}
}

// ShortModel shortens an accelerator model name for tables:
// "NVIDIA H100 80GB HBM3" → "H100", "Ascend 910B" → "910B",
// "NVIDIA A100-SXM4-80GB" → "A100".
func ShortModel(model string) string {
	s := model
	for _, p := range []string{"NVIDIA ", "Huawei ", "HUAWEI ", "Ascend ", "Tesla ", "GeForce "} {
		s = strings.TrimPrefix(s, p)
	}
	if i := strings.IndexAny(s, " -"); i > 0 {
		s = s[:i]
	}
	if s == "" {
		return model
	}
	return s
}

// Fit pads or truncates s (which may hold ANSI styles) to exactly width cells.
// Truncated text ends with "…".
func Fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	w := cellWidth(s)
	if w == width {
		return s
	}
	if w < width {
		return s + strings.Repeat(" ", width-w)
	}
	return ansi.Truncate(s, width, "…")
}

// FitRight right-aligns s in width cells, truncating like Fit.
func FitRight(s string, width int) string {
	if width <= 0 {
		return ""
	}
	w := cellWidth(s)
	if w < width {
		return strings.Repeat(" ", width-w) + s
	}
	return Fit(s, width)
}

// cellWidth is the display width of s. It skips CSI escape sequences and
// counts runes below U+1100 (Latin, box drawing, blocks, "·", "°", "…") as one
// cell; anything else (wide or combining characters) takes the exact,
// slower grapheme path.
func cellWidth(s string) int {
	w := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == 0x1b {
				if i+1 < len(s) && s[i+1] == '[' {
					j := i + 2
					for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
						j++
					}
					i = j + 1
					continue
				}
				return ansi.StringWidth(s)
			}
			w++
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r >= 0x1100 || (r >= 0x300 && r < 0x370) {
			return ansi.StringWidth(s)
		}
		w++
		i += n
	}
	return w
}
