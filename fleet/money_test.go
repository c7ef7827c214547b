package fleet

import "testing"

func TestParseMicros(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2.35", 2_350_000, true}, {"0.000001", 1, true}, {"10", 10_000_000, true}, {"3.5", 3_500_000, true},
		{" 0.1 ", 100_000, true}, {"50000", 50_000_000_000, true}, {"-0.5", -500_000, true},
		{"999999999999.999999", 999_999_999_999_999_999, true},
		{"", 0, false}, {"-", 0, false}, {"1.2345678", 0, false}, {"0.0000001", 0, false}, {"1e3", 0, false},
		{"NaN", 0, false}, {".5", 0, false}, {"1.", 0, false}, {"1,5", 0, false}, {"+1", 0, false},
		{"1000000000000", 0, false}, {"1.-5", 0, false},
	} {
		got, err := ParseMicros(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseMicros(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFormatMicros(t *testing.T) {
	for _, tc := range []struct {
		micros int64
		dec    int
		r      Rounding
		want   string
	}{
		// Half to even (reports).
		{2_345_000, 2, HalfEven, "2.34"}, {2_355_000, 2, HalfEven, "2.36"}, {2_345_001, 2, HalfEven, "2.35"},
		{-2_345_001, 2, HalfEven, "-2.35"}, {1, 6, HalfEven, "0.000001"}, {-4_000, 2, HalfEven, "0.00"},
		{-5_000, 2, HalfEven, "0.00"}, {-15_000, 2, HalfEven, "-0.02"}, {1_500_000, 0, HalfEven, "2"},
		{2_500_000, 0, HalfEven, "2"}, {123_456_789, 3, HalfEven, "123.457"}, {0, 2, HalfEven, "0.00"},
		{1_234_565, 2, HalfEven, "1.23"}, {1_235_000, 2, HalfEven, "1.24"}, {1_225_000, 2, HalfEven, "1.22"},
		{7, 6, HalfEven, "0.000007"}, {-1_000_050, 4, HalfEven, "-1.0000"},
		// Half away from zero (screens).
		{2_345_000, 2, HalfAway, "2.35"}, {-2_345_000, 2, HalfAway, "-2.35"}, {2_344_999, 2, HalfAway, "2.34"},
		{5_000, 2, HalfAway, "0.01"}, {4_999, 2, HalfAway, "0.00"}, {-5_000, 2, HalfAway, "-0.01"},
		{-4_999, 2, HalfAway, "0.00"}, {2_500_000, 0, HalfAway, "3"}, {1_234_567_890, 2, HalfAway, "1234.57"},
		{-9_223_372_036_854_775_808, 2, HalfAway, "-9223372036854.78"}, {12, 9, HalfAway, "0.000012"},
		{1_050_000, 1, HalfAway, "1.1"}, {1_250_000, 1, HalfAway, "1.3"},
	} {
		if got := FormatMicros(tc.micros, tc.dec, tc.r); got != tc.want {
			t.Errorf("FormatMicros(%d, %d, %d) = %q, want %q", tc.micros, tc.dec, tc.r, got, tc.want)
		}
	}
}

func FuzzParseMicros(f *testing.F) {
	for _, s := range []string{"2.35", "-0.5", "1e3", "999999999999.999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseMicros(s)
		if err != nil {
			return
		}
		if back, err := ParseMicros(FormatMicros(v, 6, HalfEven)); err != nil || back != v {
			t.Fatalf("%q → %d → %q → %d, %v", s, v, FormatMicros(v, 6, HalfEven), back, err)
		}
	})
}
