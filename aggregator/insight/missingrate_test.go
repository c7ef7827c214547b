package insight

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/fleettop/fleettop/fleet"
)

// TestNodeBurnWithoutARate: a lease in a currency the config has no rate
// for burns in its own currency, the missing rate is logged once however
// often it is met, and asking again costs no allocation (NodeBurn runs for
// every watched sample of such a node).
func TestNodeBurnWithoutARate(t *testing.T) {
	cfg, err := ParseConfig([]byte(fixtureYAML), "fleettop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	e, err := New(cfg, nil, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := fixtureNodes()
	n.Lease.PricePerGPUHour = fleet.Money{Micros: 9_000_000, Currency: "MYR"}
	want := fleet.Money{Micros: 18_000_000, Currency: "MYR"}
	for range 3 {
		if got := e.NodeBurn(n); got != want {
			t.Fatalf("NodeBurn = %v, want %v (two GPUs in the lease's currency)", got, want)
		}
	}
	if k := strings.Count(log.String(), "no exchange rate"); k != 1 || !strings.Contains(log.String(), "currency=MYR") {
		t.Errorf("logged %d warnings, want one for MYR:\n%s", k, log.String())
	}
	if a := testing.AllocsPerRun(100, func() { e.NodeBurn(n) }); a != 0 {
		t.Errorf("NodeBurn without a rate allocates %v times, want 0", a)
	}
	// A rate in the config still converts (4.00 SGD × 0.74, as TestSummarizeMoney).
	_, jb := fixtureNodes()
	if got := e.NodeBurn(jb); got != usd(2_960_000) {
		t.Errorf("NodeBurn(jb-1) = %v, want 2.96 USD", got)
	}
}
