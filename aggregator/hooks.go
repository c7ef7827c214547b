package aggregator

import (
	"context"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// Recorder makes ingest durable. The aggregator applies samples to memory at
// once, hands each to Record, and every CommitInterval calls Commit with the
// highest applied sequence of every node that advanced; only after Commit
// returns nil does it ack those sequences to the collectors. So a collector
// drops from its spool only what survived a crash, and a restarted aggregator
// resumes every node from LastSeqs: nothing applied twice, nothing skipped.
//
// Implemented by the store (SQLite); tests use fakes.
type Recorder interface {
	// LastSeqs returns the durable last applied sequence of every known node.
	LastSeqs(ctx context.Context) (map[string]uint64, error)
	// Record takes one applied sample of node n. It is called concurrently
	// from many sessions, must not block on I/O, and must not keep s or n
	// (copy what it needs). gen is n's generation: it changes whenever n
	// does and is never reused, so a Recorder need not compare an n whose
	// generation it has seen (0: unknown, compare). With a nonzero gen, n's
	// Devices and Labels are never modified in place (a change gives n new
	// ones and a new generation), so a Recorder may keep those by reference.
	Record(n *fleet.Node, gen uint64, s *fleet.Sample)
	// Commit makes everything recorded so far durable together with seqs
	// (node id → highest applied sequence) in one transaction. A node's
	// durable sequence becomes the highest it has recorded, which may exceed
	// seqs[id] when samples were recorded after the caller read it. It must
	// not keep or modify seqs, which the caller reuses.
	Commit(ctx context.Context, seqs map[string]uint64) error
}

// Insights turns the live fleet into money, jobs and alerts: the cost engine
// and the policy rules behind one interface. All methods are safe for
// concurrent use and never block ingest on I/O.
type Insights interface {
	// Observe sees every applied sample of node n (after Record), on the
	// ingest path: cheap, no I/O, keep nothing of n or s by reference. gen
	// is n's generation, as for Recorder.Record.
	Observe(n *fleet.Node, gen uint64, s *fleet.Sample)
	// NodeState reports a node's state change (wire.StateOnline, …) at t.
	NodeState(n *fleet.Node, state string, t time.Time)
	// Summarize is called by the broadcaster at most once a second with the
	// current clock; it returns the fleet summary (money in the display
	// currency), every known job, and open plus recently closed alerts.
	Summarize(now time.Time) (wire.Summary, []wire.JobView, []fleet.Alert)
	// NodeBurn returns what node n costs per hour now, in the display
	// currency (the lease currency only when that has no exchange rate).
	NodeBurn(n *fleet.Node) fleet.Money
}

// ticker is implemented by Insights whose time-driven rules (offline
// alerts) must be judged although no sample arrives and nobody watches;
// the aggregator calls Tick after every state check.
type ticker interface{ Tick(now time.Time) }
