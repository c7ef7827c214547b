package main

import (
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	ref := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"today", time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)},
		{"month", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"1d", ref.Add(-24 * time.Hour)},
		{"36h", ref.Add(-36 * time.Hour)},
		{"2026-03-01", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseWhen(c.in, ref, time.UTC)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if _, err := parseWhen("yesterday", ref, time.UTC); err == nil {
		t.Error("parseWhen(yesterday) succeeded")
	}
}

// In Singapore (UTC+8) the 14th began at 16:00 UTC on the 13th.
func TestParseWhenInZone(t *testing.T) {
	sg, err := time.LoadLocation("Asia/Singapore")
	if err != nil {
		t.Skip("no zoneinfo:", err)
	}
	ref := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"today":      time.Date(2026, 3, 13, 16, 0, 0, 0, time.UTC),
		"month":      time.Date(2026, 2, 28, 16, 0, 0, 0, time.UTC),
		"2026-03-01": time.Date(2026, 2, 28, 16, 0, 0, 0, time.UTC),
	} {
		if got, err := parseWhen(in, ref, sg); err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) in Singapore = %v, %v; want %v", in, got, err, want)
		}
	}
}
