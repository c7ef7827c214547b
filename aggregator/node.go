package aggregator

import (
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// maxEvents is how many recent events each node keeps for viewers.
const maxEvents = 32

// xidFallenOffBus is NVIDIA's XID 79: the GPU has fallen off the bus. The
// device is lost until the node boots again.
const xidFallenOffBus = 79

// nodeState is one node's live state. mu guards everything but the atomics;
// ingest of one node never contends with another node's.
type nodeState struct {
	id string

	seq     atomic.Uint64 // last applied sequence
	version atomic.Uint64 // fleet version of its last change

	committed atomic.Uint64 // last committed (durable) sequence

	offset      atomic.Int64 // estimated clock offset (aggregator − collector), ns
	offsetKnown atomic.Bool

	mu         sync.Mutex
	node       fleet.Node
	gen        uint64                // changes with node (bump): exporters rebuild label sets, Recorder and Insights compare it
	slot       [wire.MaxDevices]int8 // device index → position in devs, -1: none
	devs       []deviceState
	host       fleet.HostSample
	hasHost    bool
	procs      []fleet.Process
	events     []fleet.Event // ring of recent events
	evNext     int
	gaps       uint64
	dups       uint64
	lastSeen   time.Time // aggregator clock at Hello or at the last applied record
	sampleTime time.Time // the collector's time of the last applied record
	state      string    // last state reported to Insights
	sess       *session  // live session, nil when none
	evicted    bool      // forgotten by evictIdle; a session must claim anew
	row        rowValues // its list row's figures, taken by apply
	// visible and blind GPUs of node at generation countGen: states, rows
	// and summaries ask every second; the inventory changes with gen.
	countGen       uint64
	visible, blind int
}

// deviceState is what the aggregator keeps of device i beside its identity,
// which is n.node.Devices[i] (setNode keeps the two slices in step).
type deviceState struct {
	latest fleet.DeviceSample
	seen   bool
	hist   *history // allocated on its own: a ring fills one size class exactly
	// memTotal is the inventory's MemoryTotal (bytes), kept beside the
	// sample: the row values read it with every watched sample, and the
	// inventory's devices (hundreds of bytes each) were a cache miss apiece.
	memTotal float64
}

func newNodeState(id string) *nodeState {
	n := &nodeState{id: id}
	for i := range n.slot {
		n.slot[i] = -1
	}
	return n
}

// setNode installs the identity from Hello (already cloned), keeping device
// history when the inventory is unchanged. Within one boot, a device that
// was lost stays lost and one missing from the new inventory is kept as
// lost; a new boot starts afresh. Caller holds n.mu.
func (n *nodeState) setNode(node fleet.Node) {
	n.bump()
	if n.node.ID != "" && node.BootID != "" && node.BootID == n.node.BootID {
		node.Devices = keepLost(n.node.Devices, node.Devices)
	}
	old := n.node.Devices
	same := len(node.Devices) == len(n.devs) && len(old) == len(n.devs)
	for i := 0; same && i < len(node.Devices); i++ {
		same = node.Devices[i].Index == old[i].Index && node.Devices[i].UUID == old[i].UUID
	}
	n.node = node
	if !same {
		for i := range n.slot {
			n.slot[i] = -1
		}
		n.devs = make([]deviceState, len(node.Devices))
		for i, d := range node.Devices {
			n.devs[i].hist = new(history)
			n.slot[d.Index] = int8(i)
		}
	}
	for i := range n.devs {
		n.devs[i].memTotal = float64(node.Devices[i].MemoryTotal)
	}
}

// keepLost returns the inventory cur of a node that reconnected within the
// same boot: devices lost before stay lost, and devices of prev missing from
// cur come back as lost, in index order.
func keepLost(prev, cur []fleet.Device) []fleet.Device {
	var lost []fleet.Device
	for _, p := range prev {
		k := slices.IndexFunc(cur, func(d fleet.Device) bool { return d.Index == p.Index })
		switch {
		case k < 0:
			p.State = fleet.DeviceLost
			lost = append(lost, p)
		case p.State == fleet.DeviceLost && cur[k].UUID == p.UUID:
			cur[k].State = fleet.DeviceLost
		}
	}
	if len(lost) == 0 {
		return cur
	}
	out := append(slices.Clone(cur), lost...)
	slices.SortFunc(out, func(a, b fleet.Device) int { return a.Index - b.Index })
	return out
}

// markLost records that device index fell off the bus. Caller holds n.mu.
// The inventory is copied, not changed in place: n.node's slices are never
// modified once handed to the Recorder and Insights (see Recorder.Record),
// which may keep them until the generation moves.
func (n *nodeState) markLost(index int) bool {
	if index < 0 || index >= wire.MaxDevices || n.slot[index] < 0 {
		return false
	}
	k := n.slot[index]
	if n.node.Devices[k].State == fleet.DeviceLost {
		return false
	}
	n.node.Devices = slices.Clone(n.node.Devices)
	n.node.Devices[k].State = fleet.DeviceLost
	n.bump()
	return true
}

// nodeGens numbers the generations of every node: a node forgotten and met
// again, or another node, never repeats one.
var nodeGens atomic.Uint64

// bump gives n's identity a new generation. Caller holds n.mu and calls it
// whenever it changes n.node.
func (n *nodeState) bump() { n.gen = nodeGens.Add(1) }

// degraded reports whether the node has lost a device or sees fewer GPUs
// than its lease pays for. Caller holds n.mu.
func (n *nodeState) degraded() bool { return n.blindGPUs() > 0 }

// visibleGPUs is n.node.VisibleGPUs(). Caller holds n.mu.
func (n *nodeState) visibleGPUs() int {
	n.countGPUs()
	return n.visible
}

// blindGPUs is n.node.BlindGPUs(). Caller holds n.mu.
func (n *nodeState) blindGPUs() int {
	n.countGPUs()
	return n.blind
}

// countGPUs counts the node's visible and blind GPUs once a generation.
func (n *nodeState) countGPUs() {
	if n.countGen != n.gen || n.gen == 0 {
		n.visible, n.blind, n.countGen = n.node.VisibleGPUs(), n.node.BlindGPUs(), n.gen
	}
}

// validateHello checks a Hello before any state is touched: the protocol
// version, then everything wire.ValidateHello checks.
func validateHello(h *wire.Hello) *rejectErr {
	if h.Proto < wire.MinVersion || h.Proto > wire.Version {
		return reject(wire.CloseProtocol, rejectProtocol, "protocol version %d not supported (this aggregator speaks %d to %d): upgrade the collector", h.Proto, wire.MinVersion, wire.Version)
	}
	if err := wire.ValidateHello(h); err != nil {
		reason := rejectHello
		var inv *wire.Invalid
		if errors.As(err, &inv) {
			reason = inv.Reason
		}
		return reject(wire.CloseInvalid, reason, "bad hello: %v", err)
	}
	return nil
}

// applyRecord applies one record that is newer than the last applied. Caller
// holds n.mu. It returns the number of device samples applied.
func (n *nodeState) applyRecord(r *fleet.Sample, now time.Time) int {
	gpus := 0
	for i := range r.Devices {
		d := &r.Devices[i]
		if d.Index < 0 || d.Index >= wire.MaxDevices {
			continue
		}
		k := n.slot[d.Index]
		if k < 0 {
			continue // not in the inventory: ignore rather than guess
		}
		ds := &n.devs[k]
		ds.latest = *d
		ds.seen = true
		ds.hist.push(d)
		gpus++
	}
	if r.Host != nil {
		n.host = *r.Host
		n.hasHost = true
	}
	if r.ProcsSet {
		// The record's slices are the decoder's, reused by its next frame;
		// its strings are the node's to keep (the decoder copies them out
		// of the frame, and those many nodes hold alike are shared: see
		// wire's sharedString).
		n.procs = append(n.procs[:0], r.Procs...)
	}
	for _, e := range r.Events {
		if e.Kind == fleet.EventXID && e.Code == xidFallenOffBus {
			n.markLost(e.Device)
		}
		if len(n.events) < maxEvents {
			n.events = append(n.events, e)
		} else {
			n.events[n.evNext] = e
		}
		n.evNext = (n.evNext + 1) % maxEvents
	}
	n.lastSeen = now
	n.sampleTime = r.Time
	return gpus
}

// finite reports whether x can be written as JSON (no NaN or ±Inf).
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// stateAt derives online/stale/offline from the last time the node was heard.
func (s *Server) stateAt(n *nodeState, now time.Time) string {
	age := now.Sub(n.lastSeen)
	switch {
	case age <= s.cfg.StaleAfter:
		if n.degraded() {
			return wire.StateDegraded
		}
		return wire.StateOnline
	case age <= s.cfg.OfflineAfter:
		return wire.StateStale
	}
	return wire.StateOffline
}

// burn returns the node's cost per hour. Caller holds n.mu.
func (s *Server) burn(n *nodeState) fleet.Money {
	if s.cfg.Insights != nil {
		return s.cfg.Insights.NodeBurn(&n.node)
	}
	p := n.node.Lease.PricePerGPUHour
	return fleet.Money{Micros: p.Micros * int64(n.node.BilledGPUs()), Currency: p.Currency}
}

// view builds the node's NodeView. Caller holds n.mu.
func (s *Server) view(n *nodeState, now time.Time) wire.NodeView {
	v := s.viewHead(n, now)
	v.Devices = make([]wire.DeviceView, len(n.devs))
	for i := range n.devs {
		ds, dev := &n.devs[i], &n.node.Devices[i]
		dv := wire.DeviceView{
			Index: dev.Index, UUID: dev.UUID, Vendor: dev.Vendor, Model: dev.Model,
			MemoryTotal: dev.MemoryTotal, PowerLimit: dev.PowerLimit,
			State:    fleet.DeviceOK,
			PCIBusID: dev.PCIBusID, Instance: dev.Instance,
			Metrics: map[string]float64{},
		}
		if dev.State == fleet.DeviceLost {
			dv.State = fleet.DeviceLost
		}
		if ds.seen {
			for m := fleet.Metric(0); m < fleet.NumMetrics; m++ {
				if x, ok := ds.latest.Get(m); ok && finite(x) {
					dv.Metrics[m.String()] = x
				}
			}
			if u, ok := ds.latest.Get(fleet.MetricUtil); ok && finite(u) {
				dv.Util = &u
			}
		}
		v.Devices[i] = dv
	}
	return v
}

// viewHead builds the node's NodeView without devices. Caller holds n.mu.
func (s *Server) viewHead(n *nodeState, now time.Time) wire.NodeView {
	nd := &n.node
	v := wire.NodeView{
		ID:           n.id,
		Hostname:     nd.Hostname,
		Region:       nd.Region,
		Site:         nd.Site,
		Jurisdiction: nd.Jurisdiction,
		Provider:     nd.Provider,
		State:        s.stateAt(n, now),
		LastSeen:     n.lastSeen,
		Seq:          n.seq.Load(),
		Gaps:         n.gaps,
		Lease:        nd.Lease,
		GPUs:         nd.BilledGPUs(),
		GPUsBlind:    n.blindGPUs(),
		Sources:      nd.Sources,
		Driver:       nd.Driver,
		BurnPerHour:  s.burn(n),
	}
	if n.hasHost {
		v.Host = map[string]float64{}
		for m := fleet.HostMetric(0); m < fleet.NumHostMetrics; m++ {
			if x, ok := n.host.Get(m); ok && finite(x) {
				v.Host[m.String()] = x
			}
		}
	}
	if len(n.procs) > 0 {
		v.Procs = append([]fleet.Process(nil), n.procs...)
	}
	if len(n.events) > 0 {
		v.Events = make([]fleet.Event, 0, len(n.events))
		start := 0
		if len(n.events) == maxEvents {
			start = n.evNext
		}
		for k := 0; k < len(n.events); k++ {
			v.Events = append(v.Events, n.events[(start+k)%len(n.events)])
		}
	}
	return v
}

// node returns the live node with id, or nil.
func (s *Server) node(id string) *nodeState {
	s.nodesMu.RLock()
	defer s.nodesMu.RUnlock()
	return s.nodes[id]
}

// nodeList returns every node seen since start, in order of first Hello.
// The slice is shared: do not modify.
func (s *Server) nodeList() []*nodeState {
	s.nodesMu.RLock()
	defer s.nodesMu.RUnlock()
	return s.list
}

// getOrCreate returns the node with id, creating it with its durable
// sequence (if any) on first sight.
func (s *Server) getOrCreate(id string) *nodeState {
	if n := s.node(id); n != nil {
		return n
	}
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	if n := s.nodes[id]; n != nil {
		return n
	}
	n := newNodeState(id)
	if seq, ok := s.durable[id]; ok {
		n.seq.Store(seq)
		n.committed.Store(seq)
		delete(s.durable, id)
	}
	s.nodes[id] = n
	s.list = append(s.list, n)
	return n
}

// claim returns node id for a session of tok, creating it if needed. It
// refuses (false) a node id new to tok once tok sends for
// MaxNodesPerToken ids: one token cannot invent unlimited nodes.
func (s *Server) claim(tok *Token, id string) (*nodeState, bool) {
	s.nodesMu.Lock()
	set := s.tokNodes[tok.Name]
	if _, ok := set[id]; !ok {
		if len(set) >= s.cfg.MaxNodesPerToken {
			s.nodesMu.Unlock()
			return nil, false
		}
		if set == nil {
			set = map[string]struct{}{}
			s.tokNodes[tok.Name] = set
		}
		set[id] = struct{}{}
	}
	s.nodesMu.Unlock()
	return s.getOrCreate(id), true
}

// evictIdle forgets nodes without a session that were not heard from for
// NodeTTL and have nothing uncommitted: it leaves viewers' pages, the
// node's durable sequence is kept so that it resumes where it was, and its
// id stops counting against its token.
func (s *Server) evictIdle(now time.Time) {
	idle := func(n *nodeState) bool {
		return n.sess == nil && !n.evicted && now.Sub(n.lastSeen) > s.cfg.NodeTTL && n.seq.Load() == n.committed.Load()
	}
	var cand []*nodeState
	for _, n := range s.nodeList() {
		n.mu.Lock()
		if idle(n) {
			cand = append(cand, n)
		}
		n.mu.Unlock()
	}
	s.nodesMu.Lock()
	defer s.nodesMu.Unlock()
	// Forget removals no viewer can still need (viewers hear every second).
	for len(s.removals) > 0 && now.Sub(s.removals[0].at) > 10*time.Minute {
		s.removals = s.removals[1:]
	}
	if len(cand) == 0 {
		return
	}
	gone := map[*nodeState]bool{}
	for _, n := range cand {
		n.mu.Lock()
		if idle(n) {
			n.evicted = true
			gone[n] = true
			delete(s.nodes, n.id)
			s.durable[n.id] = n.committed.Load()
			for _, set := range s.tokNodes {
				delete(set, n.id)
			}
		}
		n.mu.Unlock()
	}
	if len(gone) == 0 {
		return
	}
	keep := make([]*nodeState, 0, len(s.list)-len(gone))
	v := s.version.Add(1)
	for _, n := range s.list {
		if gone[n] {
			s.removals = append(s.removals, removal{id: n.id, version: v, at: now})
		} else {
			keep = append(keep, n)
		}
	}
	s.list = keep
	s.m.evicted.Add(float64(len(gone)))
	s.log.Info("forgot idle nodes", "nodes", len(gone), "idle_for_more_than", s.cfg.NodeTTL.String())
}

// removal is a node forgotten at fleet version version.
type removal struct {
	id      string
	version uint64
	at      time.Time
}

// touch marks n changed for viewers (apply does the same in two halves:
// the version under n's lock, the kick after).
func (s *Server) touch(n *nodeState) {
	n.version.Store(s.version.Add(1))
	s.kickWatch(n)
}

// Nodes returns the current fleet, in order of first contact.
func (s *Server) Nodes() []wire.NodeView {
	now := s.clock()
	list := s.nodeList()
	out := make([]wire.NodeView, 0, len(list))
	for _, n := range list {
		n.mu.Lock()
		out = append(out, s.view(n, now))
		n.mu.Unlock()
	}
	return out
}
