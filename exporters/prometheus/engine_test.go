package prometheus

import (
	"bytes"
	"strings"
	"testing"
	"time"

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
	eng.Observe(n, 0, &fleet.Sample{Seq: 1, Time: fixedNow.Add(-time.Hour), ProcsSet: true,
		Procs: []fleet.Process{{Device: 0, PID: 1, Job: fleet.Job{ID: "j", DataClass: "cn-customer"}}}})
	nodes := func() []wire.NodeView {
		return []wire.NodeView{{ID: n.ID, Region: n.Region, Jurisdiction: n.Jurisdiction, Provider: n.Provider, State: wire.StateOnline}}
	}
	e := NewExporter(fakeFleet(nodes), eng)
	e.now = func() time.Time { return fixedNow }
	var buf bytes.Buffer
	if err := e.WriteText(&buf, Filter{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`fleettop_residency_violations{jurisdiction="SG",provider="acme",region="Singapore"} 1` + "\n",
		`fleettop_cost_spend_total{currency="USD",jurisdiction="SG",provider="acme",region="Singapore"} 2` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q:\n%s", want, out)
		}
	}
}
