package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleettop/fleettop/aggregator"
	"github.com/fleettop/fleettop/aggregator/insight"
	"github.com/fleettop/fleettop/collector"
)

// The example configs ship in the packages as /etc/fleettop/*; they must load
// with the same parsers the services use.

func TestExampleCollectorConfigLoads(t *testing.T) {
	cfg, err := collector.LoadConfig(filepath.Join("config", "collector.yaml"), true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Jurisdiction != "SG" || cfg.PricePerGPUHour != "2.35" || cfg.Currency != "USD" {
		t.Errorf("collector.yaml loaded as %+v", cfg)
	}
}

func TestExampleAggregatorConfigLoads(t *testing.T) {
	cfg, err := insight.LoadConfig(filepath.Join("config", "aggregator.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Currency != "USD" || len(cfg.RateTable) != 5 || len(cfg.Prices) != 1 {
		t.Errorf("aggregator.yaml loaded as currency %q, %d rates, %d prices", cfg.Currency, len(cfg.RateTable), len(cfg.Prices))
	}
}

// The shipped token file holds no secret (a well-known secret in a package
// would open every aggregator installed from it): the aggregator must refuse
// it until the administrator writes tokens.
func TestExampleTokensHoldNoSecret(t *testing.T) {
	// Installed owner-only (a checkout's copy may be 0644, which LoadTokens refuses).
	b, err := os.ReadFile(filepath.Join("config", "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = aggregator.LoadTokens(p)
	if err == nil || !strings.Contains(err.Error(), "no tokens") {
		t.Fatalf("LoadTokens(example) = %v, want a 'no tokens' error", err)
	}
}

func TestExampleCollectorEnvNamesTheAggregator(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("config", "collector.env"))
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join("systemd", "fleettop-collector.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nFLEETTOP_AGGREGATOR=") || !strings.Contains(string(unit), "${FLEETTOP_AGGREGATOR}") {
		t.Error("collector.env and the collector unit disagree on FLEETTOP_AGGREGATOR")
	}
}
