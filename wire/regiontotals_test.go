package wire_test

import (
	"math"
	"testing"

	"github.com/fleettop/fleettop/wire"
)

func TestRegionTotalsAddNode(t *testing.T) {
	nan := math.NaN()
	type node struct {
		state string
		gpus  int
		util  float64
	}
	for _, tc := range []struct {
		name                   string
		nodes                  []node
		online, stale, offline int
		util                   float64 // NaN: unknown
	}{
		{"empty", nil, 0, 0, 0, nan},
		{"weighed by GPUs", []node{{wire.StateOnline, 8, 0.5}, {wire.StateOnline, 2, 1}}, 2, 0, 0, 0.6},
		{"degraded is online", []node{{wire.StateDegraded, 4, 0.25}}, 1, 0, 0, 0.25},
		{"stale counts its utilisation", []node{{wire.StateStale, 4, 0.25}, {wire.StateOnline, 4, nan}}, 1, 1, 0, 0.25},
		{"offline does not", []node{{wire.StateOffline, 8, 0.9}, {wire.StateOnline, 4, 0.3}}, 1, 0, 1, 0.3},
		{"unknown state is offline", []node{{"", 8, 0.9}}, 0, 0, 1, 0.9},
		{"none reports", []node{{wire.StateOnline, 8, nan}}, 1, 0, 0, nan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tot wire.RegionTotals
			gpus := 0
			for _, n := range tc.nodes {
				tot.AddNode(n.state, n.gpus, n.util, 1, 2, 3)
				gpus += n.gpus
			}
			k := float64(len(tc.nodes))
			if tot.Nodes != len(tc.nodes) || tot.GPUs != gpus || tot.MemUsed != k || tot.MemTotal != 2*k || tot.Power != 3*k {
				t.Errorf("totals %+v", tot)
			}
			if tot.Online != tc.online || tot.Stale != tc.stale || tot.Offline != tc.offline {
				t.Errorf("online/stale/offline %d/%d/%d, want %d/%d/%d", tot.Online, tot.Stale, tot.Offline, tc.online, tc.stale, tc.offline)
			}
			u, ok := tot.MeanUtil()
			if ok == math.IsNaN(tc.util) || ok && math.Abs(u-tc.util) > 1e-12 {
				t.Errorf("MeanUtil() = %v, %v; want %v", u, ok, tc.util)
			}
			var r wire.RegionRow
			tot.Fill(&r)
			if (r.Util != nil) != ok || ok && *r.Util != u || r.Nodes != tot.Nodes || r.Offline != tot.Offline || r.Power != tot.Power {
				t.Errorf("Fill: %+v from %+v", r, tot)
			}
		})
	}
}

func TestRegionTotalsAddRegion(t *testing.T) {
	half := 0.5
	rows := []wire.RegionRow{
		{Nodes: 2, GPUs: 16, Online: 1, Stale: 1, MemUsed: 1, MemTotal: 2, Power: 3, Util: &half},
		{Nodes: 1, GPUs: 4, Offline: 1, MemTotal: 5}, // no utilisation
	}
	var tot wire.RegionTotals
	for i := range rows {
		tot.AddRegion(&rows[i])
	}
	var got wire.RegionRow
	tot.Fill(&got)
	if got.Nodes != 3 || got.GPUs != 20 || got.Online != 1 || got.Stale != 1 || got.Offline != 1 ||
		got.MemUsed != 1 || got.MemTotal != 7 || got.Power != 3 || got.Util == nil || *got.Util != 0.5 {
		t.Errorf("merged %+v", got)
	}
}
