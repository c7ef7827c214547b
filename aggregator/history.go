package aggregator

import (
	"math"

	"github.com/fleettop/fleettop/fleet"
)

// A device's history covers 910 samples (15 minutes and 10 s at the
// collectors' 1 Hz: the 15m range with its oldest step, see
// TestHistoryCoversItsRanges), shaped to the history API's ranges it serves
// (fleet.HistoryRanges): the last minute at one point a sample (the 1m
// range's 1 s step) and the 850 samples before at one point per 5 (their
// mean: the 15m range's 5 s step). That is 1,408 B a device, exactly one
// allocator size class (it was 1,536 B with 100 samples more than any
// range reads, 2.3 KB with 5 fine minutes, and 6.1 KB with 17).
const (
	fineLen    = 60
	coarseLen  = 170
	coarseStep = 5
	historyLen = fineLen + coarseLen*coarseStep // points a view spans
)

// Quantisation of history points. Each point costs 6 bytes: utilisation in
// half-percent steps and temperature in whole °C (one byte each), power in 0.1 W
// and used memory in 16 MiB steps (two bytes each). The largest value of each
// type marks an absent metric.
const (
	utilScale  = 200
	absent8    = math.MaxUint8
	absent16   = math.MaxUint16
	powerScale = 10
	memUnit    = 16 << 20
)

// point is one quantised history point.
type point struct {
	util, temp uint8
	power, mem uint16
}

// history is a device's recent points: a ring of fine points and, for the
// points it evicts, a ring of coarse ones, each the mean of coarseStep
// evicted points (a metric absent from all of them stays absent).
type history struct {
	n, next   uint16 // fine points held, where the next goes
	cn, cnext uint16 // coarse points held, where the next goes
	fine      [fineLen]point
	coarse    [coarseLen]point
	acc       accum // evicted fine points not yet folded into a coarse one
}

// accum sums evicted points per metric.
type accum struct {
	k              uint8 // points folded in
	nu, nt, np, nm uint8 // how many had each metric
	util, temp     uint16
	power, mem     uint32
}

func (a *accum) add(p point) {
	a.k++
	fold(&a.util, &a.nu, p.util)
	fold(&a.temp, &a.nt, p.temp)
	fold(&a.power, &a.np, p.power)
	fold(&a.mem, &a.nm, p.mem)
}

// mean returns the accumulated points' mean (rounded), absent where none had it.
func (a *accum) mean() point {
	return point{meanOf[uint8](a.util, a.nu), meanOf[uint8](a.temp, a.nt), meanOf[uint16](a.power, a.np), meanOf[uint16](a.mem, a.nm)}
}

// fold adds quantised value v to sum and counts it in n, unless it is
// absent (T's largest value).
func fold[T uint8 | uint16, S uint16 | uint32](sum *S, n *uint8, v T) {
	if v != ^T(0) {
		*sum += S(v)
		*n++
	}
}

// meanOf is the rounded mean of n values summing to sum, absent (T's
// largest value) when n is 0.
func meanOf[T uint8 | uint16, S uint16 | uint32](sum S, n uint8) T {
	if n == 0 {
		return ^T(0)
	}
	return T((uint32(sum) + uint32(n)/2) / uint32(n))
}

// quant scales v into T's range below its largest value, which stands for
// absent (as does NaN).
func quant[T uint8 | uint16](v float64, ok bool, scale float64) T {
	absent := ^T(0)
	if !ok || math.IsNaN(v) {
		return absent
	}
	q := math.Round(v * scale)
	switch {
	case q < 0:
		return 0
	case q > float64(absent-1):
		return absent - 1
	}
	return T(q)
}

// push appends the point of one device sample; the oldest fine point, when
// the fine ring is full, moves into the coarse ring's accumulator.
func (h *history) push(d *fleet.DeviceSample) {
	u, uok := d.Get(fleet.MetricUtil)
	t, tok := d.Get(fleet.MetricTemp)
	p, pok := d.Get(fleet.MetricPower)
	m, mok := d.Get(fleet.MetricMemUsed)
	pt := point{quant[uint8](u, uok, utilScale), quant[uint8](t, tok, 1), quant[uint16](p, pok, powerScale), quant[uint16](m, mok, 1.0/memUnit)}
	i := int(h.next)
	if h.n == fineLen {
		h.acc.add(h.fine[i])
		if h.acc.k == coarseStep {
			h.coarse[h.cnext] = h.acc.mean()
			h.cnext = uint16((int(h.cnext) + 1) % coarseLen)
			if h.cn < coarseLen {
				h.cn++
			}
			h.acc = accum{}
		}
	} else {
		h.n++
	}
	h.fine[i] = pt
	h.next = uint16((i + 1) % fineLen)
}

// points returns the history oldest first, one point per sample: each coarse
// point and the accumulator's mean stand for the samples they summarise.
func (h *history) points() []point {
	out := make([]point, 0, int(h.cn)*coarseStep+int(h.acc.k)+int(h.n))
	cstart := (int(h.cnext) - int(h.cn) + coarseLen) % coarseLen
	for k := 0; k < int(h.cn); k++ {
		p := h.coarse[(cstart+k)%coarseLen]
		for range coarseStep {
			out = append(out, p)
		}
	}
	if h.acc.k > 0 {
		p := h.acc.mean()
		for range h.acc.k {
			out = append(out, p)
		}
	}
	start := (int(h.next) - int(h.n) + fineLen) % fineLen
	for k := 0; k < int(h.n); k++ {
		out = append(out, h.fine[(start+k)%fineLen])
	}
	if len(out) > historyLen {
		out = out[len(out)-historyLen:]
	}
	return out
}

// HistoryView is one device's recent history as the API serves it, oldest
// first, one point per sample; absent points are null.
type HistoryView struct {
	Util    []*float64 `json:"util"`     // ratio 0..1
	Power   []*float64 `json:"power"`    // watts
	Temp    []*float64 `json:"temp"`     // °C
	MemUsed []*float64 `json:"mem_used"` // bytes
}

// view expands the history, keeping at most last points (0: all).
func (h *history) view(last int) HistoryView {
	pts := h.points()
	if last > 0 && last < len(pts) {
		pts = pts[len(pts)-last:]
	}
	n := len(pts)
	vals := make([]float64, 4*n) // one backing array for all four series
	v := HistoryView{
		Util: make([]*float64, n), Power: make([]*float64, n),
		Temp: make([]*float64, n), MemUsed: make([]*float64, n),
	}
	for k, p := range pts {
		if p.util != absent8 {
			vals[4*k] = float64(p.util) / utilScale
			v.Util[k] = &vals[4*k]
		}
		if p.power != absent16 {
			vals[4*k+1] = float64(p.power) / powerScale
			v.Power[k] = &vals[4*k+1]
		}
		if p.temp != absent8 {
			vals[4*k+2] = float64(p.temp)
			v.Temp[k] = &vals[4*k+2]
		}
		if p.mem != absent16 {
			vals[4*k+3] = float64(p.mem) * memUnit
			v.MemUsed[k] = &vals[4*k+3]
		}
	}
	return v
}
