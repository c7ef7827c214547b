// Package wire is the protocol between collectors and the aggregator, and the
// watch stream between the aggregator and viewers. It has frames and their
// codecs, and no networking.
//
// Collector stream (websocket /v1/collect, one frame per binary message):
//
//	collector → Hello
//	aggregator → Welcome{ResumeFrom}      next sequence number it wants
//	collector → Samples …                 records ResumeFrom, ResumeFrom+1, …
//	aggregator → Ack{Seq, Time} …         highest sequence durably applied
//	collector → Status …                  its sources' health, when it changes
//	collector → Clock …                   after Hello, and in answer to every
//	                                      Ack that carries the aggregator's Time
//	either     → Close{Code, Reason}      then the websocket close
//
// Every connection starts with fresh codec state on both sides (Encoder and
// Decoder), so delta encoding never spans a reconnect.
package wire

import (
	"errors"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Version is the protocol version this build speaks; it decodes every
// version from MinVersion on. An encoder speaks Version unless made for an
// older peer (NewEncoderVersion). A peer speaking a version outside
// MinVersion..Version is refused with CloseProtocol.
//
// Protocol 2 (this build) codes values at the sensors' own resolution with
// predictions (delta of delta for counters and time, free memory from used
// memory) and codes the process list against the previous one; see codec.go
// and quant.go. Protocol 1 is protocol 2's layout with plain deltas, finer
// steps for ratios and temperature, and process lists written out in full.
const (
	Version    = 2
	MinVersion = 1
)

// MaxFrameSize bounds every encoded frame; larger input is rejected unread.
const MaxFrameSize = 1 << 20

// Bounds on counts inside frames. A frame exceeding any of them is malformed.
const (
	MaxDevices     = 64   // devices per node
	MaxSamples     = 256  // records per Samples frame
	MaxProcs       = 1024 // processes per record
	MaxEvents      = 256  // events per record
	MaxLabels      = 64   // labels per node
	MaxStringBytes = 1024 // any string
	MaxSources     = 32   // source statuses per Hello or Status
)

// Type identifies a frame.
type Type uint8

// Frame types. Values are part of the protocol.
const (
	TypeHello   Type = 1
	TypeWelcome Type = 2
	TypeSamples Type = 3
	TypeAck     Type = 4
	TypeClose   Type = 5
	TypeStatus  Type = 6
	TypeClock   Type = 7
)

// Frame is one of *Hello, *Welcome, *Samples, *Ack, *Close, *Status, *Clock.
type Frame interface{ Type() Type }

// Hello opens a collector session: who the node is and what it has.
type Hello struct {
	Proto uint16 // protocol version the collector speaks (Version)
	Node  fleet.Node
}

// Welcome answers Hello with the sequence number the aggregator wants next
// (its last durably applied sequence for the node, plus one).
type Welcome struct {
	Proto      uint16
	ResumeFrom uint64
}

// Samples carries one or more sequenced records, in increasing Seq order.
type Samples struct {
	Samples []fleet.Sample
}

// Ack tells the collector that every record up to and including Seq is
// durably applied; it may drop them from its spool.
//
// Time, when not zero, is the aggregator's clock as it sent the Ack: the
// collector answers with a Clock frame so the aggregator can estimate the
// collector's clock offset. The aggregator sets it only for collectors that
// sent a Clock frame (older collectors refuse trailing bytes), and only when
// it wants a reading (the aggregator's first acks, then about once a minute,
// and again after a record whose time strays from its arrival): a collector
// answers exactly the Acks that carry a Time.
type Ack struct {
	Seq  uint64
	Time time.Time
}

// Clock gives the aggregator the collector's clock, NTP-style: the collector
// sends one right after Hello (Origin and Received zero: a one-way reading),
// and one in answer to every Ack with a Time (Origin is that Time, Received
// the collector's clock when the Ack arrived). Sent is the collector's clock
// as it sends the frame. With the aggregator's receive time these are NTP's
// four timestamps, from which the aggregator derives the offset and the
// round-trip delay, and keeps the reading of the least delay.
type Clock struct {
	Origin   time.Time
	Received time.Time
	Sent     time.Time
}

// Status is the collector's per-source health (fleet.Node.Sources), sent
// after Welcome whenever a source goes down or comes back. It replaces the
// list sent in Hello or in the previous Status.
type Status struct {
	Sources []fleet.SourceStatus
}

// Close explains why the sender is closing the session.
type Close struct {
	Code   CloseCode
	Reason string
}

// CloseCode is sent both in Close frames and as the websocket close status.
type CloseCode uint16

// Close codes (websocket private range 4000-4999, plus the standard ones).
const (
	CloseNormal    CloseCode = 1000
	CloseGoingAway CloseCode = 1001
	CloseTooBig    CloseCode = 1009
	CloseMalformed CloseCode = 4000 // a frame could not be decoded
	CloseProtocol  CloseCode = 4001 // unsupported protocol version or unexpected frame
	CloseForbidden CloseCode = 4003 // token not allowed for this node
	CloseConflict  CloseCode = 4009 // another session for the same node took over
	CloseNodeInUse CloseCode = 4010 // refused: a live, healthy session already holds this node id
	CloseInvalid   CloseCode = 4022 // refused: a value failed validation (see ValidateHello, SanitizeSampleAfter)
	CloseLimit     CloseCode = 4029 // refused: a limit was reached (node ids per token, connections)
)

func (*Hello) Type() Type   { return TypeHello }
func (*Welcome) Type() Type { return TypeWelcome }
func (*Samples) Type() Type { return TypeSamples }
func (*Ack) Type() Type     { return TypeAck }
func (*Close) Type() Type   { return TypeClose }
func (*Status) Type() Type  { return TypeStatus }
func (*Clock) Type() Type   { return TypeClock }

// Errors returned by decoders. Every malformed input yields an error that
// wraps ErrMalformed (or ErrTooBig / ErrVersion), never a panic.
var (
	ErrMalformed = errors.New("malformed frame")
	ErrTooBig    = errors.New("frame too big")
	ErrVersion   = errors.New("unsupported protocol version")
)
