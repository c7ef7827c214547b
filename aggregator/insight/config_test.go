package insight

import (
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Currency != "USD" || cfg.Rules.IdleThreshold != 0.05 || len(cfg.Rules.CriticalXIDs) != 7 || cfg.Rules.BudgetWarn != 0.8 {
		t.Errorf("defaults %+v", cfg)
	}
}

func TestConfigParse(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
currency: EUR
rates: {USD: "0.925", CNY: "0.128765432101"}
prices:
  - {provider: acme, model: H100, price: "2.5", currency: USD, billing: hour}
idle_threshold: 10%
residency: {cn-customer: [CN]}
alerts:
  critical_xids: [79]
  temperature_above: 85
  offline_after: 90s
  idle_after: 1d
webhook: {url: "https://hooks.example/x", timeout: 2s, queue: 10}
`), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rates["CNY"] != (Rate{Coef: 128765432101, Scale: 12}) || cfg.Rates["USD"] != (Rate{925, 3}) {
		t.Errorf("rates %+v", cfg.Rates)
	}
	p, ok := cfg.price("acme", "x", "NVIDIA H100 80GB HBM3")
	if !ok || p.PerGPU != (fleet.Money{Micros: 2_500_000, Currency: "USD"}) || p.Billing != fleet.BillPerStartedHour {
		t.Errorf("price %+v %v", p, ok)
	}
	if _, ok := cfg.price("other", "x", "H100"); ok {
		t.Error("price matched another provider")
	}
	r := cfg.Rules
	if r.IdleThreshold != 0.1 || r.TempAbove != 85 || r.OfflineAfter != 90*time.Second || r.IdleAfter != 24*time.Hour ||
		len(r.CriticalXIDs) != 1 || r.Allowed("cn-customer", "SG") || !r.Allowed("cn-customer", "CN") {
		t.Errorf("rules %+v", r)
	}
	if cfg.Webhook.URL == "" || cfg.Webhook.Timeout != 2*time.Second || cfg.Webhook.Queue != 10 {
		t.Errorf("webhook %+v", cfg.Webhook)
	}
}

func TestConfigErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"currency: USD\ncolour: blue\n", "f.yaml:2:"},
		{"currency: USD\ncolour: blue\n", "known keys"},
		{"prices:\n  - provider: a\n    price: two\n", `f.yaml:3: price "two" is not a decimal amount`},
		{"rates:\n  SGD: abc\n", "f.yaml:2:"},
		{"currency: usd\n", "f.yaml:1: currency"},
		{"alerts:\n  offline_after: soon\n", "f.yaml:2: duration"},
		{"residency:\n  cn-customer: [China]\n", "f.yaml:2: jurisdiction"},
		{"budgets:\n  regions:\n    Johor: -5\n", "f.yaml:3: budget"},
		{"webhook:\n  url: ftp://x\n", "f.yaml:2: webhook url"},
		{"alerts:\n  critical_xids: [a]\n", "f.yaml:2:"},
		{"idle_threshold: lots\n", "f.yaml:1: idle_threshold"},
	} {
		_, err := ParseConfig([]byte(tc.yaml), "f.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.yaml, err, tc.want)
		}
	}
}

func TestConvert(t *testing.T) {
	rates := map[string]Rate{"SGD": {74, 2}, "JPY": {6667, 6}}
	for _, tc := range []struct {
		in   fleet.Money
		want int64
		ok   bool
	}{
		{fleet.Money{Micros: 4_000_000, Currency: "SGD"}, 2_960_000, true},
		{fleet.Money{Micros: 1, Currency: "SGD"}, 1, true},  // 0.74 rounds up
		{fleet.Money{Micros: -3, Currency: "JPY"}, 0, true}, // −0.00002 rounds to 0
		{fleet.Money{Micros: 150_000_000, Currency: "JPY"}, 1_000_050, true},
		{fleet.Money{Micros: 5, Currency: "USD"}, 5, true},
		{fleet.Money{Micros: 5, Currency: "EUR"}, 0, false},
	} {
		got, ok := convert(tc.in, "USD", rates)
		if got.Micros != tc.want || ok != tc.ok || got.Currency != "USD" {
			t.Errorf("convert(%v) = %v %v, want %d %v", tc.in, got.Micros, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(fixtureYAML))
	f.Add([]byte("currency: USD\n"))
	f.Add([]byte("prices:\n  - price: \"1\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseConfig(b, "fuzz.yaml") // must not panic
	})
}
