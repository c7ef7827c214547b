package insight

import (
	"maps"
	"testing"

	"github.com/fleettop/fleettop/cost"
)

// TestMultiSumsPerCurrency: a multi keeps one exact sum per currency, the
// first inline and the rest after it, whatever order they come in.
func TestMultiSumsPerCurrency(t *testing.T) {
	var m multi
	m.addMicros(0, "EUR") // zero adds no currency
	m.add(cost.MakeExact(1, 3), "USD")
	m.addMicros(5, "SGD")
	m.addMicros(2, "USD")
	var o multi
	o.addMicros(7, "MYR")
	o.add(cost.MakeExact(0, cost.RemDen-3), "USD")
	m.merge(o)
	want := map[string]cost.Exact{"USD": cost.MakeExact(4, 0), "SGD": cost.MakeExact(5, 0), "MYR": cost.MakeExact(7, 0)}
	if got := maps.Collect(m.all()); !maps.Equal(got, want) {
		t.Errorf("sums %v, want %v", got, want)
	}
	var order []string
	for c := range m.all() {
		order = append(order, c)
	}
	if len(order) != 3 || order[0] != "USD" || order[1] != "SGD" || order[2] != "MYR" {
		t.Errorf("currencies in order %v, want USD SGD MYR", order)
	}
	if m.get("EUR") != (cost.Exact{}) || m.get("SGD") != cost.MakeExact(5, 0) {
		t.Errorf("get: EUR %v, SGD %v", m.get("EUR"), m.get("SGD"))
	}
	if got := maps.Collect(o.all()); len(got) != 2 {
		t.Errorf("merge changed its argument: %v", got)
	}
}
