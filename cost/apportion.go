package cost

import (
	"math/big"
	"sort"
)

// Apportion splits total (micro-units) into integer parts proportional to
// the exact parts, which must add up to a value that rounds to total: each
// part gets its floor, and the micro-units left go one each to the parts
// with the largest fractions (ties: lower index first). So the parts add up
// to total exactly, and each differs from its exact value by less than one
// micro-unit.
func Apportion(total int64, parts []*big.Rat) []int64 {
	out := make([]int64, len(parts))
	fracs := make([]*big.Rat, len(parts))
	var sum int64
	for i, p := range parts {
		q := new(big.Int).Div(p.Num(), p.Denom()) // Euclidean: floor for a positive denominator
		out[i] = q.Int64()
		fracs[i] = new(big.Rat).Sub(p, new(big.Rat).SetInt(q))
		sum += out[i]
	}
	order := make([]int, len(parts))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return fracs[order[a]].Cmp(fracs[order[b]]) > 0 })
	for k := total - sum; k > 0 && len(order) > 0; k-- {
		out[order[(total-sum-k)%int64(len(order))]]++
	}
	for k := sum - total; k > 0 && len(order) > 0; k-- {
		out[order[len(order)-1-int((sum-total-k)%int64(len(order)))]]--
	}
	return out
}
