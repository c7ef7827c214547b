package insight

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/fleettop/fleettop/cost"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/policy"
)

// Config is the aggregator's cost and policy configuration, parsed and
// checked. The zero value is not useful: start from DefaultConfig.
type Config struct {
	// Currency is the display currency (ISO 4217) of every summed figure.
	Currency string
	// Rates converts into Currency; RateTable is the same as written in the
	// file (currency → value of one unit in Currency, decimal strings), kept
	// for the store so reports use the same rates.
	Rates     cost.Rates
	RateTable map[string]string
	// Prices is the price table, used for nodes whose lease label has no
	// price. The most specific matching entry wins.
	Prices []Price
	// Rules are the residency and alert rules (the idle threshold among them).
	Rules policy.Rules
	// RegionBudgets and TeamBudgets are monthly budgets in micro-units of Currency.
	RegionBudgets map[string]int64
	TeamBudgets   map[string]int64
	// LeasesEndingWithin is the horizon of Summary.LeasesEnding.
	LeasesEndingWithin time.Duration
	// Webhook receives alert starts and ends; URL "" disables it.
	Webhook WebhookConfig
	// Location is the time zone of "today" and "this month" (timezone:,
	// default UTC). Its offsets are whole hours: the ledger's grain.
	Location *time.Location
	// ClockOffsetMax: a node whose clock is further off the aggregator's
	// raises a clock alert (default 2s; alerts.clock_offset_above).
	ClockOffsetMax time.Duration
	// Path is the file the config came from ("" for defaults).
	Path string
}

// Price is one row of the price table. Empty Provider, Region or Model match
// anything; Model matches when it is a case-insensitive substring of the
// device model ("H100" matches "NVIDIA H100 80GB HBM3").
type Price struct {
	Provider string
	Region   string
	Model    string
	PerGPU   fleet.Money // per GPU-hour
	Billing  fleet.Billing
}

// WebhookConfig configures the alert webhook.
type WebhookConfig struct {
	URL        string
	Timeout    time.Duration // per attempt
	Queue      int           // pending alerts kept; more are dropped and counted
	MaxRetries int           // attempts after the first
}

// DefaultConfig returns the configuration used without a config file.
func DefaultConfig() Config {
	return Config{
		Currency:           "USD",
		Rates:              cost.Rates{Display: "USD"},
		RateTable:          map[string]string{},
		Rules:              policy.DefaultRules(),
		RegionBudgets:      map[string]int64{},
		TeamBudgets:        map[string]int64{},
		LeasesEndingWithin: 7 * 24 * time.Hour,
		ClockOffsetMax:     2 * time.Second,
		Webhook:            WebhookConfig{Timeout: 5 * time.Second, Queue: 1024, MaxRetries: 5},
	}
}

// The file's shape. Every key is optional.
type fileConfig struct {
	Currency           string              `yaml:"currency"`
	TimeZone           string              `yaml:"timezone"`
	Rates              map[string]string   `yaml:"rates"`
	Prices             []filePrice         `yaml:"prices"`
	IdleThreshold      string              `yaml:"idle_threshold"`
	Budgets            fileBudgets         `yaml:"budgets"`
	Residency          map[string][]string `yaml:"residency"`
	Alerts             fileAlerts          `yaml:"alerts"`
	LeasesEndingWithin string              `yaml:"leases_ending_within"`
	Webhook            *fileWebhook        `yaml:"webhook"`
	// RemoteWrite is parsed by exporters/remotewrite (ParseConfig).
	RemoteWrite any `yaml:"remote_write"`
}

type filePrice struct {
	Provider string `yaml:"provider"`
	Region   string `yaml:"region"`
	Model    string `yaml:"model"`
	Price    string `yaml:"price"`
	Currency string `yaml:"currency"`
	Billing  string `yaml:"billing"`
}

type fileBudgets struct {
	Regions map[string]string `yaml:"regions"`
	Teams   map[string]string `yaml:"teams"`
}

type fileAlerts struct {
	CriticalXIDs     *[]int64 `yaml:"critical_xids"`
	XIDClearAfter    string   `yaml:"xid_clear_after"`
	ECCUncorrectable *bool    `yaml:"ecc_uncorrectable"`
	ThermalThrottle  *bool    `yaml:"thermal_throttling"`
	TemperatureAbove *float64 `yaml:"temperature_above"`
	OfflineAfter     string   `yaml:"offline_after"`
	ClockOffsetAbove string   `yaml:"clock_offset_above"`
	IdleAfter        string   `yaml:"idle_after"`
	BudgetWarn       string   `yaml:"budget_warn"`
	BudgetCritical   string   `yaml:"budget_critical"`
	For              string   `yaml:"for"`
	Clear            string   `yaml:"clear"`
}

type fileWebhook struct {
	URL        string `yaml:"url"`
	Timeout    string `yaml:"timeout"`
	Queue      *int   `yaml:"queue"`
	MaxRetries *int   `yaml:"max_retries"`
}

// LoadConfig reads the YAML config at path; "" returns DefaultConfig. Errors
// name the file and line and say what to write instead.
func LoadConfig(path string) (Config, error) {
	if path == "" {
		return DefaultConfig(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(data, path)
}

// ParseConfig parses a config file's bytes; name is used in errors.
func ParseConfig(data []byte, name string) (Config, error) {
	var fc fileConfig
	if err := yaml.UnmarshalWithOptions(data, &fc, yaml.DisallowUnknownField()); err != nil {
		return Config{}, yamlError(name, err)
	}
	file, _ := parser.ParseBytes(data, 0)
	p := &checker{name: name, file: file}
	cfg := p.build(&fc)
	if p.err != nil {
		return Config{}, p.err
	}
	cfg.Path = name
	return cfg, nil
}

func yamlError(name string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		line := 0
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			line = tk.Position.Line
		}
		msg := ye.GetMessage()
		var uf *yaml.UnknownFieldError
		if errors.As(err, &uf) {
			msg += "; known keys are currency, rates, prices, idle_threshold, budgets, residency, alerts, leases_ending_within, webhook, remote_write (see docs for the keys inside each)"
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msg = fmt.Sprintf("expected %s here, not %s", te.DstType, te.SrcType)
		}
		return fmt.Errorf("%s:%d: %s", name, line, msg)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// checker turns the file's strings into a Config, keeping the first error
// with the line of the offending value.
type checker struct {
	name string
	file *ast.File
	err  error
}

func (c *checker) failf(path, format string, a ...any) {
	if c.err != nil {
		return
	}
	line := 0
	if c.file != nil {
		if yp, err := yaml.PathString(path); err == nil {
			if n, err := yp.FilterFile(c.file); err == nil && n != nil && n.GetToken() != nil {
				line = n.GetToken().Position.Line
			}
		}
	}
	c.err = fmt.Errorf("%s:%d: %s", c.name, line, fmt.Sprintf(format, a...))
}

func (c *checker) build(fc *fileConfig) Config {
	cfg := DefaultConfig()
	c.locale(fc, &cfg)
	c.prices(fc, &cfg)
	if fc.IdleThreshold != "" {
		f, err := parseRatio(fc.IdleThreshold)
		if err != nil {
			c.failf("$.idle_threshold", "idle_threshold %q: %v; write a percentage like \"5%%\" or a ratio like 0.05", fc.IdleThreshold, err)
		}
		cfg.Rules.IdleThreshold = f
	}
	for _, g := range sortedKeys(fc.Budgets.Regions) {
		cfg.RegionBudgets[g] = c.budget("$.budgets.regions."+g, fc.Budgets.Regions[g], cfg.Currency)
	}
	for _, g := range sortedKeys(fc.Budgets.Teams) {
		cfg.TeamBudgets[g] = c.budget("$.budgets.teams."+g, fc.Budgets.Teams[g], cfg.Currency)
	}
	c.residency(fc, &cfg)
	c.alerts(fc, &cfg)
	c.webhook(fc.Webhook, &cfg)
	return cfg
}

// locale reads the time zone, the display currency and the exchange rates.
func (c *checker) locale(fc *fileConfig, cfg *Config) {
	if fc.TimeZone != "" {
		if loc, err := LoadZone(fc.TimeZone); err != nil {
			c.failf("$.timezone", "%v", err)
		} else {
			cfg.Location = loc
		}
	}
	if fc.Currency != "" {
		if !isCurrency(fc.Currency) {
			c.failf("$.currency", "currency %q is not an ISO 4217 code; write three capital letters, e.g. USD", fc.Currency)
		}
		cfg.Currency = fc.Currency
	}
	for _, code := range sortedKeys(fc.Rates) {
		path := fmt.Sprintf("$.rates.%s", code)
		if !isCurrency(code) {
			c.failf(path, "rate key %q is not an ISO 4217 code; write three capital letters, e.g. SGD", code)
			continue
		}
		v, err := cost.ParseDecimal(fc.Rates[code])
		if err != nil || v.Sign() <= 0 {
			c.failf(path, "rate %q for %s is not a positive decimal; write the value of one %s in %s as a decimal string, e.g. \"0.74\"", fc.Rates[code], code, code, cfg.Currency)
			continue
		}
		cfg.RateTable[code] = fc.Rates[code]
	}
	if r, err := cost.ParseRates(cfg.Currency, cfg.RateTable); err != nil {
		c.failf("$.rates", "rates: %v", err)
	} else {
		cfg.Rates = r
	}
}

// prices reads the price table.
func (c *checker) prices(fc *fileConfig, cfg *Config) {
	for i, fp := range fc.Prices {
		path := fmt.Sprintf("$.prices[%d]", i)
		cur := fp.Currency
		if cur == "" {
			cur = cfg.Currency
		}
		if !isCurrency(cur) {
			c.failf(path+".currency", "currency %q is not an ISO 4217 code; write e.g. USD", cur)
		}
		if fp.Price == "" {
			c.failf(path, "price entry has no price; add e.g. price: \"2.85\" (per GPU-hour)")
			continue
		}
		m, err := fleet.ParseMicros(fp.Price)
		if err != nil || m < 0 {
			c.failf(path+".price", "price %q is not a decimal amount; write it like \"2.85\" (per GPU-hour, up to 6 decimals)", fp.Price)
			continue
		}
		b := fleet.BillPerSecond
		switch fp.Billing {
		case "", "second":
		case "hour":
			b = fleet.BillPerStartedHour
		default:
			c.failf(path+".billing", "billing %q is unknown; write second or hour", fp.Billing)
		}
		cfg.Prices = append(cfg.Prices, Price{Provider: fp.Provider, Region: fp.Region, Model: fp.Model,
			PerGPU: fleet.Money{Micros: m, Currency: cur}, Billing: b})
	}
}

// residency reads which jurisdictions each data class may be processed in.
func (c *checker) residency(fc *fileConfig, cfg *Config) {
	if len(fc.Residency) == 0 {
		return
	}
	cfg.Rules.Residency = make(map[string][]string, len(fc.Residency))
	for _, class := range sortedKeys(fc.Residency) {
		js := fc.Residency[class]
		if len(js) == 0 {
			c.failf("$.residency."+class, "data class %s allows no jurisdiction; list at least one, e.g. [CN]", class)
		}
		for _, j := range js {
			if len(j) != 2 || strings.ToUpper(j) != j {
				c.failf("$.residency."+class, "jurisdiction %q is not an ISO 3166-1 alpha-2 code; write two capital letters, e.g. SG", j)
			}
		}
		cfg.Rules.Residency[class] = slices.Clone(js)
	}
}

// alerts reads the alert rules' thresholds and holds, and how far ahead a
// lease's end is reported.
func (c *checker) alerts(fc *fileConfig, cfg *Config) {
	a := fc.Alerts
	if a.CriticalXIDs != nil {
		cfg.Rules.CriticalXIDs = slices.Clone(*a.CriticalXIDs)
	}
	if a.ECCUncorrectable != nil {
		cfg.Rules.ECCUncorrected = *a.ECCUncorrectable
	}
	if a.ThermalThrottle != nil {
		cfg.Rules.ThermalThrottle = *a.ThermalThrottle
	}
	if a.TemperatureAbove != nil {
		cfg.Rules.TempAbove = *a.TemperatureAbove
	}
	c.duration("$.alerts.xid_clear_after", a.XIDClearAfter, &cfg.Rules.XIDHold)
	c.duration("$.alerts.offline_after", a.OfflineAfter, &cfg.Rules.OfflineAfter)
	c.duration("$.alerts.idle_after", a.IdleAfter, &cfg.Rules.IdleAfter)
	c.duration("$.alerts.for", a.For, &cfg.Rules.AlertFor)
	c.duration("$.alerts.clear", a.Clear, &cfg.Rules.AlertClear)
	c.duration("$.alerts.clock_offset_above", a.ClockOffsetAbove, &cfg.ClockOffsetMax)
	c.duration("$.leases_ending_within", fc.LeasesEndingWithin, &cfg.LeasesEndingWithin)
	for _, b := range []struct {
		path, v string
		dst     *float64
	}{{"$.alerts.budget_warn", a.BudgetWarn, &cfg.Rules.BudgetWarn}, {"$.alerts.budget_critical", a.BudgetCritical, &cfg.Rules.BudgetCrit}} {
		if b.v == "" {
			continue
		}
		f, err := parseRatio(b.v)
		if err != nil {
			c.failf(b.path, "%q: %v; write a percentage like \"80%%\"", b.v, err)
		}
		*b.dst = f
	}
}

// webhook reads where alerts are posted, if anywhere.
func (c *checker) webhook(w *fileWebhook, cfg *Config) {
	if w == nil {
		return
	}
	if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
		c.failf("$.webhook.url", "webhook url %q must start with http:// or https://", w.URL)
	}
	cfg.Webhook.URL = w.URL
	c.duration("$.webhook.timeout", w.Timeout, &cfg.Webhook.Timeout)
	if w.Queue != nil {
		if *w.Queue < 1 {
			c.failf("$.webhook.queue", "webhook queue must be at least 1")
		}
		cfg.Webhook.Queue = *w.Queue
	}
	if w.MaxRetries != nil {
		if *w.MaxRetries < 0 {
			c.failf("$.webhook.max_retries", "webhook max_retries must be 0 or more")
		}
		cfg.Webhook.MaxRetries = *w.MaxRetries
	}
}

func (c *checker) budget(path, v, currency string) int64 {
	m, err := fleet.ParseMicros(v)
	if err != nil || m <= 0 {
		c.failf(path, "budget %q is not a positive decimal amount; write the monthly budget in %s like \"50000\"", v, currency)
	}
	return m
}

func (c *checker) duration(path, v string, dst *time.Duration) {
	if v == "" {
		return
	}
	d, err := ParseDuration(v)
	if err != nil {
		c.failf(path, "duration %q: %v; write e.g. 90s, 5m, 2h or 7d (0 disables)", v, err)
		return
	}
	*dst = d
}

// loc is the periods' time zone: Location, or UTC.
func (c *Config) loc() *time.Location {
	if c.Location == nil {
		return time.UTC
	}
	return c.Location
}

// LoadZone loads an IANA time zone for "today" and "this month" and checks
// that its offsets from UTC are whole hours (the ledger is kept per UTC hour,
// so a day that starts at a half hour could not be summed from it).
func LoadZone(name string) (*time.Location, error) {
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %v; write an IANA name such as UTC, Asia/Singapore or Europe/Berlin", name, err)
	}
	for _, m := range []time.Month{time.January, time.April, time.July, time.October} {
		if _, off := time.Date(2026, m, 1, 0, 0, 0, 0, loc).Zone(); off%3600 != 0 {
			return nil, fmt.Errorf("time zone %q is %+.1f h from UTC: the ledger is kept per hour, so the zone's offset must be whole hours", name, float64(off)/3600)
		}
	}
	return loc, nil
}

// ParseDuration is time.ParseDuration plus a whole-day suffix "d" ("7d").
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, errors.New("not a whole number of days")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration")
	}
	if d < 0 {
		return 0, errors.New("negative")
	}
	return d, nil
}

// parseRatio reads "5%" or "0.05" as 0.05.
func parseRatio(s string) (float64, error) {
	pct := false
	if v, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		s, pct = v, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, errors.New("not a number")
	}
	if pct {
		f /= 100
	}
	if f < 0 || f > 10 {
		return 0, errors.New("out of range")
	}
	return f, nil
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TablePrice returns the price table's price per GPU-hour for node n (by its
// provider, region and first device's model), for nodes whose lease labels
// carry no price. The store's ledger uses it, so that history and the live
// figures price such nodes alike.
func (c *Config) TablePrice(n *fleet.Node) (fleet.Money, bool) {
	model := ""
	if len(n.Devices) > 0 {
		model = n.Devices[0].Model
	}
	p, ok := c.price(n.Provider, n.Region, model)
	return p.PerGPU, ok
}

// price returns the price table's best entry for a device, if any.
func (c *Config) price(provider, region, model string) (Price, bool) {
	best, bestScore := Price{}, -1
	lm := strings.ToLower(model)
	for _, p := range c.Prices {
		score := 0
		if p.Provider != "" {
			if !strings.EqualFold(p.Provider, provider) {
				continue
			}
			score += 4
		}
		if p.Region != "" {
			if !strings.EqualFold(p.Region, region) {
				continue
			}
			score += 2
		}
		if p.Model != "" {
			if !strings.Contains(lm, strings.ToLower(p.Model)) {
				continue
			}
			score++
		}
		if score > bestScore {
			best, bestScore = p, score
		}
	}
	return best, bestScore >= 0
}
