package aggregator

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/wire"
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

// The default order's cached rows page exactly as pageRows does: every
// direction, filter and range, and after rows come, go and change hostname
// (the hub marks the order stale).
func TestDefaultOrderPagesAsPageRows(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	regions := []string{"Singapore", "Johor", "Dubai"}
	var all []*rowEntry
	add := func(n int) {
		for range n {
			k := len(all)
			e := &rowEntry{row: wire.NodeRow{ID: fmt.Sprintf("n-%04d", k), Region: regions[rng.IntN(3)],
				Hostname: fmt.Sprintf("gpu-%d", rng.IntN(50)), State: wire.StateOnline}}
			e.search = strings.ToLower(e.row.ID + " " + e.row.Hostname + " " + e.row.Region)
			all = append(all, e)
		}
	}
	var d defaultOrder
	check := func(when string) {
		t.Helper()
		for range 50 {
			q := wire.NodeQuery{Offset: rng.IntN(len(all) + 5), Limit: rng.IntN(30), Desc: rng.IntN(2) == 0}
			if rng.IntN(3) == 0 {
				q.Offset = 0
			}
			switch rng.IntN(3) {
			case 0:
				q.Filter = "johor"
			case 1:
				q.Filter = fmt.Sprintf("gpu-%d", rng.IntN(10))
			}
			wt, wp := pageRows(slices.Clone(all), q)
			gt, gp := d.page(all, q)
			if gt != wt || !slices.Equal(gp, wp) {
				t.Fatalf("%s, %+v: total %d, page %v; pageRows: %d, %v", when, q, gt, ids(gp), wt, ids(wp))
			}
		}
	}
	add(200)
	check("first rows")
	add(37)
	check("after rows came")
	all = slices.Delete(all, 10, 50)
	d.stale = true // as the hub, when nodes are forgotten
	check("after rows went")
	for _, e := range all[:20] {
		e.row.Hostname = fmt.Sprintf("renamed-%d", rng.IntN(100))
	}
	d.stale = true // as the hub, when a hostname changed
	check("after hostnames changed")
}

func ids(rows []*rowEntry) []string {
	out := make([]string, len(rows))
	for i, e := range rows {
		out[i] = e.row.ID
	}
	return out
}
