//go:build cgo

package mock

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	nvmlsource "github.com/fleettop/fleettop/collector/nvml"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
)

// TestNVMLBridge reads a simulated node through the real NVML source: the
// values match the pure-Go source, and XID 79 arrives as an NVML event while
// the fallen GPU's metrics go absent.
func TestNVMLBridge(t *testing.T) {
	sc, err := New(Config{Seed: 1, Start: testStart})
	if err != nil {
		t.Fatal(err)
	}
	var node *Node
	for _, n := range sc.Nodes {
		for _, f := range n.faults {
			if f.Kind == FaultXID && f.Code == 79 {
				node = n
			}
		}
	}
	if node == nil {
		t.Fatal("no node with XID 79 in the scenario")
	}
	var now atomic.Int64
	now.Store(testStart.Add(170 * time.Second).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	srv, err := NewNVMLServer(node, clock)
	if err != nil {
		t.Fatal(err)
	}
	// No device hangs: the deadline is the tests' wait bound, so a loaded
	// machine never drops a device from a sample.
	src := nvmlsource.New(srv, nvmlsource.Options{EventWait: 20 * time.Millisecond, Deadline: testutil.WaitTimeout, Clock: clock})
	inv, err := src.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if len(inv.Devices) != len(node.Info.Devices) || inv.Devices[3].UUID != node.Info.Devices[3].UUID ||
		inv.Devices[0].Model != node.Model.Name || inv.Devices[0].PCIBusID != node.Info.Devices[0].PCIBusID {
		t.Fatalf("inventory %+v; want %+v", inv.Devices[0], node.Info.Devices[0])
	}
	var s fleet.Sample
	if err := src.Collect(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	var want fleet.DeviceSample
	node.ReadDevice(2, clock(), 0, &want)
	for _, d := range s.Devices {
		if d.Index != 2 {
			continue
		}
		for _, m := range []fleet.Metric{fleet.MetricUtil, fleet.MetricMemUsed, fleet.MetricTemp, fleet.MetricSMClock} {
			got, ok := d.Get(m)
			w, _ := want.Get(m)
			if !ok || got != w {
				t.Errorf("%s through NVML = %v (present %v); simulation says %v", m, got, ok, w)
			}
		}
	}
	now.Store(testStart.Add(185 * time.Second).UnixNano())
	var xid *fleet.Event
	testutil.WaitFor(t, "XID 79 from the event reader", func() bool { // it polls every 20 ms
		s = fleet.Sample{}
		if err := src.Collect(context.Background(), &s); err != nil {
			t.Fatal(err)
		}
		for i := range s.Events {
			if s.Events[i].Code == 79 {
				xid = &s.Events[i]
			}
		}
		return xid != nil
	})
	if xid.Kind != fleet.EventXID || xid.Device != 5 {
		t.Fatalf("XID 79 event = %+v; want one on device 5", xid)
	}
	for _, d := range s.Devices {
		if d.Index == 5 && d.Has(fleet.MetricUtil) {
			t.Errorf("device 5 fell off the bus but still reports util")
		}
	}
}
