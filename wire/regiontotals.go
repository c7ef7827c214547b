package wire

import "math"

// RegionTotals are a region's node counts and figures, added up node by
// node: the way an aggregator adds up its fleet view's RegionRow, and so
// the one a viewer adds up whole nodes in (an aggregator of protocol 1), or
// merges several aggregators' rows in.
type RegionTotals struct {
	Nodes, GPUs            int
	Online, Stale, Offline int     // nodes by state
	MemUsed, MemTotal      float64 // bytes
	Power                  float64 // W
	utilSum                float64 // utilisation × GPUs
	utilGPUs               int     // the GPUs utilSum weighs
}

// AddNode adds one node with gpus GPUs in state. A degraded node (a device
// lost) still reports, so it counts as online, as in Summary.GPUsOnline.
// util is the node's mean utilisation, NaN when none of its devices report
// one; it counts, weighed by gpus, unless the node is offline.
func (t *RegionTotals) AddNode(state string, gpus int, util, memUsed, memTotal, power float64) {
	t.Nodes++
	t.GPUs += gpus
	switch state {
	case StateOnline, StateDegraded:
		t.Online++
	case StateStale:
		t.Stale++
	default:
		t.Offline++
	}
	if !math.IsNaN(util) && state != StateOffline {
		t.utilSum += util * float64(gpus)
		t.utilGPUs += gpus
	}
	t.MemUsed += memUsed
	t.MemTotal += memTotal
	t.Power += power
}

// AddRegion adds a region row an aggregator sent; its utilisation weighs
// as all its GPUs.
func (t *RegionTotals) AddRegion(r *RegionRow) {
	t.Nodes += r.Nodes
	t.GPUs += r.GPUs
	t.Online += r.Online
	t.Stale += r.Stale
	t.Offline += r.Offline
	t.MemUsed += r.MemUsed
	t.MemTotal += r.MemTotal
	t.Power += r.Power
	if r.Util != nil {
		t.utilSum += *r.Util * float64(r.GPUs)
		t.utilGPUs += r.GPUs
	}
}

// MeanUtil is the mean utilisation over the GPUs whose utilisation was
// added; ok is false when there were none.
func (t *RegionTotals) MeanUtil() (util float64, ok bool) {
	if t.utilGPUs > 0 {
		return t.utilSum / float64(t.utilGPUs), true
	}
	return 0, false
}

// Fill sets r's counts, figures and mean utilisation (nil when unknown) to t's.
func (t *RegionTotals) Fill(r *RegionRow) {
	r.Nodes, r.GPUs = t.Nodes, t.GPUs
	r.Online, r.Stale, r.Offline = t.Online, t.Stale, t.Offline
	r.MemUsed, r.MemTotal, r.Power = t.MemUsed, t.MemTotal, t.Power
	r.Util = nil
	if u, ok := t.MeanUtil(); ok {
		r.Util = &u
	}
}
