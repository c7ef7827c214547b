package cost

import (
	"maps"
	"testing"
)

// TestSumsPerCurrency: Sums keeps one exact sum per currency, the
// first inline and the rest after it, whatever order they come in.
func TestSumsPerCurrency(t *testing.T) {
	var m Sums
	m.AddMicros(0, "EUR") // zero adds no currency
	m.Add(MakeExact(1, 3), "USD")
	m.AddMicros(5, "SGD")
	m.AddMicros(2, "USD")
	var o Sums
	o.AddMicros(7, "MYR")
	o.Add(MakeExact(0, RemDen-3), "USD")
	m.Merge(o)
	want := map[string]Exact{"USD": MakeExact(4, 0), "SGD": MakeExact(5, 0), "MYR": MakeExact(7, 0)}
	if got := maps.Collect(m.All()); !maps.Equal(got, want) {
		t.Errorf("sums %v, want %v", got, want)
	}
	var order []string
	for c := range m.All() {
		order = append(order, c)
	}
	if len(order) != 3 || order[0] != "USD" || order[1] != "SGD" || order[2] != "MYR" {
		t.Errorf("currencies in order %v, want USD SGD MYR", order)
	}
	if m.Get("EUR") != (Exact{}) || m.Get("SGD") != MakeExact(5, 0) {
		t.Errorf("get: EUR %v, SGD %v", m.Get("EUR"), m.Get("SGD"))
	}
	if got := maps.Collect(o.All()); len(got) != 2 {
		t.Errorf("merge changed its argument: %v", got)
	}
}
