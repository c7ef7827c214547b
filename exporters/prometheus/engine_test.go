package prometheus

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleettop/fleettop/aggregator/insight"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// TestWithEngine drives the real insight engine: a residency violation and
// spend show up under the fleettop series for the node's placement.
func TestWithEngine(t *testing.T) {
	cfg, err := insight.ParseConfig([]byte("residency: {cn-customer: [CN]}\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := insight.New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := &fleet.Node{ID: "sg-1", Region: "Singapore", Jurisdiction: "SG", Provider: "acme",
		Lease:   fleet.Lease{PricePerGPUHour: fleet.Money{Micros: 2_000_000, Currency: "USD"}},
		Devices: []fleet.Device{{Index: 0, Vendor: fleet.VendorNVIDIA, Model: "H100"}}}
	eng.Observe(n, &fleet.Sample{Seq: 1, Time: fixedNow.Add(-time.Hour), ProcsSet: true,
		Procs: []fleet.Process{{Device: 0, PID: 1, Job: fleet.Job{ID: "j", DataClass: "cn-customer"}}}})
	nodes := func() []wire.NodeView {
		return []wire.NodeView{{ID: n.ID, Region: n.Region, Jurisdiction: n.Jurisdiction, Provider: n.Provider, State: wire.StateOnline}}
	}
	c := NewCollector(nodes, eng).(*Collector)
	c.now = func() time.Time { return fixedNow }
	if v := testutil.ToFloat64(gather(t, c, "fleettop_residency_violations")); v != 1 {
		t.Errorf("violations = %v, want 1", v)
	}
	if v := testutil.ToFloat64(gather(t, c, "fleettop_cost_spend_total")); v != 2 {
		t.Errorf("spend = %v, want 2 (one GPU-hour at 2 USD)", v)
	}
}

// gather returns a collector limited to one metric name.
func gather(t *testing.T, c *Collector, name string) *filtered {
	t.Helper()
	return &filtered{c: c, name: name}
}
