package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/store"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	from = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	to   = time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)
)

// usage is a small ledger: Singapore paid in SGD and USD, Dubai in AED, a
// group with nothing used, and an unnamed group.
func usage() []store.Usage {
	return []store.Usage{
		{Group: "", Currency: "USD", LeasedGPUms: 3_600_000, DarkGPUms: 3_600_000,
			Spend: cost.MakeExact(2_490_000, 0), Dark: cost.MakeExact(2_490_000, 0)},
		{Group: "Dubai", Currency: "AED", LeasedGPUms: 604_800_000, ReportedGPUms: 500_000_000, IdleGPUms: 100_000_000,
			DarkGPUms: 104_800_000, Spend: cost.MakeExact(1_537_200_000, 0), Idle: cost.MakeExact(254_166_666, 2_400_000),
			Dark: cost.MakeExact(266_366_666, 2_400_000)},
		{Group: "Singapore", Currency: "SGD", LeasedGPUms: 1_209_600_000, ReportedGPUms: 1_200_000_000, IdleGPUms: 7_200_000,
			DarkGPUms: 9_600_000, Spend: cost.MakeExact(1_122_240_000, 0), Idle: cost.MakeExact(6_680_000, 0),
			Dark: cost.MakeExact(8_906_666, 2_400_000)},
		{Group: "Singapore", Currency: "USD", LeasedGPUms: 302_400_000, ReportedGPUms: 302_400_000,
			Spend: cost.MakeExact(209_160_001, 1_799_999)},
		{Group: "Tokyo | HQ", Currency: "USD", LeasedGPUms: 7_200_000, ReportedGPUms: 7_200_000, IdleGPUms: 7_200_000,
			Spend: cost.MakeExact(5_000_000, 0), Idle: cost.MakeExact(5_000_000, 0)},
	}
}

func TestGolden(t *testing.T) {
	rates, err := cost.ParseRates("USD", map[string]string{"SGD": "0.7412", "AED": "0.2722940776"})
	if err != nil {
		t.Fatal(err)
	}
	converted, err := Build("region", from, to, usage(), &rates)
	if err != nil {
		t.Fatal(err)
	}
	native, err := Build("region", from, to, usage(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		r    Report
	}{{"usd", converted}, {"native", native}} {
		for _, format := range Formats {
			t.Run(c.name+"."+format, func(t *testing.T) {
				var b bytes.Buffer
				if err := Write(&b, c.r, format); err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("testdata", c.name+"."+format)
				if *update {
					if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(b.Bytes(), want) {
					t.Errorf("%s differs from %s:\n%s", format, golden, b.String())
				}
			})
		}
	}
}

func TestBuildConvertsOncePerLine(t *testing.T) {
	rates, err := cost.ParseRates("USD", map[string]string{"SGD": "0.7412", "AED": "0.2722940776"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build("region", from, to, usage(), &rates)
	if err != nil {
		t.Fatal(err)
	}
	var sg Line
	for _, l := range r.Lines {
		if l.Group == "Singapore" {
			sg = l
		}
	}
	// 1,122.24 SGD × 0.7412 = 831.804288 USD, plus 209.160001 + 1,799,999/3,600,000
	// micros USD (0.4999997…): 1,040.964289 USD and a half micro-unit, which
	// rounds down alone; the lines add up to the total, so the total's
	// left-over micro-unit goes to the line with the largest fraction: this one.
	if sg.Currency != "USD" || sg.Spend != 1_040_964_290 {
		t.Fatalf("Singapore spend = %d %s, want 1040964290 USD", sg.Spend, sg.Currency)
	}
	var lines int64
	for _, l := range r.Lines {
		lines += l.Spend
	}
	if r.Total == nil || lines != r.Total.Spend {
		t.Fatalf("lines add up to %d, total %+v", lines, r.Total)
	}
	if r.Total == nil || r.Total.Currency != "USD" {
		t.Fatalf("total = %+v, want one in USD", r.Total)
	}
	// No rate into EUR: every currency keeps its own lines, none is dropped.
	eur, err := Build("region", from, to, usage(), &cost.Rates{Display: "EUR"})
	if err != nil || eur.Total != nil || len(eur.Lines) != 5 {
		t.Fatalf("report without rates: %d lines, total %v, %v; want 5 lines in their own currencies", len(eur.Lines), eur.Total, err)
	}
	native, err := Build("region", from, to, usage(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if native.Total != nil || len(native.Lines) != 5 {
		t.Fatalf("native report: %d lines, total %v; want 5 lines and no total", len(native.Lines), native.Total)
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{Amount(1_234_565, 2), "1.23"}, // half to even below: 1.234565 → 1.23
		{Amount(1_235_000, 2), "1.24"}, // 1.235 → 1.24 (even)
		{Amount(1_225_000, 2), "1.22"}, // 1.225 → 1.22 (even)
		{Amount(-5_000, 2), "0.00"},    // −0.005 → 0 (even)
		{Amount(-15_000, 2), "-0.02"},
		{Amount(7, 6), "0.000007"},
		{GPUHours(3_600_000), "1.000"},
		{GPUHours(1_800), "0.000"}, // 0.0005 → 0.000 (even)
		{GPUHours(5_400), "0.002"}, // 0.0015 → 0.002 (even)
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
