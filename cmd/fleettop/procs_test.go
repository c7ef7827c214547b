package main

import "testing"

func TestNextProcs(t *testing.T) {
	for _, c := range []struct {
		cur, max int
		load     float64
		want     int
	}{
		{2, 2, 0.05, 1},   // light: one P
		{2, 2, 0.30, 2},   // inside the band: as it is
		{1, 2, 0.30, 1},   // likewise
		{1, 2, 0.50, 2},   // heavy on one P: all of them
		{2, 2, 0.90, 2},   // heavy: stays
		{1, 16, 0.46, 16}, // back to the machine's, not 2
	} {
		if got := nextProcs(c.cur, c.max, c.load); got != c.want {
			t.Errorf("nextProcs(%d, %d, %.2f) = %d, want %d", c.cur, c.max, c.load, got, c.want)
		}
	}
}
