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
	if got, _ := cfg.Rates.Convert(fleet.Money{Micros: 1_000_000_000_000, Currency: "CNY"}); got != (fleet.Money{Micros: 128_765_432_101, Currency: "EUR"}) {
		t.Errorf("CNY rate: %v", got)
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

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(fixtureYAML))
	f.Add([]byte("currency: USD\n"))
	f.Add([]byte("prices:\n  - price: \"1\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseConfig(b, "fuzz.yaml") // must not panic
	})
}

func TestTablePrice(t *testing.T) {
	cfg, err := ParseConfig([]byte(`prices:
  - {model: H100, price: "2.00", currency: USD}
  - {provider: acme, region: Johor, model: H100, price: "9.10", currency: MYR}
  - {provider: acme, price: "1.50", currency: USD}
`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	node := func(provider, region, model string) *fleet.Node {
		return &fleet.Node{Provider: provider, Region: region, Devices: []fleet.Device{{Model: model}}}
	}
	for _, c := range []struct {
		n    *fleet.Node
		want fleet.Money
		ok   bool
	}{
		{node("acme", "Johor", "NVIDIA H100 80GB HBM3"), fleet.Money{Micros: 9_100_000, Currency: "MYR"}, true},
		{node("acme", "Singapore", "NVIDIA H100 80GB HBM3"), fleet.Money{Micros: 1_500_000, Currency: "USD"}, true},
		{node("other", "Dubai", "NVIDIA H100 80GB HBM3"), fleet.Money{Micros: 2_000_000, Currency: "USD"}, true},
		{node("other", "Dubai", "Ascend 910B"), fleet.Money{}, false},
	} {
		got, ok := cfg.TablePrice(c.n)
		if got != c.want || ok != c.ok {
			t.Errorf("TablePrice(%s/%s/%s) = %v, %v; want %v, %v", c.n.Provider, c.n.Region, c.n.Devices[0].Model, got, ok, c.want, c.ok)
		}
	}
}
