package tui

import (
	"math"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Percent(0.632), "63.2%"},
		{Percent(1), "100.0%"},
		{Percent(0), "0.0%"},
		{Percent(math.NaN()), "-"},
		{Bar(0.5, 4), "██  "},
		{Bar(1, 3), "███"},
		{Bar(0, 3), "   "},
		{Bar(1.7, 2), "██"},
		{Bar(0.0625, 2), "▏ "},
		{Bar(0.5, 0), ""},
		{Sparkline([]float64{0, 0.5, 1}, 0, 1, 3), "▁▅█"},
		{Sparkline([]float64{1, math.NaN()}, 0, 1, 4), "  █ "},
		{Sparkline([]float64{0, 1, 2, 3}, 0, 3, 2), "▆█"},
		{Amount(1_234_567_890), "1,234.57"},
		{Amount(5_000), "0.01"},
		{Amount(4_999), "0.00"},
		{Amount(-12_345_000), "-12.35"},
		{Amount(999_999_999_990_000), "999,999,999.99"},
		{AmountShort(12_340_000), "12.34"},
		{AmountShort(12_345_600_000), "12,346"},
		{AmountShort(123_456_000_000), "123.5k"},
		{AmountShort(-2_500_000_000_000), "-2.5M"},
		{AmountShort(999_995_000), "1,000.00"},
		{AmountShort(-12_345_500_000), "-12,346"}, // half a unit rounds away from zero
		{AmountShort(99_999_500_000), "100,000"},
		{AmountShort(150_250_000_000), "150.3k"}, // exact, not the float's 150.2
		{AmountShort(-150_249_999_999), "-150.2k"},
		{AmountShort(1_250_000_000_000), "1.3M"},
		{Money(1_234_560_000, "USD"), "USD 1,234.56"},
		{Money(0, "SGD"), "SGD 0.00"},
		{Bytes(512), "512B"},
		{Bytes(80 << 30), "80.0G"},
		{Bytes(1.5 * (1 << 40)), "1.5T"},
		{Bytes(141 << 30), "141G"},
		{Watts(350.4), "350W"},
		{Watts(12_400), "12.4kW"},
		{Watts(1_200_000), "1.20MW"},
		{Duration(45 * time.Second), "45s"},
		{Duration(12*time.Minute + 5*time.Second), "12m"},
		{Duration(3*time.Hour + 5*time.Minute), "3h05m"},
		{Duration(-90 * time.Second), "1m"},
		{Duration(4*24*time.Hour + 7*time.Hour), "4d07h"},
		{ShortModel("NVIDIA H100 80GB HBM3"), "H100"},
		{ShortModel("NVIDIA A100-SXM4-80GB"), "A100"},
		{ShortModel("Ascend 910B"), "910B"},
		{ShortModel("NVIDIA H20"), "H20"},
		{ShortModel("Tesla V100-SXM2-16GB"), "V100"},
		{Fit("abc", 5), "abc  "},
		{Fit("abcdef", 4), "abc…"},
		{FitRight("7", 3), "  7"},
		{Fit("日本語", 4), "日…"},
		{grouped("1234567"), "1,234,567"},
		{grouped("12"), "12"},
		{grouped("-1234.57"), "-1,234.57"},
		{grouped("-123.45"), "-123.45"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestNoConversion(t *testing.T) {
	f := NewMerger(nil, "USD", 0.05)
	for _, c := range []struct {
		micros int64
		cur    string
		want   int64
		ok     bool
	}{
		{1_000_000, "USD", 1_000_000, true},
		{1_000_000, "usd", 1_000_000, true},
		{1_000_000, "SGD", 0, false}, // the aggregator converts; the TUI never does
		{1_000_000, "EUR", 0, false},
		{0, "EUR", 0, true},
	} {
		got, ok := f.convert(fleetMoney(c.micros, c.cur), "USD")
		if got != c.want || ok != c.ok {
			t.Errorf("convert(%d %s) = %d, %v; want %d, %v", c.micros, c.cur, got, ok, c.want, c.ok)
		}
	}
}

func TestSnapshotMergesAggregators(t *testing.T) {
	s := fixtureSnapshot()
	if s.Summary.GPUsOnline != 48 || s.Summary.BurnPerHour.Micros != 154_800_000 {
		t.Errorf("summary = %+v", s.Summary)
	}
	// Every count and figure of the summary merges, not only those a view shows today.
	if m := s.Summary; m.NodesDegraded != 2 || m.GPUsLost != 1 || m.GPUsBlind != 2 ||
		m.BlindBurnPerHour.Micros != 5_800_000 || m.PrepaidToday.Micros != 2_000_000 {
		t.Errorf("merged degraded %d, lost %d, blind %d (%d µ/h), prepaid %d µ; want 2, 1, 2 (5800000), 2000000",
			m.NodesDegraded, m.GPUsLost, m.GPUsBlind, m.BlindBurnPerHour.Micros, m.PrepaidToday.Micros)
	}
	var cn *JobRow
	for i := range s.Jobs {
		if s.Jobs[i].ID == "ft-cn-42" {
			cn = &s.Jobs[i]
		}
	}
	if cn == nil || cn.Allowed || cn.GPUs != 2 || len(cn.Jurisdictions) != 2 || cn.BurnMicros != 4_100_000 {
		t.Errorf("job spanning two aggregators = %+v", cn)
	}
	if len(s.Regions) != 4 || s.Regions[3].Region != "Singapore" || s.Regions[3].Alerts != 2 || s.Regions[3].Burn != 70_400_000 {
		t.Errorf("regions = %+v", s.Regions)
	}
	if !s.Alerts[0].Open() || s.Alerts[len(s.Alerts)-1].Open() {
		t.Errorf("alerts not open-first: %+v", s.Alerts)
	}
}
