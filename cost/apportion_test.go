package cost

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestApportion(t *testing.T) {
	r := func(a, b int64) *big.Rat { return big.NewRat(a, b) }
	for _, c := range []struct {
		parts []*big.Rat
		want  []int64
	}{
		{[]*big.Rat{r(1, 2), r(1, 2), r(1, 1)}, []int64{1, 0, 1}},             // 2 in all: first tie wins
		{[]*big.Rat{r(10, 3), r(10, 3), r(10, 3)}, []int64{4, 3, 3}},          // 10
		{[]*big.Rat{r(7, 1), r(0, 1)}, []int64{7, 0}},                         // exact
		{[]*big.Rat{r(5, 4), r(7, 4), r(3, 2)}, []int64{1, 2, 1}},             // 4.5 rounds to 4 (half to even)
		{[]*big.Rat{r(1, 3_600_000), r(3_599_999, 3_600_000)}, []int64{0, 1}}, // 1
	} {
		sum := new(big.Rat)
		for _, p := range c.parts {
			sum.Add(sum, p)
		}
		got := Apportion(RoundRat(sum), c.parts)
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("Apportion(%v) = %v, want %v", c.parts, got, c.want)
				break
			}
		}
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for range 1000 {
		n := 1 + rng.IntN(20)
		parts := make([]*big.Rat, n)
		sum := new(big.Rat)
		for i := range parts {
			parts[i] = big.NewRat(rng.Int64N(1e12), 1+rng.Int64N(RemDen))
			sum.Add(sum, parts[i])
		}
		total := RoundRat(sum)
		var got int64
		for i, v := range Apportion(total, parts) {
			got += v
			d := new(big.Rat).Sub(new(big.Rat).SetInt64(v), parts[i])
			if d.Abs(d).Cmp(big.NewRat(1, 1)) >= 0 {
				t.Fatalf("part %d: %d for %v", i, v, parts[i])
			}
		}
		if got != total {
			t.Fatalf("parts add up to %d, total %d", got, total)
		}
	}
}
