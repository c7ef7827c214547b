package aggregator

import (
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// LiveNode is a read-only look at one node's live state, for exporters that
// must not pay for a wire.NodeView (maps per device) on every scrape. It is
// valid only inside the callback of Server.EachNode, which holds the node's
// lock: keep nothing it returns by reference.
type LiveNode struct {
	s   *Server
	n   *nodeState
	now time.Time
}

// ID returns the node id.
func (l *LiveNode) ID() string { return l.n.id }

// Identity returns the node as its last Hello described it. Do not modify.
func (l *LiveNode) Identity() *fleet.Node { return &l.n.node }

// Generation changes whenever Identity does (on every Hello), so an
// exporter can build label sets once per Hello and reuse them.
func (l *LiveNode) Generation() uint64 { return l.n.gen }

// State is wire.StateOnline, StateStale or StateOffline at the time of the walk.
func (l *LiveNode) State() string { return l.s.stateAt(l.n, l.now) }

// Burn is what the node costs per hour now (see wire.NodeView.BurnPerHour).
func (l *LiveNode) Burn() fleet.Money { return l.s.burn(l.n) }

// NumDevices returns the number of devices in the inventory.
func (l *LiveNode) NumDevices() int { return len(l.n.devs) }

// Device returns the i-th device of the inventory and its latest sample, nil
// when none has arrived since the node's Hello.
func (l *LiveNode) Device(i int) (*fleet.Device, *fleet.DeviceSample) {
	ds, dev := &l.n.devs[i], &l.n.node.Devices[i]
	if !ds.seen {
		return dev, nil
	}
	return dev, &ds.latest
}

// EachEvent calls fn for the node's recent events, oldest first.
func (l *LiveNode) EachEvent(fn func(*fleet.Event)) {
	n := l.n
	start := 0
	if len(n.events) == maxEvents {
		start = n.evNext
	}
	for k := range n.events {
		fn(&n.events[(start+k)%len(n.events)])
	}
}

// EachNode calls fn for every node seen since start, in order of first
// Hello, with that node locked (so fn must be quick and must not call back
// into the Server).
func (s *Server) EachNode(fn func(*LiveNode)) {
	l := LiveNode{s: s, now: s.clock()}
	for _, n := range s.nodeList() {
		n.mu.Lock()
		l.n = n
		fn(&l)
		n.mu.Unlock()
	}
}
