package wire

// Validation of what a collector says, applied by the aggregator at the edge,
// after decoding and before anything reaches the fleet, the store, viewers or
// exporters. The codec only guarantees that a frame is well formed; these
// rules say what a node may claim.
//
// A Hello that breaks a rule is refused (CloseInvalid, counted by reason).
// In samples a value out of its physical range is made absent, a bad string
// is repaired, and an event with an impossible time takes its record's time;
// each is counted by reason and the record is kept. A record whose time or
// sequence is impossible refuses the frame. See docs/SECURITY.md.

import (
	"fmt"
	"math/bits"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fleettop/fleettop/fleet"
)

// Limits on the strings a collector sends, in bytes.
const (
	MaxIDBytes    = 253  // node id, hostname (a DNS name's length)
	MaxNameBytes  = 128  // region, site, provider, lease id, label keys, UUIDs, models, job fields
	MaxShortBytes = 64   // driver, CUDA, boot id, agent version, PCI bus id, event kind and severity
	MaxTextBytes  = 1024 // label values, event messages (= MaxStringBytes)
	MaxProcName   = 256  // process names
)

// Bounds on times and sequences.
var (
	// MinTime and MaxTime bound every time a node sends: lease start and
	// end, record times and event times. Outside them a time is certainly
	// wrong, and past year 9999 it cannot even be written as JSON.
	MinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	// MaxSeq bounds a record's sequence number, so that seq+1 never wraps.
	MaxSeq = 1 << 62
	// DefaultMaxSeqJump bounds how far one record may jump past the last
	// applied sequence. A jump is records the node lost (its spool
	// overflowed, or it reserved numbers for samples it could not spool); at
	// one record a second, 2^32 is 136 years of them, so no spool can lose
	// more, while a jump to 2^64-1 is refused.
	DefaultMaxSeqJump = 1 << 32
	// MaxPriceMicros bounds a lease price: one million currency units per
	// GPU-hour.
	MaxPriceMicros = 1_000_000 * fleet.MicrosPerUnit
	// MaxDeviceMemory bounds a device's memory: 64 TiB.
	MaxDeviceMemory = 64 << 40
	// MaxLeaseGPUs bounds a lease's contracted GPU count per node.
	MaxLeaseGPUs = 1024
	// MaxPowerLimit bounds a device's power limit and draw, in watts.
	MaxPowerLimit = 5000
)

// Reasons counted when a node's data is refused or repaired. They are
// Prometheus label values of fleettop_ingest_rejected_total and
// fleettop_ingest_repaired_total.
const (
	ReasonBadString  = "bad_string"   // not UTF-8, too long, or a character outside the field's set
	ReasonBadLease   = "bad_lease"    // lease time, price, currency or billing out of bounds
	ReasonBadDevice  = "bad_device"   // inventory entry out of bounds
	ReasonBadTime    = "bad_time"     // a time outside MinTime..MaxTime
	ReasonOutOfRange = "out_of_range" // a metric outside its physical range (made absent)
	ReasonSeqJump    = "seq_jump"     // a sequence past MaxSeq or jumping too far
)

// Invalid is the error for data that breaks a rule: Reason is one of the
// Reason constants, Field names what broke it.
type Invalid struct {
	Reason string
	Field  string
	Msg    string
}

func (e *Invalid) Error() string { return e.Field + ": " + e.Msg }

func invalid(reason, field, format string, a ...any) *Invalid {
	return &Invalid{Reason: reason, Field: field, Msg: fmt.Sprintf(format, a...)}
}

// charset classes for strings.
type charset uint8

const (
	// ident: ASCII letters, digits and . _ - : @ — ids and host names.
	ident charset = iota
	// key: ident and / — label keys (k8s.io/zone).
	key
	// text: any printable UTF-8 and spaces, no control or format
	// characters (so no newlines, escapes or bidirectional overrides).
	text
)

func identRune(r rune) bool {
	return r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == '-' || r == ':' || r == '@')
}

func textRune(r rune) bool {
	return unicode.IsPrint(r) // letters, marks, numbers, punctuation, symbols and ' '
}

func (c charset) allows(r rune) bool {
	switch c {
	case ident:
		return identRune(r)
	case key:
		return identRune(r) || r == '/'
	}
	return r != utf8.RuneError && textRune(r)
}

// asciiAllowed[cs][b]: ASCII byte b is allowed in charset cs.
var asciiAllowed = func() (t [text + 1][utf8.RuneSelf]bool) {
	for cs := range t {
		for b := range t[cs] {
			t[cs][b] = charset(cs).allows(rune(b))
		}
	}
	return t
}()

// checkString checks s against a length limit and a charset.
func checkString(field, s string, maxBytes int, cs charset) *Invalid {
	if len(s) > maxBytes {
		return invalid(ReasonBadString, field, "%d bytes, at most %d", len(s), maxBytes)
	}
	ok := &asciiAllowed[cs]
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && ok[s[i]] {
		i++
	}
	if i == len(s) {
		return nil // allowed ASCII throughout, the common case
	}
	if !utf8.ValidString(s) {
		return invalid(ReasonBadString, field, "%q is not UTF-8", s)
	}
	for _, r := range s {
		if !cs.allows(r) {
			switch cs {
			case ident:
				return invalid(ReasonBadString, field, "%q: only letters, digits and . _ - : @ are allowed", s)
			case key:
				return invalid(ReasonBadString, field, "%q: only letters, digits and . _ - : @ / are allowed", s)
			}
			return invalid(ReasonBadString, field, "%q holds a control or invisible character (%U)", s, r)
		}
	}
	return nil
}

// repairString returns s made valid for cs and maxBytes: bytes that are not
// UTF-8 and characters outside the set become U+FFFD, and the result is cut
// at a character boundary. ok is false when anything changed, so repairing
// a repaired string again reports nothing.
func repairString(s string, maxBytes int, cs charset) (string, bool) {
	if checkString("", s, maxBytes, cs) == nil {
		return s, true
	}
	var b strings.Builder
	for _, r := range s { // invalid bytes range as RuneError
		if !cs.allows(r) {
			r = utf8.RuneError
			if cs != text {
				r = '_'
			}
		}
		if b.Len()+utf8.RuneLen(r) > maxBytes {
			break
		}
		b.WriteRune(r)
	}
	// A string repaired before (a source's reason in every Status frame,
	// a record resent from the spool) holds U+FFFD, which checkString
	// refuses in text: unchanged, it is not a new repair.
	out := b.String()
	return out, out == s
}

// ValidateHello checks everything a node says about itself. It returns nil
// or an *Invalid. Source statuses are repaired rather than refused (their
// reasons are error text from the node): see SanitizeSources.
func ValidateHello(h *Hello) error {
	if err := validateNode(&h.Node); err != nil {
		return err
	}
	SanitizeSources(h.Node.Sources)
	return nil
}

// SanitizeSources repairs source statuses in place (from Hello or a Status
// frame): names become ident strings of at most MaxShortBytes, reasons
// printable text of at most MaxTextBytes. It returns how many strings it
// changed (count them as ReasonBadString).
func SanitizeSources(src []fleet.SourceStatus) int {
	n := 0
	for i := range src {
		if v, ok := repairString(src[i].Name, MaxShortBytes, ident); !ok {
			src[i].Name, n = v, n+1
		}
		if v, ok := repairString(src[i].Reason, MaxTextBytes, text); !ok {
			src[i].Reason, n = v, n+1
		}
	}
	return n
}

func validateNode(n *fleet.Node) *Invalid {
	if n.ID == "" {
		return invalid(ReasonBadString, "node id", "empty")
	}
	strs := []struct {
		field string
		s     string
		max   int
		cs    charset
	}{
		{"node id", n.ID, MaxIDBytes, ident},
		{"hostname", n.Hostname, MaxIDBytes, ident},
		{"region", n.Region, MaxNameBytes, text},
		{"site", n.Site, MaxNameBytes, text},
		{"provider", n.Provider, MaxNameBytes, text},
		{"lease id", n.Lease.ID, MaxNameBytes, text},
		{"driver", n.Driver, MaxShortBytes, text},
		{"cuda", n.CUDA, MaxShortBytes, text},
		{"boot id", n.BootID, MaxShortBytes, ident},
		{"agent version", n.AgentVersion, MaxShortBytes, text},
	}
	for _, f := range strs {
		if err := checkString(f.field, f.s, f.max, f.cs); err != nil {
			return err
		}
	}
	if n.Jurisdiction != "" && !upperLetters(n.Jurisdiction, 2) {
		return invalid(ReasonBadString, "jurisdiction", "%q is not an upper-case ISO 3166-1 alpha-2 code", n.Jurisdiction)
	}
	if len(n.Labels) > MaxLabels {
		return invalid(ReasonBadString, "labels", "%d labels, at most %d", len(n.Labels), MaxLabels)
	}
	for k, v := range n.Labels {
		if k == "" {
			return invalid(ReasonBadString, "label key", "empty")
		}
		if err := checkString("label key", k, MaxNameBytes, key); err != nil {
			return err
		}
		if err := checkString("label "+k, v, MaxTextBytes, text); err != nil {
			return err
		}
	}
	if err := validateLease(&n.Lease); err != nil {
		return err
	}
	if len(n.Devices) > MaxDevices {
		return invalid(ReasonBadDevice, "devices", "%d devices, at most %d", len(n.Devices), MaxDevices)
	}
	var seen [MaxDevices]bool
	for i := range n.Devices {
		d := &n.Devices[i]
		field := fmt.Sprintf("device %d", d.Index)
		if d.Index < 0 || d.Index >= MaxDevices {
			return invalid(ReasonBadDevice, field, "index outside 0..%d", MaxDevices-1)
		}
		if seen[d.Index] {
			return invalid(ReasonBadDevice, field, "index listed twice")
		}
		seen[d.Index] = true
		if !d.Vendor.Valid() {
			return invalid(ReasonBadDevice, field, "unknown vendor %q", d.Vendor)
		}
		for _, f := range []struct {
			what string
			s    string
			max  int
			cs   charset
		}{{"uuid", d.UUID, MaxNameBytes, ident}, {"model", d.Model, MaxNameBytes, text}, {"pci bus id", d.PCIBusID, MaxShortBytes, ident}} {
			if err := checkString(field+" "+f.what, f.s, f.max, f.cs); err != nil {
				return err
			}
		}
		if d.MemoryTotal > MaxDeviceMemory {
			return invalid(ReasonBadDevice, field, "memory %d bytes, at most %d", d.MemoryTotal, uint64(MaxDeviceMemory))
		}
		if !(d.PowerLimit >= 0 && d.PowerLimit <= MaxPowerLimit) {
			return invalid(ReasonBadDevice, field, "power limit %v W outside 0..%d", d.PowerLimit, MaxPowerLimit)
		}
	}
	return nil
}

func validateLease(l *fleet.Lease) *Invalid {
	for _, t := range []struct {
		field string
		t     time.Time
	}{{"lease start", l.Start}, {"lease end", l.End}} {
		if !t.t.IsZero() && !TimeOK(t.t) {
			return invalid(ReasonBadLease, t.field, "%s outside %d..%d", t.t.UTC().Format(time.RFC3339), MinTime.Year(), MaxTime.Year()-1)
		}
	}
	if !l.Start.IsZero() && !l.End.IsZero() && !l.End.After(l.Start) {
		return invalid(ReasonBadLease, "lease end", "not after the lease start")
	}
	if l.GPUs < 0 || l.GPUs > MaxLeaseGPUs {
		return invalid(ReasonBadLease, "lease gpus", "%d outside 0..%d", l.GPUs, MaxLeaseGPUs)
	}
	p := l.PricePerGPUHour
	if p.Micros < 0 || p.Micros > MaxPriceMicros {
		return invalid(ReasonBadLease, "lease price", "%d micro-units outside 0..%d", p.Micros, int64(MaxPriceMicros))
	}
	if p.Currency != "" && !upperLetters(p.Currency, 3) {
		return invalid(ReasonBadLease, "lease currency", "%q is not an upper-case ISO 4217 code", p.Currency)
	}
	if p.Micros != 0 && p.Currency == "" {
		return invalid(ReasonBadLease, "lease price", "a price without a currency")
	}
	switch l.Billing {
	case "", fleet.BillPerSecond, fleet.BillPerStartedHour:
	default:
		return invalid(ReasonBadLease, "lease billing", "%q is not second or hour", l.Billing)
	}
	return nil
}

func upperLetters(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// TimeOK reports whether t lies within MinTime..MaxTime.
func TimeOK(t time.Time) bool { return !t.Before(MinTime) && t.Before(MaxTime) }

// valueRange is a metric's physical range, inclusive.
type valueRange struct{ lo, hi float64 }

const (
	maxCount   = 1e15 // error counters, rows, pages
	maxClock   = 100e3
	maxBitmask = 1 << 53 // a bitmask a float64 carries exactly
)

// metricRange returns metric m's physical range; ok is false for a metric
// this build has no range for (one appended later), which is then only
// required to be finite (the codec's rule).
func metricRange(m fleet.Metric) (r valueRange, ok bool) {
	switch m {
	case fleet.MetricUtil, fleet.MetricMemUtil, fleet.MetricFan:
		return valueRange{0, 1}, true
	case fleet.MetricMemUsed, fleet.MetricMemFree, fleet.MetricMemTotal:
		return valueRange{0, MaxDeviceMemory}, true
	case fleet.MetricPower:
		return valueRange{0, MaxPowerLimit}, true
	case fleet.MetricEnergy:
		return valueRange{0, 1e13}, true // 5 kW for 60 years
	case fleet.MetricTemp:
		return valueRange{-40, 150}, true
	case fleet.MetricSMClock, fleet.MetricMemClock:
		return valueRange{0, maxClock}, true
	case fleet.MetricThrottle:
		return valueRange{0, maxBitmask}, true
	case fleet.MetricECCCorrected, fleet.MetricECCUncorrected, fleet.MetricRemappedRows, fleet.MetricRetiredPages:
		return valueRange{0, maxCount}, true
	case fleet.MetricHealth:
		return valueRange{float64(fleet.HealthOK), float64(fleet.HealthCritical)}, true
	case fleet.MetricGREngineActive, fleet.MetricSMActive, fleet.MetricSMOccupancy, fleet.MetricTensorActive, fleet.MetricDRAMActive:
		return valueRange{0, 1}, true
	case fleet.MetricPCIeTx, fleet.MetricPCIeRx, fleet.MetricNVLinkTx, fleet.MetricNVLinkRx:
		return valueRange{0, 1e13}, true // 10 TB/s, above any link
	case fleet.MetricECCCorrectedAgg, fleet.MetricECCUncorrectedAgg:
		return valueRange{0, maxCount}, true
	case fleet.MetricRemapPending, fleet.MetricRemapFailure:
		return valueRange{0, 1}, true
	}
	return valueRange{}, false
}

// metricRanges is metricRange as a table, for the metrics in rangedMetrics
// (bit m set: metric m has a range).
var metricRanges, rangedMetrics = func() (t [fleet.NumMetrics]valueRange, mask uint32) {
	for m := fleet.Metric(0); m < fleet.NumMetrics; m++ {
		if r, ok := metricRange(m); ok {
			t[m], mask = r, mask|1<<m
		}
	}
	return t, mask
}()

func hostRange(m fleet.HostMetric) (r valueRange, ok bool) {
	switch m {
	case fleet.HostCPUUtil:
		return valueRange{0, 1}, true
	case fleet.HostLoad1, fleet.HostLoad5, fleet.HostLoad15:
		return valueRange{0, 1e6}, true
	case fleet.HostMemUsed, fleet.HostMemTotal:
		return valueRange{0, 1 << 50}, true // 1 PiB
	case fleet.HostNetRx, fleet.HostNetTx:
		return valueRange{0, 1 << 62}, true
	case fleet.HostUptime:
		return valueRange{0, 100 * 365 * 86400}, true
	}
	return valueRange{}, false
}

func (r valueRange) has(x float64) bool { return x >= r.lo && x <= r.hi }

// Repairs counts what SanitizeSampleAfter changed, by reason.
type Repairs struct {
	OutOfRange int // metric values made absent
	BadString  int // strings repaired
	BadTime    int // event times replaced by the record's
}

// Add adds o to r.
func (r *Repairs) Add(o Repairs) {
	r.OutOfRange += o.OutOfRange
	r.BadString += o.BadString
	r.BadTime += o.BadTime
}

// Zero reports whether nothing was repaired.
func (r Repairs) Zero() bool { return r == Repairs{} }

// SanitizeSampleAfter makes a decoded record safe to apply, in place:
// metrics outside their physical range become absent, strings outside their
// limits are repaired, events with an impossible time take the record's
// time. It returns an *Invalid (and changes nothing that matters) when the
// record itself is impossible: its time outside MinTime..MaxTime or its
// sequence past MaxSeq. prev is a process list this node sent earlier,
// already sanitized (nil: none): a process whose name and job equal those
// of prev's entry at the same index is valid without a second look (a
// node's list mostly repeats the previous one).
func SanitizeSampleAfter(s *fleet.Sample, prev []fleet.Process) (Repairs, error) {
	var rp Repairs
	if s.Seq == 0 || s.Seq > MaxSeq {
		return rp, invalid(ReasonSeqJump, "record", "sequence %d outside 1..%d", s.Seq, uint64(MaxSeq))
	}
	if !TimeOK(s.Time) {
		return rp, invalid(ReasonBadTime, "record", "time %s outside %d..%d", s.Time.UTC().Format(time.RFC3339), MinTime.Year(), MaxTime.Year()-1)
	}
	for i := range s.Devices {
		d := &s.Devices[i]
		for p := d.Present & rangedMetrics; p != 0; p &= p - 1 {
			m := fleet.Metric(bits.TrailingZeros32(p))
			if !metricRanges[m].has(d.Values[m]) {
				d.Clear(m)
				rp.OutOfRange++
			}
		}
	}
	if h := s.Host; h != nil {
		for m := fleet.HostMetric(0); m < fleet.NumHostMetrics; m++ {
			if x, ok := h.Get(m); ok {
				if r, known := hostRange(m); known && !r.has(x) {
					h.Values[m] = 0
					h.Present &^= 1 << m
					rp.OutOfRange++
				}
			}
		}
	}
	fix := func(p *string, max int, cs charset) {
		if v, ok := repairString(*p, max, cs); !ok {
			*p = v
			rp.BadString++
		}
	}
	for i := range s.Procs {
		p := &s.Procs[i]
		if p.UsedMemory > MaxDeviceMemory {
			p.UsedMemory = 0
			rp.OutOfRange++
		}
		if i < len(prev) && p.Name == prev[i].Name && p.Job == prev[i].Job {
			continue // checked (or repaired) when prev was sanitized
		}
		fix(&p.Name, MaxProcName, text)
		fix(&p.Job.ID, MaxNameBytes, text)
		fix(&p.Job.Source, MaxShortBytes, text)
		fix(&p.Job.Team, MaxNameBytes, text)
		fix(&p.Job.DataClass, MaxNameBytes, text)
	}
	for i := range s.Events {
		e := &s.Events[i]
		if !TimeOK(e.Time) {
			e.Time = s.Time
			rp.BadTime++
		}
		k, sev := string(e.Kind), string(e.Severity)
		fix(&k, MaxShortBytes, ident)
		fix(&sev, MaxShortBytes, ident)
		e.Kind, e.Severity = fleet.EventKind(k), fleet.Severity(sev)
		fix(&e.Message, MaxTextBytes, text)
	}
	return rp, nil
}

// CheckSeqJump reports whether seq may follow last (the last applied
// sequence, 0 for none): a jump past last+maxJump is refused.
func CheckSeqJump(last, seq, maxJump uint64) error {
	if seq > last && seq-last > maxJump {
		return invalid(ReasonSeqJump, "record", "sequence %d jumps %d past the last applied %d (at most %d)", seq, seq-last, last, maxJump)
	}
	return nil
}
