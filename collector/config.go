package collector

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// DefaultConfigPath is where the collector looks for its config file.
const DefaultConfigPath = "/etc/fleettop/collector.yaml"

// Config is the collector's identity and lease labels, from
// /etc/fleettop/collector.yaml and flags. Every value is kept as written so
// that errors can quote it; Node validates and converts.
type Config struct {
	NodeID          string            `yaml:"node_id"`
	Hostname        string            `yaml:"hostname"`
	Region          string            `yaml:"region"`
	Site            string            `yaml:"site"`
	Provider        string            `yaml:"provider"`
	Jurisdiction    string            `yaml:"jurisdiction"`
	LeaseID         string            `yaml:"lease_id"`
	PricePerGPUHour string            `yaml:"price_per_gpu_hour"`
	Currency        string            `yaml:"currency"`
	LeaseStart      string            `yaml:"lease_start"`
	LeaseEnd        string            `yaml:"lease_end"`
	Billing         string            `yaml:"billing"`
	Reserved        string            `yaml:"reserved"`
	GPUs            string            `yaml:"gpus"` // contracted GPU count of the lease
	Labels          map[string]string `yaml:"labels"`

	// where names, per key, where its value came from: "file:line" or "--flag".
	where map[string]string
}

// ConfigKeys are the config file's keys, which are also the flag names with
// "_" written "-".
var ConfigKeys = []string{
	"node_id", "hostname", "region", "site", "provider", "jurisdiction", "lease_id",
	"price_per_gpu_hour", "currency", "lease_start", "lease_end", "billing", "reserved", "gpus", "labels",
}

func (c *Config) field(key string) *string {
	switch key {
	case "node_id":
		return &c.NodeID
	case "hostname":
		return &c.Hostname
	case "region":
		return &c.Region
	case "site":
		return &c.Site
	case "provider":
		return &c.Provider
	case "jurisdiction":
		return &c.Jurisdiction
	case "lease_id":
		return &c.LeaseID
	case "price_per_gpu_hour":
		return &c.PricePerGPUHour
	case "currency":
		return &c.Currency
	case "lease_start":
		return &c.LeaseStart
	case "lease_end":
		return &c.LeaseEnd
	case "billing":
		return &c.Billing
	case "reserved":
		return &c.Reserved
	case "gpus":
		return &c.GPUs
	}
	return nil
}

// Set overrides one key (a flag): key is a ConfigKeys name; labels take
// "k=v,k2=v2".
func (c *Config) Set(key, value, origin string) error {
	if c.where == nil {
		c.where = map[string]string{}
	}
	c.where[key] = origin
	if key == "labels" {
		c.Labels = map[string]string{}
		for kv := range strings.SplitSeq(value, ",") {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("%s: label %q: write key=value pairs separated by commas, e.g. team=nlp,rack=r12", origin, kv)
			}
			c.Labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		return nil
	}
	p := c.field(key)
	if p == nil {
		return fmt.Errorf("%s: unknown setting %q", origin, key)
	}
	*p = value
	return nil
}

// topKeyRe compiles on first use, not in every fleettop process's init.
var topKeyRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([A-Za-z0-9_\-]+)\s*:`) })

// LoadConfig reads a config file. A missing file is an error only when
// explicit (the user named it); the default file may be absent.
func LoadConfig(path string, explicit bool) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return c, nil
		}
		return c, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(b, path)
}

// ParseConfig parses config file contents; name is used in errors.
func ParseConfig(b []byte, name string) (Config, error) {
	var c Config
	if err := yaml.UnmarshalWithOptions(b, &c, yaml.DisallowUnknownField()); err != nil {
		return Config{}, configError(err, name)
	}
	c.where = map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		if m := topKeyRe().FindStringSubmatch(line); m != nil {
			c.where[m[1]] = fmt.Sprintf("%s:%d", name, i+1)
		}
	}
	return c, nil
}

func configError(err error, name string) error {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return fmt.Errorf("%s: %w", name, err)
	}
	line := 0
	if tk := ye.GetToken(); tk != nil && tk.Position != nil {
		line = tk.Position.Line
	}
	msg := ye.GetMessage()
	if strings.HasPrefix(msg, "unknown field") {
		msg = strings.Replace(msg, "unknown field", "unknown key", 1) + "; known keys: " + strings.Join(ConfigKeys, ", ")
	} else if strings.Contains(msg, "cannot unmarshal") {
		msg = "this value has the wrong shape (" + msg + "); write a plain string, or key: value pairs under labels"
	}
	return fmt.Errorf("%s:%d: %s", name, line, msg)
}

func (c *Config) at(key string) string {
	if w := c.where[key]; w != "" {
		return w
	}
	return key
}

// upperCode reports whether s is n upper-case ASCII letters (ISO 3166-1
// alpha-2, ISO 4217).
func upperCode(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func parseWhen(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// NodeDefaults say where defaults come from (tests point them elsewhere).
type NodeDefaults struct {
	MachineIDPath string // default /etc/machine-id
	Hostname      func() (string, error)
}

// Node validates the config and returns the node identity it describes.
// Each error names where the value came from and what to write instead.
func (c *Config) Node(d NodeDefaults) (fleet.Node, error) {
	if d.MachineIDPath == "" {
		d.MachineIDPath = "/etc/machine-id"
	}
	if d.Hostname == nil {
		d.Hostname = os.Hostname
	}
	var n fleet.Node
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", c.at(key), fmt.Sprintf(format, a...)))
	}
	n.ID = strings.TrimSpace(c.NodeID)
	if n.ID == "" {
		b, err := os.ReadFile(d.MachineIDPath)
		n.ID = strings.TrimSpace(string(b))
		if err != nil || n.ID == "" {
			errs = append(errs, fmt.Errorf("no node id: %s is unreadable; set node_id in the config or --node-id", d.MachineIDPath))
		}
	}
	n.Hostname = c.Hostname
	if n.Hostname == "" {
		n.Hostname, _ = d.Hostname()
	}
	n.Region, n.Site, n.Provider = c.Region, c.Site, c.Provider
	if c.Jurisdiction != "" {
		if !upperCode(c.Jurisdiction, 2) {
			bad("jurisdiction", "jurisdiction %q: write an upper-case ISO 3166-1 alpha-2 country code, e.g. SG, MY, AE, CN", c.Jurisdiction)
		}
		n.Jurisdiction = c.Jurisdiction
	}
	n.Lease.ID = c.LeaseID
	if c.PricePerGPUHour != "" {
		v, err := fleet.ParseMicros(c.PricePerGPUHour)
		if err != nil || v < 0 {
			bad("price_per_gpu_hour", "price %q: write a plain decimal amount per GPU-hour with at most 6 decimals, e.g. \"2.35\"", c.PricePerGPUHour)
		}
		n.Lease.PricePerGPUHour.Micros = v
		if c.Currency == "" {
			bad("price_per_gpu_hour", "a price needs a currency: add currency, e.g. USD")
		}
	}
	if c.Currency != "" {
		if !upperCode(c.Currency, 3) {
			bad("currency", "currency %q: write an upper-case ISO 4217 code, e.g. USD, SGD, CNY", c.Currency)
		}
		n.Lease.PricePerGPUHour.Currency = c.Currency
	}
	for key, dst := range map[string]*time.Time{"lease_start": &n.Lease.Start, "lease_end": &n.Lease.End} {
		v := *c.field(key)
		if v == "" {
			continue
		}
		t, ok := parseWhen(v)
		if !ok {
			bad(key, "%s %q: write an RFC 3339 time (2026-01-31T00:00:00Z) or a date (2026-01-31)", key, v)
		}
		*dst = t
	}
	if !n.Lease.Start.IsZero() && !n.Lease.End.IsZero() && !n.Lease.End.After(n.Lease.Start) {
		bad("lease_end", "lease_end %s is not after lease_start %s", c.LeaseEnd, c.LeaseStart)
	}
	switch strings.ToLower(c.Billing) {
	case "":
	case "second", "per-second", "per_second":
		n.Lease.Billing = fleet.BillPerSecond
	case "hour", "per-started-hour", "per_started_hour":
		n.Lease.Billing = fleet.BillPerStartedHour
	default:
		bad("billing", "billing %q: write second or hour", c.Billing)
	}
	if c.Reserved != "" {
		r, err := strconv.ParseBool(c.Reserved)
		if err != nil {
			bad("reserved", "reserved %q: write true or false", c.Reserved)
		}
		n.Lease.Reserved = r
	}
	if c.GPUs != "" {
		g, err := strconv.Atoi(strings.TrimSpace(c.GPUs))
		if err != nil || g < 1 || g > wire.MaxDevices {
			bad("gpus", "gpus %q: write the number of GPUs the lease pays for, 1 to %d", c.GPUs, wire.MaxDevices)
		}
		n.Lease.GPUs = g
	}
	if len(c.Labels) > wire.MaxLabels {
		bad("labels", "%d labels: at most %d are allowed", len(c.Labels), wire.MaxLabels)
	}
	if len(c.Labels) > 0 {
		n.Labels = make(map[string]string, len(c.Labels))
		keys := make([]string, 0, len(c.Labels))
		for k := range c.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "" || len(k) > 128 || len(c.Labels[k]) > wire.MaxStringBytes {
				bad("labels", "label %q: keys must be 1-128 bytes and values at most %d bytes", k, wire.MaxStringBytes)
			}
			n.Labels[k] = c.Labels[k]
		}
	}
	for key, v := range map[string]string{"node_id": n.ID, "hostname": n.Hostname, "region": n.Region, "site": n.Site, "provider": n.Provider, "lease_id": n.Lease.ID} {
		if len(v) > wire.MaxStringBytes {
			bad(key, "%s is longer than %d bytes", key, wire.MaxStringBytes)
		}
	}
	if len(errs) == 0 {
		// What the aggregator will check at the edge, said here first: a
		// node it would refuse should not start and retry forever.
		if err := wire.ValidateHello(&wire.Hello{Proto: wire.Version, Node: n}); err != nil {
			errs = append(errs, fmt.Errorf("the aggregator would refuse this node: %v", err))
		}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return fleet.Node{}, errors.Join(errs...)
	}
	return n, nil
}
