package cost

import (
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func at(h, m, s int) time.Time {
	return t0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
}

func usd(micros int64) fleet.Money { return fleet.Money{Micros: micros, Currency: "USD"} }

func TestPriceTimesAndRound(t *testing.T) {
	for _, c := range []struct {
		price, ms int64
		want      Exact
		round     int64
	}{
		{2_500_000, 3_600_000, Exact{2_500_000, 0}, 2_500_000},
		{2_500_000, 1_000, Exact{694, 1_600_000}, 694},             // 694.444…
		{1_000_001, 1_800_000, Exact{500_000, 1_800_000}, 500_000}, // 500000.5 → even
		{1_000_003, 1_800_000, Exact{500_001, 1_800_000}, 500_002}, // 500001.5 → even
		{3, 3_000_000, Exact{2, 1_800_000}, 2},                     // 2.5 → 2
		{-2_500_000, 1_000, Exact{-695, 2_000_000}, -694},          // −694.44…
		{0, 1_000, Exact{}, 0},
	} {
		got := PriceTimes(c.price, c.ms)
		if got != c.want || got.Round() != c.round {
			t.Errorf("PriceTimes(%d, %d) = %v (rounds %d), want %v (%d)", c.price, c.ms, got, got.Round(), c.want, c.round)
		}
		if RoundRat(got.Rat()) != c.round {
			t.Errorf("RoundRat(%v) = %d, want %d", got, RoundRat(got.Rat()), c.round)
		}
	}
	// 1e12 micros/h × 1e10 ms would need more than 64 bits of micro-units
	defer func() {
		if recover() == nil {
			t.Error("PriceTimes did not refuse an overflow")
		}
	}()
	PriceTimes(1<<62, 1<<40)
}

func TestExactAddSub(t *testing.T) {
	a := MakeExact(5, 3_000_000)
	b := MakeExact(1, 1_000_000)
	if got := a.Add(b); got != (Exact{7, 400_000}) {
		t.Errorf("Add = %v", got)
	}
	if got := b.Sub(a); got != (Exact{-5, 1_600_000}) {
		t.Errorf("Sub = %v", got)
	}
	if got := MakeExact(0, -1); got != (Exact{-1, RemDen - 1}) {
		t.Errorf("MakeExact(0,-1) = %v", got)
	}
}

func TestAccrue(t *testing.T) {
	perSec := func(price int64, gpus int, start, end time.Time) Version {
		return Version{Price: usd(price), GPUs: gpus, Billing: fleet.BillPerSecond, Start: start, End: end}
	}
	perHour := func(price int64, gpus int, start, end time.Time) Version {
		v := perSec(price, gpus, start, end)
		v.Billing = fleet.BillPerStartedHour
		return v
	}
	withFrom := func(v Version, from time.Time) Version { v.From = from; return v }
	for _, c := range []struct {
		name             string
		vs               []Version
		origin, from, to time.Time
		leasedMs         int64
		basis, charge    Exact
	}{
		{"per second, one hour, 8 GPUs", []Version{perSec(2_000_000, 8, t0, time.Time{})}, t0, at(1, 0, 0), at(2, 0, 0),
			8 * 3_600_000, Exact{16_000_000, 0}, Exact{16_000_000, 0}},
		{"clipped by lease start and end", []Version{perSec(3_600_000, 1, at(1, 30, 0), at(1, 40, 0))}, t0, t0, at(3, 0, 0),
			600_000, Exact{600_000, 0}, Exact{600_000, 0}},
		{"clipped by origin", []Version{perSec(3_600_000, 1, t0, time.Time{})}, at(0, 59, 0), t0, at(1, 0, 0),
			60_000, Exact{60_000, 0}, Exact{60_000, 0}},
		{"price change mid-interval", []Version{perSec(1_000_000, 2, t0, time.Time{}), withFrom(perSec(2_000_000, 2, t0, time.Time{}), at(0, 30, 0))},
			t0, t0, at(1, 0, 0), 2 * 3_600_000, Exact{3_000_000, 0}, Exact{3_000_000, 0}},
		{"per started hour: 90 minutes are two hours", []Version{perHour(2_000_000, 1, at(0, 10, 0), at(1, 40, 0))}, t0, t0, at(5, 0, 0),
			5_400_000, Exact{3_000_000, 0}, Exact{4_000_000, 0}},
		{"per started hour: charged where the hour starts", []Version{perHour(2_000_000, 1, at(0, 10, 0), time.Time{})}, t0, at(1, 0, 0), at(2, 0, 0),
			3_600_000, Exact{2_000_000, 0}, Exact{2_000_000, 0}},
		{"per started hour: none starts in [0:20, 1:05)", []Version{perHour(2_000_000, 1, at(0, 10, 0), time.Time{})}, t0, at(0, 20, 0), at(1, 5, 0),
			2_700_000, Exact{1_500_000, 0}, Exact{}},
		{"per started hour at the price when it starts", []Version{perHour(1_000_000, 1, t0, time.Time{}), withFrom(perHour(3_000_000, 1, t0, time.Time{}), at(0, 30, 0))},
			t0, t0, at(2, 0, 0), 7_200_000, Exact{5_000_000, 0}, Exact{4_000_000, 0}},
		{"per started hour: hour in progress at origin", []Version{perHour(1_000_000, 1, at(0, 10, 0), time.Time{})}, at(0, 40, 0), t0, at(1, 20, 0),
			2_400_000, MakeExact(666_666, 2_400_000), Exact{2_000_000, 0}},
		{"nothing before the lease", []Version{perSec(1_000_000, 1, at(5, 0, 0), time.Time{})}, t0, t0, at(5, 0, 0),
			0, Exact{}, Exact{}},
	} {
		got := Accrue(c.vs, c.origin, c.from, c.to)
		var a Accrual
		if len(got) > 0 {
			a = got[0]
		}
		if len(got) > 1 || a.LeasedGPUms != c.leasedMs || a.Basis != c.basis || a.Charge != c.charge {
			t.Errorf("%s: got %+v, want leased %d basis %v charge %v", c.name, got, c.leasedMs, c.basis, c.charge)
		}
	}
}

func TestLedgerSplitsAmongJobs(t *testing.T) {
	vs := []Version{{Price: usd(3_600_000), GPUs: 2, Billing: fleet.BillPerSecond, Start: t0}}
	mins := []GPUMinute{
		{Device: 0, Minute: at(0, 0, 0), ReportedMs: 60_000, Job: "j1", Team: "a"},
		{Device: 0, Minute: at(0, 1, 0), ReportedMs: 60_000, IdleMs: 60_000, Job: "j1", Team: "a"},
		{Device: 1, Minute: at(0, 0, 0), ReportedMs: 60_000, IdleMs: 60_000},
	}
	lines := Ledger(vs, t0, t0, at(0, 3, 0), mins, "ops")
	want := []Line{
		{Currency: "USD", Job: "", Team: "ops", LeasedGPUms: 240_000, ReportedGPUms: 60_000, IdleGPUms: 60_000, DarkGPUms: 180_000,
			Spend: Exact{240_000, 0}, Idle: Exact{60_000, 0}, Dark: Exact{180_000, 0}},
		{Currency: "USD", Job: "j1", Team: "a", LeasedGPUms: 120_000, ReportedGPUms: 120_000, IdleGPUms: 60_000,
			Spend: Exact{120_000, 0}, Idle: Exact{60_000, 0}},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines = %+v", lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %+v\nwant %+v", i, lines[i], want[i])
		}
	}
}

func TestRates(t *testing.T) {
	r, err := ParseRates("usd", map[string]string{"SGD": "0.7412", "AED": "0.2723"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   fleet.Money
		want int64
	}{
		{fleet.Money{Micros: 1_000_000, Currency: "SGD"}, 741_200},
		{fleet.Money{Micros: 5, Currency: "SGD"}, 4},   // 3.706 → 4
		{fleet.Money{Micros: 50, Currency: "AED"}, 14}, // 13.615 → 14
		{fleet.Money{Micros: 7, Currency: "USD"}, 7},
	} {
		got, err := r.Convert(c.in)
		if err != nil || got.Micros != c.want || got.Currency != "USD" {
			t.Errorf("Convert(%v) = %v, %v; want %d USD", c.in, got, err, c.want)
		}
	}
	if _, err := r.Convert(fleet.Money{Micros: 1, Currency: "EUR"}); err == nil {
		t.Error("Convert without a rate succeeded")
	}
	// one rounding per line: 3 × 0.5 micro SGD-equivalents would round to 0
	// each, but sum to 1.5 → 2.
	sums := func(m map[string]Exact) *Sums {
		var s Sums
		for _, c := range slices.Sorted(maps.Keys(m)) {
			s.Add(m[c], c)
		}
		return &s
	}
	sum, missing := r.Sum(sums(map[string]Exact{"USD": MakeExact(0, RemDen/2), "SGD": {Micros: 1}}))
	if missing != nil || sum.Micros != 1 { // 0.5 + 0.7412 = 1.2412 → 1
		t.Errorf("Sum = %v, %v; want 1", sum, missing)
	}
	// amounts in the display currency alone round the same way, half to even
	for _, c := range []struct {
		in   Exact
		want int64
	}{{MakeExact(2, RemDen/2), 2}, {MakeExact(3, RemDen/2), 4}, {MakeExact(-3, RemDen/2), -2}, {MakeExact(7, RemDen/2+1), 8}} {
		if got, missing := r.Sum(sums(map[string]Exact{"USD": c.in})); missing != nil || got.Micros != c.want || got.Currency != "USD" {
			t.Errorf("Sum(%v USD) = %v, %v; want %d USD", c.in, got, missing, c.want)
		}
	}
	if got, missing := r.Sum(sums(map[string]Exact{"USD": {Micros: 3}, "EUR": {Micros: 1}, "GBP": {Micros: 1}})); got.Micros != 3 || !slices.Equal(missing, []string{"EUR", "GBP"}) {
		t.Errorf("Sum without rates for EUR and GBP = %v, missing %v; want 3 USD, missing [EUR GBP]", got, missing)
	}
	sg, err := r.Rebase("SGD")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := sg.Convert(fleet.Money{Micros: 741_200, Currency: "USD"}); got.Micros != 1_000_000 || got.Currency != "SGD" {
		t.Errorf("rebased Convert = %v, want 1 SGD", got)
	}
	for _, bad := range []string{"", "1/3", "1e3", "abc", "0", "-1"} {
		if _, err := ParseRates("USD", map[string]string{"SGD": bad}); err == nil {
			t.Errorf("ParseRates accepted %q", bad)
		}
	}
}

// mulRound (128-bit) rounds exactly as big.Rat and RoundRat do, ties to
// even and negative amounts included, and declines what does not fit.
func TestMulRoundMatchesRoundRat(t *testing.T) {
	rates := []*big.Rat{big.NewRat(74, 100), big.NewRat(1, 3), big.NewRat(2721, 10000), big.NewRat(1, 2), big.NewRat(3, 2), big.NewRat(4, 1),
		big.NewRat(1_000_003, 7), big.NewRat(1, 1_000_000_007)}
	amounts := []int64{0, 1, -1, 2, 3, -3, 5, 7, 999_999, 2_850_000, -2_850_000, 1 << 40, -(1 << 40), math.MaxInt64 / 3}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		amounts = append(amounts, rng.Int64N(1<<50)-(1<<49))
	}
	for _, rate := range rates {
		for _, m := range amounts {
			exact := new(big.Rat).Mul(new(big.Rat).SetInt64(m), rate)
			if f, _ := exact.Float64(); math.Abs(f) > 1<<62 {
				continue // past int64: RoundRat panics, Convert with it
			}
			want := RoundRat(exact)
			if got, ok := mulRound(m, rate); !ok || got != want {
				t.Fatalf("mulRound(%d, %v) = %d, %v; RoundRat says %d", m, rate, got, ok, want)
			}
		}
	}
	if _, ok := mulRound(math.MaxInt64, big.NewRat(3, 1)); ok {
		t.Error("mulRound of an overflowing product succeeded")
	}
}
