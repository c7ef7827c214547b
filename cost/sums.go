package cost

import "iter"

// Sums is exact money in several currencies, one sum each, to be converted
// and rounded once, at the end (Rates.Sum).
//
// The live summary keeps a dozen for every cost line and job and several
// for every node, each second, and a fleet prices its leases in one currency
// or a few: the first currency added is held inline and the others in a
// short slice, so that adding allocates nothing until a second currency
// comes. Change Sums through a pointer (the methods that add take one); a
// copy shares the other currencies' slice, so copy Sums only to read them.
type Sums struct {
	first curAmount
	more  []curAmount // the currencies after the first, in the order added
	used  bool        // first holds a currency
}

type curAmount struct {
	cur string
	amt Exact
}

// Add adds e in currency.
func (m *Sums) Add(e Exact, currency string) {
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

// AddMicros adds whole micro-units in currency.
func (m *Sums) AddMicros(micros int64, currency string) {
	if micros != 0 {
		m.Add(MakeExact(micros, 0), currency)
	}
}

// Merge adds every sum of o.
func (m *Sums) Merge(o Sums) {
	for c, e := range o.All() {
		m.Add(e, c)
	}
}

// Get returns the sum in currency (zero without one).
func (m Sums) Get(currency string) Exact {
	for c, e := range m.All() {
		if c == currency {
			return e
		}
	}
	return Exact{}
}

// All yields each currency and its sum, in the order first added.
func (m Sums) All() iter.Seq2[string, Exact] {
	return func(yield func(string, Exact) bool) {
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
