package aggregator

import (
	"math"
	"testing"
	"time"
	"unsafe"

	"github.com/fleettop/fleettop/fleet"
)

func TestHistoryRing(t *testing.T) {
	var h history
	for i := range historyLen + 10 {
		var d fleet.DeviceSample
		d.Set(fleet.MetricUtil, float64(i%101)/100)
		d.Set(fleet.MetricPower, 612.34)
		if i%2 == 0 {
			d.Set(fleet.MetricTemp, 300) // clamps
		}
		d.Set(fleet.MetricMemUsed, -5) // clamps to 0
		h.push(&d)
	}
	v := h.view(0)
	if len(v.Util) != historyLen {
		t.Fatalf("%d points, want %d", len(v.Util), historyLen)
	}
	// The oldest exact point (the fine ring's) is push number historyLen+10-fineLen;
	// the newest is historyLen+9.
	f := historyLen - fineLen
	if got, want := *v.Util[f], float64((historyLen+10-fineLen)%101)/100; got != want {
		t.Fatalf("oldest fine util %v, want %v", got, want)
	}
	last := historyLen + 9
	if got, want := *v.Util[historyLen-1], float64(last%101)/100; got != want {
		t.Fatalf("newest util %v, want %v", got, want)
	}
	if math.Abs(*v.Power[f]-612.3) > 1e-9 || *v.MemUsed[f] != 0 || math.Abs(*v.Power[0]-612.3) > 1e-9 {
		t.Fatalf("power %v mem %v", *v.Power[f], *v.MemUsed[f])
	}
	// That push was even: temperature present, clamped; the next odd: absent.
	if v.Temp[f] == nil || *v.Temp[f] != 254 || v.Temp[f+1] != nil {
		t.Fatalf("temp %v %v", v.Temp[f], v.Temp[f+1])
	}
	if got := h.view(3); len(got.Util) != 3 || *got.Util[2] != *v.Util[historyLen-1] {
		t.Fatalf("last 3: %d points", len(got.Util))
	}
}

func TestHistoryAbsentIsNull(t *testing.T) {
	var h history
	var d fleet.DeviceSample
	d.Set(fleet.MetricTemp, 40)
	h.push(&d)
	v := h.view(0)
	if v.Util[0] != nil || v.Power[0] != nil || v.MemUsed[0] != nil || *v.Temp[0] != 40 {
		t.Fatalf("absent metrics not null: %+v", v)
	}
}

// TestHistoryCoversItsRanges: at the collectors' 1 Hz the ring spans every
// range served from it alone (the history API's test for "long"), its oldest
// step, which may start a step before the span, included.
func TestHistoryCoversItsRanges(t *testing.T) {
	ringSpan := time.Duration(historyLen) * time.Second
	for _, r := range fleet.HistoryRanges[:2] {
		if r.Span+r.Step > ringSpan-time.Second {
			t.Errorf("range %s (%v in %v steps) is longer than the ring's %v", r.Name, r.Span, r.Step, ringSpan)
		}
	}
}

// Past the fine ring, points are kept as means of coarseStep samples, and a
// view still has one point per sample, oldest first.
func TestHistoryCoarsePast(t *testing.T) {
	// tools/loadgen reports RSS beyond the ring with this size
	// (historyRingBytes): change both together.
	if s := unsafe.Sizeof(history{}); s > 1408 {
		t.Fatalf("history is %d bytes, want ≤ 1408 (an allocator size class)", s)
	}
	var h history
	total := fineLen + coarseLen*coarseStep + 37 // overflows the coarse ring too, leaving 2 in the accumulator
	for i := range total {
		var d fleet.DeviceSample
		d.Set(fleet.MetricPower, float64(i)) // 0.1 W steps: exact
		if i%coarseStep != 0 {
			d.Set(fleet.MetricTemp, 50)
		}
		h.push(&d)
	}
	v := h.view(0)
	if len(v.Power) != historyLen {
		t.Fatalf("%d points, want %d", len(v.Power), historyLen)
	}
	// The newest fineLen points are exact.
	for k := 1; k <= fineLen; k++ {
		if got, want := *v.Power[historyLen-k], float64(total-k); got != want {
			t.Fatalf("point -%d: power %v, want %v", k, got, want)
		}
	}
	// Evicted: pushes 0..total-fineLen-1; the accumulator holds the last
	// (total-fineLen) % coarseStep of them, each coarse point a mean of
	// coarseStep.
	evicted := total - fineLen
	acc := evicted % coarseStep
	p := *v.Power[historyLen-fineLen-1]
	if want := float64(evicted-acc) + float64(acc-1)/2; math.Abs(p-want) > 0.5 {
		t.Fatalf("accumulated mean %v, want about %v", p, want)
	}
	if v.Temp[historyLen-fineLen-1] == nil || *v.Temp[historyLen-fineLen-1] != 50 {
		t.Fatalf("temp mean over points that had it: %v", v.Temp[historyLen-fineLen-1])
	}
	if got := h.view(7); len(got.Power) != 7 || *got.Power[6] != float64(total-1) {
		t.Fatalf("last 7: %d points", len(got.Power))
	}
}
