package wire

// The binary encoding, protocol version 1.
//
// Integers are varints as in encoding/binary: unsigned LEB128 ("uvarint") and
// zig-zag signed ("varint"). A string is a uvarint length (at most
// MaxStringBytes) and its bytes.
//
// A frame is a 2-byte header, 0xF0|Version then the frame Type, and a body:
//
//	Hello    uvarint proto; node: id, hostname, region, site, provider,
//	         jurisdiction; lease: id, varint micros, currency, billing,
//	         flags byte (1 reserved, 2 start, 4 end), [varint start ms],
//	         [varint end ms]; uvarint label count, (key, value)… in strictly
//	         increasing key order; driver, cuda, boot id, agent version;
//	         uvarint device count, per device: uvarint index, uuid, vendor,
//	         model, pci bus id, uvarint memory total, varint power limit (mW),
//	         flags byte (1 MIG); uvarint contracted GPUs (lease gpus);
//	         sources (below)
//	Welcome  uvarint proto, uvarint resume-from
//	Samples  uvarint record count (1..MaxSamples), records
//	Ack      uvarint seq
//	Close    uvarint code, string reason
//	Status   sources
//
// Sources are a uvarint count (at most MaxSources), then per source: name,
// flags byte (1 up), reason.
//
// A record (one fleet.Sample) is coded against the previous record of the
// same connection (the Encoder/Decoder state; all zero at the start):
//
//	varint  seq − previous seq
//	varint  time − previous time, in milliseconds since the Unix epoch
//	byte    flags: 1 host, 2 procs set, 4 events, 8 same device layout
//	        [uvarint device count, uvarint index…]   unless "same layout":
//	                                                the previous record's indices
//	per device, in layout order: values (below)
//	[host values]
//	[uvarint process count, per process: varint device, uvarint pid, name,
//	 uvarint used memory, job id, job source, job team, job data class]
//	[uvarint event count (≥1), per event: varint time − record time (ms),
//	 kind, severity, varint device, varint code, message]
//
// Values of a device (or of the host) are coded against the previous values of
// the same device index (or the previous host values):
//
//	uvarint  changed<<1 | presentChanged   changed: bitmask of present metrics
//	                                       whose quantised value differs
//	[uvarint present mask]                 only when presentChanged
//	varint   quantised delta, per bit of changed, in metric order
//
// So an unchanged metric costs nothing and a steady device costs its two
// header bytes plus the deltas of what moved. See quant.go for resolutions.
//
// A spool record (AppendRecord) is one byte 0xE0|Version and a record coded
// against the zero state, so it stands alone.

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

const (
	frameMagic  = 0xF0 // high nibble of a frame's first byte; low nibble is Version
	recordMagic = 0xE0 // same for a spool record
)

// Record flags.
const (
	flagHost       = 1 << 0
	flagProcs      = 1 << 1
	flagEvents     = 1 << 2
	flagSameLayout = 1 << 3
	flagsAll       = flagHost | flagProcs | flagEvents | flagSameLayout
)

// Lease flags in Hello.
const (
	leaseReserved = 1 << 0
	leaseStart    = 1 << 1
	leaseEnd      = 1 << 2
)

const deviceMIG = 1 << 0

// devState is the last quantised values of one device index.
type devState struct {
	present uint32
	q       [fleet.NumMetrics]int64
}

type hostState struct {
	present uint32
	q       [fleet.NumHostMetrics]int64
}

// streamState is the per-connection delta state shared in shape by Encoder
// and Decoder. dev grows only to the highest device index seen, so a decoder
// for an 8-GPU node holds about 1 KiB.
type streamState struct {
	seq    uint64
	ms     int64
	layout []uint8 // device indices of the previous record, in order
	known  uint64  // bit i: dev[i] holds state; otherwise it reads as zero
	dev    []devState
	host   hostState
}

func (st *streamState) reset() {
	st.seq, st.ms, st.known = 0, 0, 0
	st.layout = st.layout[:0]
	st.host = hostState{}
}

func (st *streamState) device(idx int) *devState {
	if idx >= len(st.dev) {
		st.dev = append(st.dev, make([]devState, idx+1-len(st.dev))...)
	}
	if bit := uint64(1) << idx; st.known&bit == 0 {
		st.dev[idx] = devState{}
		st.known |= bit
	}
	return &st.dev[idx]
}

// undoLog lets the Encoder restore its state when a Samples frame fails
// half-way (an invalid value, or a frame over MaxFrameSize), so a refused
// frame leaves the connection usable.
type undoLog struct {
	seq     uint64
	ms      int64
	known   uint64
	host    hostState
	layout  []uint8
	touched uint64
	devs    []undoDev
}

type undoDev struct {
	idx int
	s   devState
}

func (u *undoLog) begin(st *streamState) {
	u.seq, u.ms, u.known, u.host = st.seq, st.ms, st.known, st.host
	u.layout = append(u.layout[:0], st.layout...)
	u.touched = 0
	u.devs = u.devs[:0]
}

func (u *undoLog) save(st *streamState, idx int) {
	bit := uint64(1) << idx
	if u.touched&bit != 0 {
		return
	}
	u.touched |= bit
	if st.known&bit != 0 {
		u.devs = append(u.devs, undoDev{idx, st.dev[idx]})
	}
}

func (u *undoLog) rollback(st *streamState) {
	st.seq, st.ms, st.known, st.host = u.seq, u.ms, u.known, u.host
	st.layout = append(st.layout[:0], u.layout...)
	for _, d := range u.devs {
		st.dev[d.idx] = d.s
	}
}

// statePool holds zeroed-on-reset states for the stateless record codec.
var statePool = sync.Pool{New: func() any { return new(streamState) }}

// Encoder encodes frames for one connection; it keeps per-connection delta
// state, so frames must be decoded in the order they were encoded, by one
// Decoder. A frame that fails to encode leaves the state as it was. Not safe
// for concurrent use.
type Encoder struct {
	st   streamState
	undo undoLog
}

// NewEncoder returns an encoder with fresh per-connection state.
func NewEncoder() *Encoder { return &Encoder{} }

// AppendFrame appends the encoding of f to dst and returns the extended slice.
// On error it returns dst unchanged and an error wrapping ErrMalformed (a value
// that cannot be encoded: NaN, ±Inf, out of range, a bad device index) or
// ErrTooBig (a count, a string or the frame over its bound).
func (e *Encoder) AppendFrame(dst []byte, f Frame) ([]byte, error) {
	start := len(dst)
	var err *codecError
	switch f := f.(type) {
	case *Hello:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|Version, byte(TypeHello))
		dst, err = appendHello(dst, f)
		if err != nil {
			err = err.in("hello")
		}
	case *Welcome:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|Version, byte(TypeWelcome))
		dst = binary.AppendUvarint(dst, uint64(f.Proto))
		dst = binary.AppendUvarint(dst, f.ResumeFrom)
	case *Samples:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|Version, byte(TypeSamples))
		e.undo.begin(&e.st)
		dst, err = e.appendSamples(dst, f)
		if err == nil && len(dst)-start > MaxFrameSize {
			err = errf(ErrTooBig, "samples: frame of %d bytes exceeds %d", len(dst)-start, MaxFrameSize)
		}
		if err != nil {
			e.undo.rollback(&e.st)
		}
	case *Ack:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|Version, byte(TypeAck))
		dst = binary.AppendUvarint(dst, f.Seq)
	case *Close:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|Version, byte(TypeClose))
		dst = binary.AppendUvarint(dst, uint64(f.Code))
		dst, err = appendString(dst, "close: reason", f.Reason)
	case *Status:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|Version, byte(TypeStatus))
		dst, err = appendSources(dst, f.Sources)
		if err != nil {
			err = err.in("status")
		}
	}
	if len(dst) == start && err == nil {
		err = errf(ErrMalformed, "cannot encode frame %T", f)
	}
	if err == nil && len(dst)-start > MaxFrameSize {
		err = errf(ErrTooBig, "frame of %d bytes exceeds %d", len(dst)-start, MaxFrameSize)
	}
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

func (e *Encoder) appendSamples(dst []byte, f *Samples) ([]byte, *codecError) {
	n := len(f.Samples)
	if n == 0 {
		return dst, errf(ErrMalformed, "samples: no records")
	}
	if n > MaxSamples {
		return dst, errf(ErrTooBig, "samples: record count %d exceeds %d", n, MaxSamples)
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := range f.Samples {
		var err *codecError
		if dst, err = appendSample(dst, &f.Samples[i], &e.st, &e.undo); err != nil {
			return dst, err.in("samples: record %d (seq %d)", i, f.Samples[i].Seq)
		}
	}
	return dst, nil
}

// appendSample codes s against st and advances st. u, when not nil, saves
// what it changes so the caller can roll back.
func appendSample(dst []byte, s *fleet.Sample, st *streamState, u *undoLog) ([]byte, *codecError) {
	if len(s.Devices) > MaxDevices {
		return dst, errf(ErrTooBig, "device count %d exceeds %d", len(s.Devices), MaxDevices)
	}
	if s.ProcsSet && len(s.Procs) > MaxProcs {
		return dst, errf(ErrTooBig, "process count %d exceeds %d", len(s.Procs), MaxProcs)
	}
	if len(s.Events) > MaxEvents {
		return dst, errf(ErrTooBig, "event count %d exceeds %d", len(s.Events), MaxEvents)
	}
	var seen uint64
	same := len(s.Devices) == len(st.layout)
	for i := range s.Devices {
		idx := s.Devices[i].Index
		if idx < 0 || idx >= MaxDevices {
			return dst, errf(ErrMalformed, "device index %d outside 0..%d", idx, MaxDevices-1)
		}
		if seen&(1<<idx) != 0 {
			return dst, errf(ErrMalformed, "device index %d repeated", idx)
		}
		seen |= 1 << idx
		if same && st.layout[i] != uint8(idx) {
			same = false
		}
	}
	var flags byte
	if s.Host != nil {
		flags |= flagHost
	}
	if s.ProcsSet {
		flags |= flagProcs
	}
	if len(s.Events) > 0 {
		flags |= flagEvents
	}
	if same {
		flags |= flagSameLayout
	}
	ms := s.Time.UnixMilli()
	dst = binary.AppendVarint(dst, int64(s.Seq-st.seq))
	dst = binary.AppendVarint(dst, ms-st.ms)
	dst = append(dst, flags)
	if !same {
		dst = binary.AppendUvarint(dst, uint64(len(s.Devices)))
		st.layout = st.layout[:0]
		for i := range s.Devices {
			dst = append(dst, byte(s.Devices[i].Index)) // < 64: a one-byte uvarint
			st.layout = append(st.layout, uint8(s.Devices[i].Index))
		}
	}
	var err *codecError
	for i := range s.Devices {
		d := &s.Devices[i]
		if u != nil {
			u.save(st, d.Index)
		}
		p := st.device(d.Index)
		if dst, err = appendValues(dst, d.Present, d.Values[:], &p.present, p.q[:], metricScale[:], allMetrics); err != nil {
			return dst, err.in("device %d", d.Index)
		}
	}
	if s.Host != nil {
		if dst, err = appendValues(dst, s.Host.Present, s.Host.Values[:], &st.host.present, st.host.q[:], hostScale[:], allHostMetrics); err != nil {
			return dst, err.in("host")
		}
	}
	if s.ProcsSet {
		if dst, err = appendProcs(dst, s.Procs); err != nil {
			return dst, err
		}
	}
	if len(s.Events) > 0 {
		if dst, err = appendEvents(dst, s.Events, ms); err != nil {
			return dst, err
		}
	}
	st.seq, st.ms = s.Seq, ms
	return dst, nil
}

// appendValues codes the present values against prevQ and updates the
// previous state only once every value has been validated.
func appendValues(dst []byte, present uint32, values []float64, prevPresent *uint32, prevQ []int64, scales []float64, all uint32) ([]byte, *codecError) {
	if present&^all != 0 {
		return dst, errf(ErrMalformed, "present mask %#x has unknown metric bits", present)
	}
	var q [32]int64
	var changed uint32
	for p := present; p != 0; p &= p - 1 {
		m := bits.TrailingZeros32(p)
		v, ok := steps(values[m], scales[m])
		if !ok {
			return dst, errf(ErrMalformed, "%s value %v is not finite or out of range", metricName(all, m), values[m])
		}
		q[m] = v
		if v != prevQ[m] {
			changed |= 1 << m
		}
	}
	hdr := uint64(changed) << 1
	if present != *prevPresent {
		hdr |= 1
	}
	dst = binary.AppendUvarint(dst, hdr)
	if present != *prevPresent {
		dst = binary.AppendUvarint(dst, uint64(present))
		*prevPresent = present
	}
	for c := changed; c != 0; c &= c - 1 {
		m := bits.TrailingZeros32(c)
		dst = binary.AppendVarint(dst, q[m]-prevQ[m])
		prevQ[m] = q[m]
	}
	return dst, nil
}

func metricName(all uint32, m int) string {
	if all == allHostMetrics {
		return "host metric " + fleet.HostMetric(m).String()
	}
	return fleet.Metric(m).String()
}

func checkDeviceRef(what string, dev int) *codecError {
	if dev < -1 || dev >= MaxDevices {
		return errf(ErrMalformed, "%s device %d outside -1..%d", what, dev, MaxDevices-1)
	}
	return nil
}

func appendProcs(dst []byte, procs []fleet.Process) ([]byte, *codecError) {
	dst = binary.AppendUvarint(dst, uint64(len(procs)))
	for i := range procs {
		p := &procs[i]
		if err := checkDeviceRef("process", p.Device); err != nil {
			return dst, err.in("process %d", i)
		}
		dst = binary.AppendVarint(dst, int64(p.Device))
		dst = binary.AppendUvarint(dst, uint64(p.PID))
		var err *codecError
		str := func(what, s string) {
			if err == nil {
				dst, err = appendString(dst, what, s)
			}
		}
		str("name", p.Name)
		dst = binary.AppendUvarint(dst, p.UsedMemory)
		str("job id", p.Job.ID)
		str("job source", p.Job.Source)
		str("job team", p.Job.Team)
		str("job data class", p.Job.DataClass)
		if err != nil {
			return dst, err.in("process %d", i)
		}
	}
	return dst, nil
}

func appendEvents(dst []byte, events []fleet.Event, recordMs int64) ([]byte, *codecError) {
	dst = binary.AppendUvarint(dst, uint64(len(events)))
	for i := range events {
		ev := &events[i]
		if err := checkDeviceRef("event", ev.Device); err != nil {
			return dst, err.in("event %d", i)
		}
		dst = binary.AppendVarint(dst, ev.Time.UnixMilli()-recordMs)
		var err *codecError
		if dst, err = appendString(dst, "kind", string(ev.Kind)); err != nil {
			return dst, err.in("event %d", i)
		}
		if dst, err = appendString(dst, "severity", string(ev.Severity)); err != nil {
			return dst, err.in("event %d", i)
		}
		dst = binary.AppendVarint(dst, int64(ev.Device))
		dst = binary.AppendVarint(dst, ev.Code)
		if dst, err = appendString(dst, "message", ev.Message); err != nil {
			return dst, err.in("event %d", i)
		}
	}
	return dst, nil
}

func appendHello(dst []byte, h *Hello) ([]byte, *codecError) {
	n := &h.Node
	dst = binary.AppendUvarint(dst, uint64(h.Proto))
	var err *codecError
	str := func(what, s string) {
		if err == nil {
			dst, err = appendString(dst, what, s)
		}
	}
	str("node id", n.ID)
	str("hostname", n.Hostname)
	str("region", n.Region)
	str("site", n.Site)
	str("provider", n.Provider)
	str("jurisdiction", n.Jurisdiction)
	str("lease id", n.Lease.ID)
	dst = binary.AppendVarint(dst, n.Lease.PricePerGPUHour.Micros)
	str("lease currency", n.Lease.PricePerGPUHour.Currency)
	str("lease billing", string(n.Lease.Billing))
	var lf byte
	if n.Lease.Reserved {
		lf |= leaseReserved
	}
	if !n.Lease.Start.IsZero() {
		lf |= leaseStart
	}
	if !n.Lease.End.IsZero() {
		lf |= leaseEnd
	}
	dst = append(dst, lf)
	if lf&leaseStart != 0 {
		dst = binary.AppendVarint(dst, n.Lease.Start.UnixMilli())
	}
	if lf&leaseEnd != 0 {
		dst = binary.AppendVarint(dst, n.Lease.End.UnixMilli())
	}
	if len(n.Labels) > MaxLabels {
		return dst, errf(ErrTooBig, "label count %d exceeds %d", len(n.Labels), MaxLabels)
	}
	dst = binary.AppendUvarint(dst, uint64(len(n.Labels)))
	keys := make([]string, 0, len(n.Labels))
	for k := range n.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		str("label key", k)
		str("label "+k, n.Labels[k])
	}
	str("driver", n.Driver)
	str("cuda", n.CUDA)
	str("boot id", n.BootID)
	str("agent version", n.AgentVersion)
	if err != nil {
		return dst, err
	}
	if len(n.Devices) > MaxDevices {
		return dst, errf(ErrTooBig, "device count %d exceeds %d", len(n.Devices), MaxDevices)
	}
	dst = binary.AppendUvarint(dst, uint64(len(n.Devices)))
	var seen uint64
	for i := range n.Devices {
		d := &n.Devices[i]
		if d.Index < 0 || d.Index >= MaxDevices {
			return dst, errf(ErrMalformed, "device index %d outside 0..%d", d.Index, MaxDevices-1)
		}
		if seen&(1<<d.Index) != 0 {
			return dst, errf(ErrMalformed, "device index %d repeated", d.Index)
		}
		seen |= 1 << d.Index
		dst = binary.AppendUvarint(dst, uint64(d.Index))
		str("device uuid", d.UUID)
		str("device vendor", string(d.Vendor))
		str("device model", d.Model)
		str("device pci bus id", d.PCIBusID)
		if err != nil {
			return dst, err.in("device %d", d.Index)
		}
		dst = binary.AppendUvarint(dst, d.MemoryTotal)
		pl, ok := steps(d.PowerLimit, powerLimitScale)
		if !ok {
			return dst, errf(ErrMalformed, "device %d: power limit %v is not finite or out of range", d.Index, d.PowerLimit)
		}
		dst = binary.AppendVarint(dst, pl)
		var df byte
		if d.MIG {
			df |= deviceMIG
		}
		dst = append(dst, df)
	}
	if n.Lease.GPUs < 0 || n.Lease.GPUs > MaxDevices {
		return dst, errf(ErrMalformed, "lease gpus %d outside 0..%d", n.Lease.GPUs, MaxDevices)
	}
	dst = binary.AppendUvarint(dst, uint64(n.Lease.GPUs))
	return appendSources(dst, n.Sources)
}

const sourceUp = 1 << 0

func appendSources(dst []byte, srcs []fleet.SourceStatus) ([]byte, *codecError) {
	if len(srcs) > MaxSources {
		return dst, errf(ErrTooBig, "source count %d exceeds %d", len(srcs), MaxSources)
	}
	dst = binary.AppendUvarint(dst, uint64(len(srcs)))
	var err *codecError
	for i := range srcs {
		s := &srcs[i]
		if dst, err = appendString(dst, "source name", s.Name); err != nil {
			return dst, err.in("source %d", i)
		}
		var f byte
		if s.Up {
			f |= sourceUp
		}
		dst = append(dst, f)
		if dst, err = appendString(dst, "source reason", s.Reason); err != nil {
			return dst, err.in("source %d", i)
		}
	}
	return dst, nil
}

func decodeSources(r *reader) []fleet.SourceStatus {
	ns := r.count("source count", MaxSources)
	if ns == 0 || r.err != nil {
		return nil
	}
	out := make([]fleet.SourceStatus, ns)
	for i := range out {
		s := &out[i]
		s.Name = r.string("source name")
		f := r.byte()
		s.Reason = r.string("source reason")
		if r.err == nil && f&^sourceUp != 0 {
			r.fail(ErrMalformed, "unknown source flags %#02x", f)
		}
		if r.err != nil {
			r.err.in("source %d", i)
			return nil
		}
		s.Up = f&sourceUp != 0
	}
	return out
}

// Decoder decodes the frames of one connection. Not safe for concurrent use.
//
// Aliasing: a decoded *Samples, *Welcome, *Ack or *Close, and each record's
// Devices and Host, live in the decoder's buffers and are valid until the
// next call to Decode; copy what you keep. A record's Procs and Events and
// every string, and a whole *Hello, are freshly allocated and may be kept.
//
// After a Samples frame fails to decode, the delta state is lost: every later
// Samples frame fails too, and the connection should be closed.
type Decoder struct {
	st      streamState
	broken  *codecError
	samples Samples
	hosts   []fleet.HostSample
	welcome Welcome
	ack     Ack
	close   Close
}

// NewDecoder returns a decoder with fresh per-connection state.
func NewDecoder() *Decoder { return &Decoder{} }

// Decode decodes one frame. Returned frames may alias the decoder's internal
// buffers and are valid until the next call to Decode (see Decoder). Every
// error wraps ErrMalformed, ErrTooBig or ErrVersion.
func (d *Decoder) Decode(b []byte) (Frame, error) {
	if err := checkHeader(b, frameMagic, 2, "frame"); err != nil {
		return nil, err
	}
	r := reader{b: b, off: 2}
	switch t := Type(b[1]); t {
	case TypeHello:
		h := new(Hello)
		decodeHello(&r, h)
		r.end()
		if r.err != nil {
			return nil, r.err.in("hello")
		}
		return h, nil
	case TypeWelcome:
		p := r.uvarint()
		w := Welcome{ResumeFrom: r.uvarint()}
		if p > 0xFFFF {
			r.fail(ErrMalformed, "protocol %d exceeds 65535", p)
		}
		r.end()
		if r.err != nil {
			return nil, r.err.in("welcome")
		}
		w.Proto = uint16(p)
		d.welcome = w
		return &d.welcome, nil
	case TypeSamples:
		if d.broken != nil {
			return nil, &codecError{kind: d.broken.kind, msg: "samples: delta state lost after an earlier error: " + d.broken.msg}
		}
		if err := d.decodeSamples(&r); err != nil {
			d.broken = err
			return nil, err
		}
		return &d.samples, nil
	case TypeAck:
		a := Ack{Seq: r.uvarint()}
		r.end()
		if r.err != nil {
			return nil, r.err.in("ack")
		}
		d.ack = a
		return &d.ack, nil
	case TypeClose:
		code := r.uvarint()
		if code > 0xFFFF {
			r.fail(ErrMalformed, "code %d exceeds 65535", code)
		}
		c := Close{Code: CloseCode(code), Reason: r.string("reason")}
		r.end()
		if r.err != nil {
			return nil, r.err.in("close")
		}
		d.close = c
		return &d.close, nil
	case TypeStatus:
		st := &Status{Sources: decodeSources(&r)}
		r.end()
		if r.err != nil {
			return nil, r.err.in("status")
		}
		return st, nil
	default:
		return nil, errf(ErrMalformed, "unknown frame type %d", t)
	}
}

func checkHeader(b []byte, magic byte, size int, what string) error {
	if len(b) > MaxFrameSize {
		return errf(ErrTooBig, "%s of %d bytes exceeds %d", what, len(b), MaxFrameSize)
	}
	if len(b) < size {
		return errf(ErrMalformed, "%s of %d bytes is shorter than its %d-byte header", what, len(b), size)
	}
	if b[0]&0xF0 != magic {
		return errf(ErrMalformed, "%s starts with %#02x, not a fleettop %s", what, b[0], what)
	}
	if v := b[0] & 0x0F; v != Version {
		return errf(ErrVersion, "%s has protocol version %d, this build speaks %d", what, v, Version)
	}
	return nil
}

func (d *Decoder) decodeSamples(r *reader) *codecError {
	n := r.count("record count", MaxSamples)
	if r.err == nil && n == 0 {
		r.fail(ErrMalformed, "no records")
	}
	if r.err != nil {
		return r.err.in("samples")
	}
	recs := d.samples.Samples[:cap(d.samples.Samples)]
	if len(recs) < n {
		recs = append(recs, make([]fleet.Sample, n-len(recs))...)
	}
	recs = recs[:n]
	if len(d.hosts) < n {
		d.hosts = append(d.hosts, make([]fleet.HostSample, n-len(d.hosts))...)
	}
	d.samples.Samples = recs
	for i := range recs {
		decodeSample(r, &recs[i], &d.st, &d.hosts[i])
		if r.err != nil {
			return r.err.in("samples: record %d", i)
		}
	}
	r.end()
	if r.err != nil {
		return r.err.in("samples")
	}
	return nil
}

// decodeSample decodes one record against st into s, reusing s.Devices'
// capacity; host, when not nil, is where a host sample goes.
func decodeSample(r *reader, s *fleet.Sample, st *streamState, host *fleet.HostSample) {
	seq := st.seq + uint64(r.varint())
	ms := st.ms + r.varint()
	flags := r.byte()
	if r.err != nil {
		return
	}
	if flags&^flagsAll != 0 {
		r.fail(ErrMalformed, "unknown record flags %#02x", flags)
		return
	}
	if flags&flagSameLayout == 0 {
		n := r.count("device count", MaxDevices)
		st.layout = st.layout[:0]
		var seen uint64
		for range n {
			idx, ok := r.deviceIndex(&seen)
			if !ok {
				return
			}
			st.layout = append(st.layout, uint8(idx))
		}
		if r.err != nil {
			return
		}
	}
	if n := len(st.layout); n == 0 {
		s.Devices = nil
	} else {
		s.Devices = slices.Grow(s.Devices[:0], n)[:n]
	}
	for i, idx := range st.layout {
		out := &s.Devices[i]
		out.Index = int(idx)
		p := st.device(int(idx))
		decodeValues(r, &out.Present, out.Values[:], &p.present, p.q[:], metricScale[:], allMetrics)
		if r.err != nil {
			r.err.in("device %d", idx)
			return
		}
	}
	s.Host = nil
	if flags&flagHost != 0 {
		if host == nil {
			host = new(fleet.HostSample)
		}
		decodeValues(r, &host.Present, host.Values[:], &st.host.present, st.host.q[:], hostScale[:], allHostMetrics)
		if r.err != nil {
			r.err.in("host")
			return
		}
		s.Host = host
	}
	s.ProcsSet, s.Procs = false, nil
	if flags&flagProcs != 0 {
		s.ProcsSet = true
		s.Procs = decodeProcs(r)
		if r.err != nil {
			return
		}
	}
	s.Events = nil
	if flags&flagEvents != 0 {
		s.Events = decodeEvents(r, ms)
		if r.err != nil {
			return
		}
	}
	s.Seq = seq
	s.Time = time.UnixMilli(ms).UTC()
	st.seq, st.ms = seq, ms
}

func decodeValues(r *reader, outPresent *uint32, out []float64, prevPresent *uint32, prevQ []int64, scales []float64, all uint32) {
	hdr := r.uvarint()
	present := *prevPresent
	if hdr&1 != 0 {
		p := r.uvarint()
		if r.err != nil {
			return
		}
		if p&^uint64(all) != 0 {
			r.fail(ErrMalformed, "present mask %#x has unknown metric bits", p)
			return
		}
		present = uint32(p)
	}
	changed := hdr >> 1
	if changed&^uint64(present) != 0 {
		r.fail(ErrMalformed, "change mask %#x outside present mask %#x", changed, present)
		return
	}
	for c := uint32(changed); c != 0; c &= c - 1 {
		m := bits.TrailingZeros32(c)
		v := prevQ[m] + r.varint()
		if lim := maxSteps(scales[m]); v > lim || v < -lim {
			r.fail(ErrMalformed, "%s out of range", metricName(all, m))
			return
		}
		prevQ[m] = v
	}
	if r.err != nil {
		return
	}
	*prevPresent = present
	*outPresent = present
	clear(out)
	for p := present; p != 0; p &= p - 1 {
		m := bits.TrailingZeros32(p)
		out[m] = unsteps(prevQ[m], scales[m])
	}
}

func decodeDeviceRef(r *reader, what string) int {
	v := r.varint()
	if r.err == nil && (v < -1 || v >= MaxDevices) {
		r.fail(ErrMalformed, "%s device %d outside -1..%d", what, v, MaxDevices-1)
	}
	return int(v)
}

func decodeProcs(r *reader) []fleet.Process {
	n := r.count("process count", MaxProcs)
	if n == 0 {
		return nil
	}
	procs := make([]fleet.Process, n)
	for i := range procs {
		p := &procs[i]
		p.Device = decodeDeviceRef(r, "process")
		pid := r.uvarint()
		if r.err == nil && pid > 0xFFFFFFFF {
			r.fail(ErrMalformed, "pid %d exceeds 32 bits", pid)
		}
		p.PID = uint32(pid)
		p.Name = r.string("name")
		p.UsedMemory = r.uvarint()
		p.Job.ID = r.string("job id")
		p.Job.Source = r.internedString("job source")
		p.Job.Team = r.string("job team")
		p.Job.DataClass = r.string("job data class")
		if r.err != nil {
			r.err.in("process %d", i)
			return nil
		}
	}
	return procs
}

func decodeEvents(r *reader, recordMs int64) []fleet.Event {
	n := r.count("event count", MaxEvents)
	if r.err == nil && n == 0 {
		r.fail(ErrMalformed, "events flagged but none follow")
	}
	if r.err != nil {
		return nil
	}
	events := make([]fleet.Event, n)
	for i := range events {
		ev := &events[i]
		ev.Time = time.UnixMilli(recordMs + r.varint()).UTC()
		ev.Kind = fleet.EventKind(r.internedString("kind"))
		ev.Severity = fleet.Severity(r.internedString("severity"))
		ev.Device = decodeDeviceRef(r, "event")
		ev.Code = r.varint()
		ev.Message = r.string("message")
		if r.err != nil {
			r.err.in("event %d", i)
			return nil
		}
	}
	return events
}

func decodeHello(r *reader, h *Hello) {
	p := r.uvarint()
	if r.err == nil && p > 0xFFFF {
		r.fail(ErrMalformed, "protocol %d exceeds 65535", p)
	}
	h.Proto = uint16(p)
	n := &h.Node
	n.ID = r.string("node id")
	n.Hostname = r.string("hostname")
	n.Region = r.string("region")
	n.Site = r.string("site")
	n.Provider = r.string("provider")
	n.Jurisdiction = r.string("jurisdiction")
	n.Lease.ID = r.string("lease id")
	n.Lease.PricePerGPUHour.Micros = r.varint()
	n.Lease.PricePerGPUHour.Currency = r.internedString("lease currency")
	n.Lease.Billing = fleet.Billing(r.string("lease billing"))
	lf := r.byte()
	if r.err != nil {
		return
	}
	if lf&^(leaseReserved|leaseStart|leaseEnd) != 0 {
		r.fail(ErrMalformed, "unknown lease flags %#02x", lf)
		return
	}
	n.Lease.Reserved = lf&leaseReserved != 0
	if lf&leaseStart != 0 {
		n.Lease.Start = r.timeMs()
	}
	if lf&leaseEnd != 0 {
		n.Lease.End = r.timeMs()
	}
	if nl := r.count("label count", MaxLabels); nl > 0 {
		n.Labels = make(map[string]string, nl)
		prev := ""
		for i := range nl {
			k := r.string("label key")
			v := r.string("label value")
			if r.err != nil {
				return
			}
			if i > 0 && k <= prev {
				r.fail(ErrMalformed, "label %q out of order or repeated", k)
				return
			}
			n.Labels[k], prev = v, k
		}
	}
	n.Driver = r.string("driver")
	n.CUDA = r.string("cuda")
	n.BootID = r.string("boot id")
	n.AgentVersion = r.string("agent version")
	if nd := r.count("device count", MaxDevices); nd > 0 {
		decodeDevices(r, n, nd)
	}
	if r.err != nil {
		return
	}
	g := r.uvarint()
	if r.err == nil && g > MaxDevices {
		r.fail(ErrMalformed, "lease gpus %d exceeds %d", g, MaxDevices)
	}
	n.Lease.GPUs = int(g)
	n.Sources = decodeSources(r)
}

func decodeDevices(r *reader, n *fleet.Node, nd int) {
	n.Devices = make([]fleet.Device, nd)
	var seen uint64
	for i := range n.Devices {
		d := &n.Devices[i]
		idx, ok := r.deviceIndex(&seen)
		if !ok {
			return
		}
		d.Index = int(idx)
		d.UUID = r.string("device uuid")
		d.Vendor = fleet.Vendor(r.internedString("device vendor"))
		d.Model = r.string("device model")
		d.PCIBusID = r.string("device pci bus id")
		d.MemoryTotal = r.uvarint()
		pl := r.varint()
		df := r.byte()
		if r.err == nil && (pl > maxFracSteps || pl < -maxFracSteps) {
			r.fail(ErrMalformed, "power limit out of range")
		}
		if r.err == nil && df&^deviceMIG != 0 {
			r.fail(ErrMalformed, "unknown device flags %#02x", df)
		}
		if r.err != nil {
			r.err.in("device %d", idx)
			return
		}
		d.PowerLimit = unsteps(pl, powerLimitScale)
		d.MIG = df&deviceMIG != 0
	}
}

// AppendRecord appends a self-contained (stateless) encoding of one sample,
// for the collector's spool. Values are quantised as in frames.
func AppendRecord(dst []byte, s *fleet.Sample) ([]byte, error) {
	st := statePool.Get().(*streamState)
	defer statePool.Put(st)
	st.reset()
	start := len(dst)
	dst = append(dst, recordMagic|Version)
	dst, err := appendSample(dst, s, st, nil)
	if err != nil {
		return dst[:start], err.in("record (seq %d)", s.Seq)
	}
	if len(dst)-start > MaxFrameSize {
		return dst[:start], errf(ErrTooBig, "record (seq %d) of %d bytes exceeds %d", s.Seq, len(dst)-start, MaxFrameSize)
	}
	return dst, nil
}

// DecodeRecord decodes a record written by AppendRecord into s, reusing the
// capacity of s.Devices and *s.Host. Procs, Events and strings are freshly
// allocated. On error s is left partly written.
func DecodeRecord(b []byte, s *fleet.Sample) error {
	if err := checkHeader(b, recordMagic, 1, "record"); err != nil {
		return err
	}
	st := statePool.Get().(*streamState)
	defer statePool.Put(st)
	st.reset()
	r := reader{b: b, off: 1}
	decodeSample(&r, s, st, s.Host)
	r.end()
	if r.err != nil {
		return r.err.in("record")
	}
	return nil
}
