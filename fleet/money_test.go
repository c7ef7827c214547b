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
		want   string
	}{
		{2_345_000, 2, "2.34"}, {2_355_000, 2, "2.36"}, {2_345_001, 2, "2.35"}, {-2_345_001, 2, "-2.35"},
		{1, 6, "0.000001"}, {-4_000, 2, "0.00"}, {-5_000, 2, "0.00"}, {-15_000, 2, "-0.02"}, {1_500_000, 0, "2"},
		{2_500_000, 0, "2"}, {123_456_789, 3, "123.457"}, {0, 2, "0.00"},
	} {
		if got := FormatMicros(tc.micros, tc.dec); got != tc.want {
			t.Errorf("FormatMicros(%d, %d) = %q, want %q", tc.micros, tc.dec, got, tc.want)
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
		if back, err := ParseMicros(FormatMicros(v, 6)); err != nil || back != v {
			t.Fatalf("%q → %d → %q → %d, %v", s, v, FormatMicros(v, 6), back, err)
		}
	})
}
