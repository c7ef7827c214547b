package aggregator

import (
	"testing"

	"github.com/fleettop/fleettop/fleet"
)

// TestRowMemTotalFollowsTheInventory: a row's memory total is the
// inventory's where no sample reports one, and follows a new Hello that
// keeps the devices (and their history) but reports other sizes.
func TestRowMemTotalFollowsTheInventory(t *testing.T) {
	s := &Server{}
	n := newNodeState("n1")
	hello := func(gib uint64) fleet.Node {
		return fleet.Node{ID: "n1", Devices: []fleet.Device{
			{Index: 0, UUID: "GPU-a", Vendor: fleet.VendorNVIDIA, MemoryTotal: gib << 30},
			{Index: 1, UUID: "GPU-b", Vendor: fleet.VendorNVIDIA, MemoryTotal: gib << 30},
		}}
	}
	var rv rowValues
	n.setNode(hello(80))
	s.takeRowValues(n, &rv, 1)
	if want := float64(160 << 30); rv.memTotal != want {
		t.Errorf("memory total %v, want %v", rv.memTotal, want)
	}
	hist := n.devs[0].hist
	n.setNode(hello(96))
	if n.devs[0].hist != hist {
		t.Fatalf("the same devices lost their history")
	}
	s.takeRowValues(n, &rv, 2)
	if want := float64(192 << 30); rv.memTotal != want {
		t.Errorf("after a Hello with 96 GiB devices: memory total %v, want %v", rv.memTotal, want)
	}
}
