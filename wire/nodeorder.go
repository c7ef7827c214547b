package wire

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// NodeKey is what the node sorts (Sort*) read of a node.
type NodeKey struct {
	Region, Hostname, ID string
	State, Provider      string
	Util, Hottest        float64 // NaN when unknown
	Burn                 int64   // micros per hour
	Power, MemUsed       float64
	Jobs                 []string
}

// cmpBy compares a and b by sort's own key, in its natural direction;
// known is false for SortDefault and for what is no Sort* constant (ties
// and both of those go to the default order).
func cmpBy(sort string, a, b *NodeKey) (c int, known bool) {
	switch sort {
	case SortHost:
		return strings.Compare(a.Hostname, b.Hostname), true
	case SortUtil:
		return cmpDescNaNLast(a.Util, b.Util), true
	case SortBurn:
		return cmp.Compare(b.Burn, a.Burn), true
	case SortTemp:
		return cmpDescNaNLast(a.Hottest, b.Hottest), true
	case SortState:
		return strings.Compare(a.State, b.State), true
	case SortPower:
		return cmp.Compare(b.Power, a.Power), true
	case SortMem:
		return cmp.Compare(b.MemUsed, a.MemUsed), true
	case SortProvider:
		return strings.Compare(a.Provider, b.Provider), true
	case SortJobs:
		return slices.Compare(a.Jobs, b.Jobs), true
	}
	return 0, false
}

// KnownNodeSort reports whether sort is one of the Sort* constants.
func KnownNodeSort(sort string) bool {
	var k NodeKey
	_, known := cmpBy(sort, &k, &k)
	return known || sort == SortDefault
}

// NodeOrder is the order of q's sort and direction over rows of type R,
// whose keys key reads: the order an aggregator pages nodes in, and so the
// one a viewer merges several aggregators' pages in. An unknown sort is the
// default order.
func NodeOrder[R any](q NodeQuery, key func(R) NodeKey) func(a, b R) int {
	order := func(a, b R) int {
		ka, kb := key(a), key(b)
		if c, _ := cmpBy(q.Sort, &ka, &kb); c != 0 {
			return c
		}
		if c := strings.Compare(ka.Region, kb.Region); c != 0 {
			return c
		}
		if c := strings.Compare(ka.Hostname, kb.Hostname); c != 0 {
			return c
		}
		return strings.Compare(ka.ID, kb.ID)
	}
	if q.Desc {
		return func(a, b R) int { return order(b, a) }
	}
	return order
}

// cmpDescNaNLast compares figures highest first, unknown (NaN) last.
func cmpDescNaNLast(a, b float64) int {
	switch an, bn := math.IsNaN(a), math.IsNaN(b); {
	case an && bn:
		return 0
	case an:
		return 1
	case bn:
		return -1
	}
	return cmp.Compare(b, a)
}
