package aggregator

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// selectRange puts in a[lo:hi] exactly what a full sort puts there, for
// random, sorted, reversed and organ-pipe inputs and every kind of range.
func TestSelectRangeMatchesSort(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	shapes := map[string]func(n int) []int{
		"random":   func(n int) []int { return rng.Perm(n) },
		"sorted":   func(n int) []int { a := rng.Perm(n); slices.Sort(a); return a },
		"reversed": func(n int) []int { a := rng.Perm(n); slices.Sort(a); slices.Reverse(a); return a },
		"organ": func(n int) []int {
			a := make([]int, n)
			for i := range a {
				a[i] = min(i, n-1-i)*2 + i%2
			}
			return a
		},
	}
	for name, shape := range shapes {
		for _, n := range []int{0, 1, 5, 16, 17, 40, 1000, 5000} {
			want := shape(n)
			in := slices.Clone(want)
			slices.Sort(want)
			for range 20 {
				lo := 0
				if n > 0 {
					lo = rng.IntN(n + 1)
				}
				hi := lo + rng.IntN(n-lo+1)
				if rng.IntN(4) == 0 {
					lo = 0 // a first page
					hi = min(n, 50)
				}
				a := slices.Clone(in)
				selectRange(a, lo, hi, cmp.Compare[int])
				if !slices.Equal(a[lo:hi], want[lo:hi]) {
					t.Fatalf("%s n=%d [%d,%d): got %v, want %v", name, n, lo, hi, a[lo:hi], want[lo:hi])
				}
				slices.Sort(a)
				if !slices.Equal(a, want) {
					t.Fatalf("%s n=%d: elements lost", name, n)
				}
			}
		}
	}
}
