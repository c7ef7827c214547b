package wire_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/fleettop/fleettop/wire"
)

func TestNodeOrder(t *testing.T) {
	nan := math.NaN()
	nodes := []wire.NodeKey{
		{ID: "a", Region: "sg", Hostname: "h2", Util: 0.5, Hottest: nan, Burn: 10, State: wire.StateOnline},
		{ID: "b", Region: "jb", Hostname: "h9", Util: nan, Hottest: 70, Burn: 30, State: wire.StateOffline},
		{ID: "c", Region: "sg", Hostname: "h1", Util: 0.9, Hottest: 60, Burn: 10, State: wire.StateOnline},
		{ID: "d", Region: "sg", Hostname: "h1", Util: 0.5, Hottest: 80, Burn: 20, State: wire.StateStale},
	}
	for _, tc := range []struct {
		q    wire.NodeQuery
		want string
	}{
		{wire.NodeQuery{}, "bcda"},                     // region, hostname, id
		{wire.NodeQuery{Sort: "no such sort"}, "bcda"}, // unknown: default
		{wire.NodeQuery{Sort: wire.SortHost}, "cdab"},  // ties by the default order
		{wire.NodeQuery{Sort: wire.SortUtil}, "cdab"},  // highest first, unknown last
		{wire.NodeQuery{Sort: wire.SortUtil, Desc: true}, "badc"},
		{wire.NodeQuery{Sort: wire.SortTemp}, "dbca"},
		{wire.NodeQuery{Sort: wire.SortBurn}, "bdca"},
		{wire.NodeQuery{Sort: wire.SortState}, "bcad"},
	} {
		got := slices.Clone(nodes)
		slices.SortFunc(got, wire.NodeOrder(tc.q, func(k wire.NodeKey) wire.NodeKey { return k }))
		var ids strings.Builder
		for _, k := range got {
			ids.WriteString(k.ID)
		}
		if ids.String() != tc.want {
			t.Errorf("%+v: order %s, want %s", tc.q, ids.String(), tc.want)
		}
	}
	if !wire.KnownNodeSort(wire.SortJobs) || !wire.KnownNodeSort(wire.SortDefault) || wire.KnownNodeSort("nope") {
		t.Error("KnownNodeSort does not know the Sort* constants")
	}
}
