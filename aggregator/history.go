package aggregator

import (
	"math"

	"github.com/fleettop/fleettop/fleet"
)

// historyLen is the number of points each device's sparkline ring keeps:
// 17 minutes at one sample a second. With its two uint16 cursors a ring is
// 6,124 bytes, just inside the allocator's 6,144-byte size class.
const historyLen = 1020

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

// history is a device's ring of recent points, oldest first from start.
type history struct {
	n     uint16 // valid points, ≤ historyLen
	next  uint16 // where the next point goes
	util  [historyLen]uint8
	temp  [historyLen]uint8
	power [historyLen]uint16
	mem   [historyLen]uint16
}

func quant8(v float64, ok bool, scale float64) uint8 {
	if !ok || math.IsNaN(v) {
		return absent8
	}
	q := math.Round(v * scale)
	switch {
	case q < 0:
		return 0
	case q > absent8-1:
		return absent8 - 1
	}
	return uint8(q)
}

func quant16(v float64, ok bool, scale float64) uint16 {
	if !ok || math.IsNaN(v) {
		return absent16
	}
	q := math.Round(v * scale)
	switch {
	case q < 0:
		return 0
	case q > absent16-1:
		return absent16 - 1
	}
	return uint16(q)
}

// push appends the point of one device sample, overwriting the oldest when full.
func (h *history) push(d *fleet.DeviceSample) {
	i := int(h.next)
	u, uok := d.Get(fleet.MetricUtil)
	t, tok := d.Get(fleet.MetricTemp)
	p, pok := d.Get(fleet.MetricPower)
	m, mok := d.Get(fleet.MetricMemUsed)
	h.util[i] = quant8(u, uok, utilScale)
	h.temp[i] = quant8(t, tok, 1)
	h.power[i] = quant16(p, pok, powerScale)
	h.mem[i] = quant16(m, mok, 1.0/memUnit)
	h.next = uint16((i + 1) % historyLen)
	if h.n < historyLen {
		h.n++
	}
}

// HistoryView is one device's recent history as the API serves it, oldest
// first, one point per sample; absent points are null.
type HistoryView struct {
	Util    []*float64 `json:"util"`     // ratio 0..1
	Power   []*float64 `json:"power"`    // watts
	Temp    []*float64 `json:"temp"`     // °C
	MemUsed []*float64 `json:"mem_used"` // bytes
}

// view expands the ring, keeping at most last points (0: all).
func (h *history) view(last int) HistoryView {
	n := int(h.n)
	if last > 0 && last < n {
		n = last
	}
	vals := make([]float64, 4*n) // one backing array for all four series
	v := HistoryView{
		Util: make([]*float64, n), Power: make([]*float64, n),
		Temp: make([]*float64, n), MemUsed: make([]*float64, n),
	}
	start := (int(h.next) - n + historyLen) % historyLen
	for k := 0; k < n; k++ {
		i := (start + k) % historyLen
		if q := h.util[i]; q != absent8 {
			vals[4*k] = float64(q) / utilScale
			v.Util[k] = &vals[4*k]
		}
		if q := h.power[i]; q != absent16 {
			vals[4*k+1] = float64(q) / powerScale
			v.Power[k] = &vals[4*k+1]
		}
		if q := h.temp[i]; q != absent8 {
			vals[4*k+2] = float64(q)
			v.Temp[k] = &vals[4*k+2]
		}
		if q := h.mem[i]; q != absent16 {
			vals[4*k+3] = float64(q) * memUnit
			v.MemUsed[k] = &vals[4*k+3]
		}
	}
	return v
}
