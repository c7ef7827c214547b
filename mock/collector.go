package mock

import (
	"fmt"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
)

// Node for `fleettop collector --mock KIND`: the first node of the default
// scenario with the kind's vendor.
func collectorNode(kind string, seed int64) (*Node, error) {
	var vendor fleet.Vendor
	switch kind {
	case "nvidia":
		vendor = fleet.VendorNVIDIA
	case "ascend":
		vendor = fleet.VendorAscend
	default:
		return nil, fmt.Errorf("mock kind %q: want nvidia or ascend", kind)
	}
	sc, err := New(Config{Seed: seed})
	if err != nil {
		return nil, err
	}
	for _, n := range sc.Nodes {
		if n.Model.Vendor == vendor && (vendor != fleet.VendorNVIDIA || n.Model.Key == "h100") {
			return n, nil
		}
	}
	return nil, fmt.Errorf("mock kind %q: no such node in the scenario", kind)
}

// CollectorSources returns the simulated sources and node identity for
// `fleettop collector --mock KIND` (kind "nvidia": an 8× H100 SXM node in
// Singapore; "ascend": an 8× Ascend 910B node at the Hangzhou home site).
// With cgo, "nvidia" is served through go-nvml's mock server and read by the
// real collector/nvml source; without cgo, by the pure-Go simulated source.
func CollectorSources(kind string, seed int64) (fleet.Node, []collector.Source, error) {
	n, err := collectorNode(kind, seed)
	if err != nil {
		return fleet.Node{}, nil, err
	}
	info := n.Info
	info.Devices = nil // the agent fills them from the sources' inventory
	srcs, err := collectorSources(n)
	if err != nil {
		return fleet.Node{}, nil, err
	}
	return info, srcs, nil
}
