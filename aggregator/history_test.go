package aggregator

import (
	"math"
	"testing"

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
	// Oldest kept is push number 10; newest is historyLen+9.
	if got, want := *v.Util[0], float64(10%101)/100; got != want {
		t.Fatalf("oldest util %v, want %v", got, want)
	}
	last := historyLen + 9
	if got, want := *v.Util[historyLen-1], float64(last%101)/100; got != want {
		t.Fatalf("newest util %v, want %v", got, want)
	}
	if math.Abs(*v.Power[0]-612.3) > 1e-9 || *v.MemUsed[0] != 0 {
		t.Fatalf("power %v mem %v", *v.Power[0], *v.MemUsed[0])
	}
	// Push 10 was even: temperature present, clamped; push 11 odd: absent.
	if v.Temp[0] == nil || *v.Temp[0] != 254 || v.Temp[1] != nil {
		t.Fatalf("temp %v %v", v.Temp[0], v.Temp[1])
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
