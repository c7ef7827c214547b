package insight

import (
	"iter"

	"github.com/fleettop/fleettop/cost"
)

// multi sums exact money in several currencies; it is rounded and converted
// once, at the end (Engine.conv).
//
// Summarize keeps a dozen sums for every cost line and job and several for
// every node, each second, and a fleet prices its leases in one currency or a
// few: the first currency added is held inline and the others in a short
// slice, so that adding allocates nothing until a second currency comes.
// Change a multi through a pointer (the methods that add take one); a copy
// shares the other currencies' slice, so copy one only to read it.
type multi struct {
	first curAmount
	more  []curAmount // the currencies after the first, in the order added
	used  bool        // first holds a currency
}

type curAmount struct {
	cur string
	amt cost.Exact
}

func (m *multi) add(e cost.Exact, currency string) {
	if e.IsZero() {
		return
	}
	switch {
	case !m.used:
		m.first, m.used = curAmount{currency, e}, true
		return
	case m.first.cur == currency:
		m.first.amt = m.first.amt.Add(e)
		return
	}
	for i := range m.more {
		if m.more[i].cur == currency {
			m.more[i].amt = m.more[i].amt.Add(e)
			return
		}
	}
	m.more = append(m.more, curAmount{currency, e})
}

func (m *multi) addMicros(micros int64, currency string) {
	if micros != 0 {
		m.add(cost.MakeExact(micros, 0), currency)
	}
}

func (m *multi) merge(o multi) {
	for c, e := range o.all() {
		m.add(e, c)
	}
}

// get returns the sum in currency (zero without one).
func (m multi) get(currency string) cost.Exact {
	for c, e := range m.all() {
		if c == currency {
			return e
		}
	}
	return cost.Exact{}
}

// all yields each currency and its sum, in the order first added.
func (m multi) all() iter.Seq2[string, cost.Exact] {
	return func(yield func(string, cost.Exact) bool) {
		if !m.used || !yield(m.first.cur, m.first.amt) {
			return
		}
		for _, a := range m.more {
			if !yield(a.cur, a.amt) {
				return
			}
		}
	}
}
