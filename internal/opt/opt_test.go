package opt

import (
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{0, time.Second},
		{-5, time.Second},
		{3 * time.Millisecond, 3 * time.Millisecond},
	} {
		got := tc.in
		Positive(&got, time.Second)
		if got != tc.want {
			t.Errorf("Positive(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	n, f := 0, 0.25
	Positive(&n, 7)
	Positive(&f, 0.05)
	if n != 7 || f != 0.25 {
		t.Errorf("int %d (want 7), float %v (want 0.25)", n, f)
	}
}
