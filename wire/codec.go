package wire

// The binary encoding, protocol version 2 (protocol 1 differences are noted;
// this build decodes both and encodes either, see NewEncoderVersion).
//
// Integers are varints as in encoding/binary: unsigned LEB128 ("uvarint") and
// zig-zag signed ("varint"). A string is a uvarint length (at most
// MaxStringBytes) and its bytes.
//
// A frame is a 2-byte header, 0xF0|version then the frame Type, and a body:
//
//	Hello    uvarint proto; node (helloFields, deviceFields): id, hostname, region, site, provider,
//	         jurisdiction; lease: id, varint micros, currency, billing,
//	         flags byte (1 reserved, 2 start, 4 end), [varint start ms],
//	         [varint end ms]; uvarint label count, (key, value)… in strictly
//	         increasing key order; driver, cuda, boot id, agent version;
//	         uvarint device count, per device: uvarint index, uuid, vendor,
//	         model, pci bus id, uvarint memory total, varint power limit (mW),
//	         flags byte (1 MIG, 2 MIG instance), [MIG instance: uvarint
//	         parent index, uvarint GPU instance id, uvarint compute
//	         instance id, profile]; uvarint contracted GPUs (lease gpus);
//	         sources (below). Protocol 1 ends after the devices.
//	Welcome  uvarint proto, uvarint resume-from
//	Samples  uvarint record count (1..MaxSamples), records
//	Ack      uvarint seq, [varint time ms]    the time only when set
//	Close    uvarint code, string reason
//	Status   sources (protocol 2 only)
//	Clock    varint origin ms, varint received ms, varint sent ms (0: unset)
//
// Sources are a uvarint count (at most MaxSources), then per source: name,
// flags byte (1 up), reason.
//
// A record (one fleet.Sample) is coded against the previous records of the
// same connection (the Encoder/Decoder state; all zero at the start):
//
//	varint  seq − previous seq
//	varint  time − predicted time, in milliseconds since the Unix epoch; the
//	        prediction is the previous time plus the previous interval
//	        (protocol 1: the previous time)
//	byte    flags: 1 host, 2 procs set, 4 events, 8 same device layout
//	        [uvarint device count, uvarint index…]   unless "same layout":
//	                                                the previous record's indices
//	per device, in layout order: values (below)
//	[host values]
//	[uvarint process count, per process: an entry (below); protocol 2: then
//	 uvarint SM utilisation (0 absent, else 1 + steps of 1e-4)]
//	[uvarint event count (≥1), per event: varint time − record time (ms),
//	 kind, severity, varint device, varint code, message]
//
// A process entry is a tag byte: 0, then varint device, uvarint pid, name,
// uvarint used memory, job id, job source, job team, job data class; 1, the
// same process (device, pid, name, job) and used memory as the previous
// list's entry at this position; 2, the same process with the change of used
// memory following (MiB coding, quant.go). Protocol 1 has no tag: every entry
// is written out in full.
//
// Values of a device (or of the host) are coded against the previous values of
// the same device index (or the previous host values):
//
//	uvarint  changed<<1 | presentChanged   changed: bitmask of present metrics
//	                                       whose residual is not zero
//	[uvarint present mask]                 only when presentChanged
//	residual per bit of changed, in metric order: one varint each
//
// A metric's residual is its quantised value minus its prediction, written
// as quant.go's table says: the prediction is the previous value for gauges,
// previous value plus previous increment for counters (delta of delta), and
// for free memory the previous free memory minus the change of used memory,
// and for NVLink rx the previous rx plus the change of NVLink tx (a
// collective sends and receives alike).
// So an unchanged gauge or a counter growing steadily costs nothing, and a
// steady device costs its header bytes plus the residuals of what moved.
// Protocol 1: every prediction is the previous value, every residual a
// varint. Protocol 2 decoders skip residuals of metrics they do not know
// (bits beyond their table), so collectors may add metrics.
//
// A spool record (AppendRecord) is one byte 0xE0|version and a record coded
// against the zero state, so it stands alone.

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
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

const (
	deviceMIG      = 1 << 0
	deviceInstance = 1 << 1
)

// devState is the last quantised values of one device index, and (protocol
// 2) the last increment of each counter (predCounter), which predicts the
// next: d[devSlots[m]] for counter m. Only counters keep an increment: a
// gauge's is never read, and keeping one for every metric doubled a
// decoder's state (488 B a device, 4 KiB an 8-GPU node, instead of 256 B
// and 2 KiB).
type devState struct {
	present uint64 // as sent: may hold metrics this build does not know
	q       [fleet.NumMetrics]int64
	d       [devCounters]int64
}

type hostState struct {
	present uint64
	q       [fleet.NumHostMetrics]int64
	d       [hostCounters]int64
}

// How many counters the device and host tables have (counterSlots checks).
const (
	devCounters  = 1 // energy
	hostCounters = 3 // network rx, tx, uptime
)

// devSlots and hostSlots map a metric to its increment's place in d, -1 for
// a metric that is not a counter.
var (
	devSlots  = counterSlots(metricCodes, devCounters)
	hostSlots = counterSlots(hostCodes, hostCounters)
)

// counterSlots numbers the counters of table codes, which must be n.
func counterSlots(codes []metricCoding, n int) []int8 {
	slots := make([]int8, len(codes))
	k := 0
	for m, c := range codes {
		slots[m] = -1
		if c.pred == predCounter {
			slots[m] = int8(k)
			k++
		}
	}
	if k != n {
		panic("wire: a table's counters and its state's increments differ: " + strconv.Itoa(k) + " != " + strconv.Itoa(n))
	}
	return slots
}

// streamState is the per-connection delta state shared in shape by Encoder
// and Decoder. dev grows only to the highest device index seen, so a decoder
// for an 8-GPU node holds about 2 KiB.
type streamState struct {
	v      uint8 // protocol version of the stream
	seq    uint64
	ms     int64
	dms    int64   // protocol 2: the previous record's interval, predicting the next
	layout []uint8 // device indices of the previous record, in order
	known  uint64  // bit i: dev[i] holds state; otherwise it reads as zero
	dev    []devState
	host   hostState
	procs  []fleet.Process // protocol 2: the last process list sent
	// procOut is where a decoded list is handed out: the caller may repair
	// it (wire.SanitizeSampleAfter) without touching procs, which the next list
	// is coded against.
	procOut []fleet.Process
}

func (st *streamState) reset(v uint8) {
	st.v = v
	st.seq, st.ms, st.dms, st.known = 0, 0, 0, 0
	st.layout = st.layout[:0]
	st.host = hostState{}
	st.procs = st.procs[:0]
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
	ms, dms int64
	known   uint64
	host    hostState
	layout  []uint8
	procs   []fleet.Process
	touched uint64
	devs    []undoDev
}

type undoDev struct {
	idx int
	s   devState
}

func (u *undoLog) begin(st *streamState) {
	u.seq, u.ms, u.dms, u.known, u.host = st.seq, st.ms, st.dms, st.known, st.host
	u.layout = append(u.layout[:0], st.layout...)
	u.procs = append(u.procs[:0], st.procs...)
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
	st.seq, st.ms, st.dms, st.known, st.host = u.seq, u.ms, u.dms, u.known, u.host
	st.layout = append(st.layout[:0], u.layout...)
	st.procs = append(st.procs[:0], u.procs...)
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

// NewEncoder returns an encoder with fresh per-connection state that speaks
// this build's protocol (Version).
func NewEncoder() *Encoder { return &Encoder{st: streamState{v: Version}} }

// NewEncoderVersion returns an encoder that speaks protocol v (MinVersion ..
// Version), for a peer that announced an older protocol.
func NewEncoderVersion(v uint16) (*Encoder, error) {
	if v < MinVersion || v > Version {
		return nil, errf(ErrVersion, "protocol %d not supported (this build speaks %d to %d)", v, MinVersion, Version)
	}
	return &Encoder{st: streamState{v: uint8(v)}}, nil
}

// Version returns the protocol the encoder speaks.
func (e *Encoder) Version() uint16 { return uint16(e.st.v) }

// AppendFrame appends the encoding of f to dst and returns the extended slice.
// On error it returns dst unchanged and an error wrapping ErrMalformed (a value
// that cannot be encoded: NaN, ±Inf, out of range, a bad device index) or
// ErrTooBig (a count, a string or the frame over its bound).
func (e *Encoder) AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if e.st.v == 0 {
		e.st.v = Version // the zero Encoder
	}
	start := len(dst)
	var err *codecError
	switch f := f.(type) {
	case *Hello:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|e.st.v, byte(TypeHello))
		dst, err = appendHello(dst, f, e.st.v)
		if err != nil {
			err = err.in("hello")
		}
	case *Welcome:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|e.st.v, byte(TypeWelcome))
		dst = binary.AppendUvarint(dst, uint64(f.Proto))
		dst = binary.AppendUvarint(dst, f.ResumeFrom)
	case *Samples:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|e.st.v, byte(TypeSamples))
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
		dst = append(dst, frameMagic|e.st.v, byte(TypeAck))
		dst = binary.AppendUvarint(dst, f.Seq)
		if !f.Time.IsZero() {
			dst = binary.AppendVarint(dst, f.Time.UnixMilli())
		}
	case *Clock:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|e.st.v, byte(TypeClock))
		dst = binary.AppendVarint(dst, clockMs(f.Origin))
		dst = binary.AppendVarint(dst, clockMs(f.Received))
		dst = binary.AppendVarint(dst, clockMs(f.Sent))
	case *Close:
		if f == nil {
			break
		}
		dst = append(dst, frameMagic|e.st.v, byte(TypeClose))
		dst = binary.AppendUvarint(dst, uint64(f.Code))
		dst, err = appendString(dst, "close: reason", f.Reason)
	case *Status:
		if f == nil {
			break
		}
		if e.st.v < 2 {
			break // protocol 1 has no Status frame
		}
		dst = append(dst, frameMagic|e.st.v, byte(TypeStatus))
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
	dst = binary.AppendVarint(dst, ms-st.predictMs())
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
	devCodes, hostCodes := codings(st.v)
	for i := range s.Devices {
		d := &s.Devices[i]
		if u != nil {
			u.save(st, d.Index)
		}
		p := st.device(d.Index)
		vs := values{&p.present, p.q[:], p.d[:], devSlots}
		if dst, err = appendValues(dst, st.v, d.Present, d.Values[:], vs, devCodes, false); err != nil {
			return dst, err.in("device %d", d.Index)
		}
	}
	if s.Host != nil {
		vs := values{&st.host.present, st.host.q[:], st.host.d[:], hostSlots}
		if dst, err = appendValues(dst, st.v, s.Host.Present, s.Host.Values[:], vs, hostCodes, true); err != nil {
			return dst, err.in("host")
		}
	}
	if s.ProcsSet {
		if st.v == 1 {
			dst, err = appendProcs(dst, s.Procs)
		} else {
			dst, err = appendProcsV2(dst, s.Procs, st)
		}
		if err != nil {
			return dst, err
		}
	}
	if len(s.Events) > 0 {
		if dst, err = appendEvents(dst, s.Events, ms); err != nil {
			return dst, err
		}
	}
	st.advance(s.Seq, ms)
	return dst, nil
}

// predictMs is the time a record is expected at: protocol 2 predicts the
// previous interval again (delta of delta), protocol 1 the previous time.
func (st *streamState) predictMs() int64 {
	if st.v == 1 {
		return st.ms
	}
	return st.ms + st.dms
}

func (st *streamState) advance(seq uint64, ms int64) {
	if st.v > 1 && st.ms != 0 {
		st.dms = ms - st.ms
	}
	st.seq, st.ms = seq, ms
}

// values is where one device's (or the host's) previous values live: q by
// metric, d (the counters' last increments) by slot[metric].
type values struct {
	present *uint64
	q, d    []int64
	slot    []int8
}

// step records metric m's new quantised value x, and its increment when m is
// a counter.
func (prev values) step(m int, x int64) {
	if k := prev.slot[m]; k >= 0 {
		prev.d[k] = x - prev.q[m]
	}
	prev.q[m] = x
}

// limit is the bound on a quantised value of the given scale in protocol v.
func limit(v uint8, scale float64) int64 {
	if scale != 1 {
		return maxFracSteps
	}
	if v == 1 {
		return maxWholeStepsV1
	}
	return maxWholeSteps
}

// predict returns the protocol-2 prediction of metric m, given the values of
// this record decoded so far (q, for metrics before m) and the previous ones.
func predict(c *metricCoding, m int, present uint64, q []int64, prev values, lim int64) int64 {
	p := prev.q[m]
	switch c.pred {
	case predCounter:
		p += prev.d[prev.slot[m]]
	case predFree:
		u := int(fleet.MetricMemUsed)
		if u < m && present&(1<<u) != 0 && *prev.present&(1<<u) != 0 {
			p -= q[u] - prev.q[u]
		}
	case predTwin:
		if t := m - 1; t >= 0 && present&(1<<t) != 0 && *prev.present&(1<<t) != 0 {
			p += q[t] - prev.q[t]
		}
	default:
		return p
	}
	if p > lim || p < -lim {
		return prev.q[m]
	}
	return p
}

// appendResidual writes r as coding c says: always one varint.
func appendResidual(dst []byte, r int64, code uint8) []byte {
	switch code {
	case codeMiB, codeKiB:
		k := uint(20)
		if code == codeKiB {
			k = 10
		}
		if r&(1<<k-1) == 0 {
			return binary.AppendUvarint(dst, zigzag(r>>k)<<1)
		}
		return binary.AppendUvarint(dst, zigzag(r)<<1|1)
	case codeDecimal:
		e := uint64(0)
		for e < 3 && r%10 == 0 {
			r /= 10
			e++
		}
		return binary.AppendUvarint(dst, zigzag(r)<<2|e)
	case codeRaw:
		return binary.AppendUvarint(dst, uint64(r))
	}
	return binary.AppendVarint(dst, r)
}

// readResidual is the inverse of appendResidual; false when the residual
// cannot be what an encoder wrote.
func readResidual(r *reader, code uint8) (int64, bool) {
	switch code {
	case codeMiB, codeKiB:
		k := uint(20)
		if code == codeKiB {
			k = 10
		}
		u := r.uvarint()
		z := unzigzag(u >> 1)
		if u&1 != 0 {
			return z, true
		}
		if z > 1<<(62-k) || z < -1<<(62-k) {
			return 0, false
		}
		return z << k, true
	case codeDecimal:
		u := r.uvarint()
		z := unzigzag(u >> 2)
		for e := u & 3; e > 0; e-- {
			if z > 1<<59 || z < -1<<59 {
				return 0, false
			}
			z *= 10
		}
		return z, true
	case codeRaw:
		return int64(r.uvarint()), true
	}
	return r.varint(), true
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// appendValues codes the present values against the previous ones and
// updates them only once every value has been validated. In protocol 2 a
// metric's "changed" bit says its residual against the prediction is not
// zero; in protocol 1 the prediction is always the previous value.
func appendValues(dst []byte, v uint8, present uint32, vals []float64, prev values, codes []metricCoding, host bool) ([]byte, *codecError) {
	all := uint32(1)<<len(codes) - 1
	if present&^all != 0 {
		return dst, errf(ErrMalformed, "present mask %#x has unknown metric bits", present)
	}
	var q, res [64]int64
	var changed uint64
	p64 := uint64(present)
	for p := present; p != 0; p &= p - 1 {
		m := bits.TrailingZeros32(p)
		c := &codes[m]
		if c.code == codeRaw {
			x := vals[m]
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return dst, errf(ErrMalformed, "%s value %v is not finite", metricName(host, m), x)
			}
			q[m] = int64(math.Float64bits(x))
			res[m] = q[m] ^ prev.q[m]
		} else {
			lim := limit(v, c.scale)
			x, ok := steps(vals[m], c.scale, lim)
			if !ok {
				return dst, errf(ErrMalformed, "%s value %v is not finite or out of range", metricName(host, m), vals[m])
			}
			q[m] = x
			if v == 1 {
				res[m] = x - prev.q[m]
			} else {
				res[m] = x - predict(c, m, p64, q[:], prev, lim)
			}
		}
		if res[m] != 0 {
			changed |= 1 << m
		}
	}
	hdr := changed << 1
	if p64 != *prev.present {
		hdr |= 1
	}
	dst = binary.AppendUvarint(dst, hdr)
	if p64 != *prev.present {
		dst = binary.AppendUvarint(dst, p64)
		*prev.present = p64
	}
	for c := changed; c != 0; c &= c - 1 {
		m := bits.TrailingZeros64(c)
		dst = appendResidual(dst, res[m], codes[m].code)
	}
	for p := present; p != 0; p &= p - 1 {
		m := bits.TrailingZeros32(p)
		prev.step(m, q[m])
	}
	return dst, nil
}

func metricName(host bool, m int) string {
	if host {
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
		var err *codecError
		if dst, err = appendProc(dst, &procs[i]); err != nil {
			return dst, err.in("process %d", i)
		}
	}
	return dst, nil
}

// appendProcUtil appends a process's SM utilisation (protocol 2, after each
// entry whatever its tag): uvarint 0 absent, else 1 + steps of 1e-4.
func appendProcUtil(dst []byte, p *fleet.Process) ([]byte, *codecError) {
	var u uint64
	if v, ok := p.Util.Get(); ok {
		q, ok := steps(v, procUtilScale, maxFracSteps)
		if !ok || q < 0 || q > procUtilScale {
			return dst, errf(ErrMalformed, "utilisation %v outside 0..1", v)
		}
		u = uint64(q) + 1
	}
	return binary.AppendUvarint(dst, u), nil
}

func decodeProcUtil(r *reader, p *fleet.Process) {
	p.Util = fleet.OptFloat{}
	if u := r.uvarint(); r.err == nil && u > 0 {
		if u > procUtilScale+1 {
			r.fail(ErrMalformed, "utilisation above 1")
			return
		}
		p.Util = fleet.Some(unsteps(int64(u-1), procUtilScale))
	}
}

func appendProc(dst []byte, p *fleet.Process) ([]byte, *codecError) {
	if err := checkDeviceRef("process", p.Device); err != nil {
		return dst, err
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
	return dst, err
}

// Protocol 2 codes a process list against the previous one of the stream:
// per entry a uvarint tag, 0 for an entry written out in full (as in protocol
// 1), 1 for the same process (device, pid, name, job) as the previous list's
// entry at that position with the same used memory, 2 for that with the
// change of used memory following (MiB coding, see quant.go).
const (
	procFull = iota
	procSame
	procMem
)

// procMemOf is the used memory of entry i of the previous list (0 past its end).
func procMemOf(prev []fleet.Process, i int) uint64 {
	if i < len(prev) {
		return prev[i].UsedMemory
	}
	return 0
}

func sameProc(a, b *fleet.Process) bool {
	return a.Device == b.Device && a.PID == b.PID && a.Name == b.Name && a.Job == b.Job
}

func appendProcsV2(dst []byte, procs []fleet.Process, st *streamState) ([]byte, *codecError) {
	dst = binary.AppendUvarint(dst, uint64(len(procs)))
	for i := range procs {
		p := &procs[i]
		var err *codecError
		switch r := int64(p.UsedMemory - procMemOf(st.procs, i)); {
		case i < len(st.procs) && sameProc(p, &st.procs[i]) && r == 0:
			dst = append(dst, procSame)
		case i < len(st.procs) && sameProc(p, &st.procs[i]) && (r&(1<<20-1) == 0 || zigzag(r) < 1<<63):
			dst = append(dst, procMem)
			dst = appendResidual(dst, r, codeMiB)
		default:
			dst = append(dst, procFull)
			dst, err = appendProc(dst, p)
		}
		if err == nil {
			dst, err = appendProcUtil(dst, p)
		}
		if err != nil {
			return dst, err.in("process %d", i)
		}
	}
	st.procs = append(st.procs[:0], procs...)
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
// Aliasing: a decoded *Samples, *Welcome, *Ack, *Close or *Clock, and each record's
// Devices and Host, live in the decoder's buffers and are valid until the
// next call to Decode; copy what you keep. So does the last record's Procs in
// protocol 2 (the list the next one is coded against). Other records' Procs
// and Events, and a whole *Hello, are freshly allocated and may be kept; so
// may every string, which is never an alias of the frame (those many nodes
// hold alike, such as regions, models and teams, are one string for all
// connections).
//
// After a Samples frame fails to decode, the delta state is lost: every later
// Samples frame fails too, and the connection should be closed.
type Decoder struct {
	st      streamState
	broken  *codecError
	samples Samples
	hosts   []fleet.HostSample
	// Boxes of the pooled buffers the last frame's first record uses, kept
	// to put them back without allocating (see Release).
	devBox  *[]fleet.DeviceSample
	procBox *[]fleet.Process
	welcome Welcome
	ack     Ack
	close   Close
	clock   Clock
}

// NewDecoder returns a decoder with fresh per-connection state.
func NewDecoder() *Decoder { return &Decoder{} }

// Buffers of decoded records between a Decoder's Release and its next
// Decode, shared by every Decoder: an aggregator's collector connections
// decode a frame a second each and keep nothing per device in between.
var (
	devBufs  sync.Pool // *[]fleet.DeviceSample
	procBufs sync.Pool // *[]fleet.Process
)

// Release gives the buffers of the last decoded Samples frame (its first
// record's Devices and Procs) to a pool shared by every Decoder; nothing of
// that frame may be used after. Without Release a Decoder keeps them for
// the next frame. An aggregator calls it once a frame is applied: at 1,250
// collectors the buffers held between frames were about 3 MB.
func (d *Decoder) Release() {
	recs := d.samples.Samples
	if len(recs) == 0 {
		return
	}
	if b := recs[0].Devices; cap(b) > 0 {
		box := d.devBox
		if box == nil {
			box = new([]fleet.DeviceSample)
		}
		*box = b[:0]
		devBufs.Put(box)
	}
	if b := d.st.procOut; cap(b) > 0 {
		box := d.procBox
		if box == nil {
			box = new([]fleet.Process)
		}
		*box = b[:0]
		procBufs.Put(box)
	}
	d.devBox, d.procBox, d.st.procOut = nil, nil, nil
	clear(recs)
}

// Decode decodes one frame. Returned frames may alias the decoder's internal
// buffers and are valid until the next call to Decode (see Decoder). Every
// error wraps ErrMalformed, ErrTooBig or ErrVersion.
func (d *Decoder) Decode(b []byte) (Frame, error) {
	if err := checkHeader(b, frameMagic, 2, "frame"); err != nil {
		return nil, err
	}
	r := reader{b: b, off: 2}
	v := b[0] & 0x0F
	switch t := Type(b[1]); t {
	case TypeHello:
		if d.st.v == 0 {
			d.st.v = v // the stream's protocol; Samples frames must keep to it
		}
		h := new(Hello)
		// A reader of its own: the Hello's field table calls through
		// function values, through which the reader escapes, and r would
		// then be allocated for every frame, not only the rare Hello.
		hr := r
		decodeHello(&hr, h, v)
		if err := hr.done("hello"); err != nil {
			return nil, err
		}
		return h, nil
	case TypeWelcome:
		p := r.uvarint()
		w := Welcome{ResumeFrom: r.uvarint()}
		if p > 0xFFFF {
			r.fail(ErrMalformed, "protocol %d exceeds 65535", p)
		}
		if err := r.done("welcome"); err != nil {
			return nil, err
		}
		w.Proto = uint16(p)
		d.welcome = w
		return &d.welcome, nil
	case TypeSamples:
		if d.broken != nil {
			return nil, &codecError{kind: d.broken.kind, msg: "samples: delta state lost after an earlier error: " + d.broken.msg}
		}
		if d.st.v == 0 {
			d.st.v = v
		}
		if v != d.st.v {
			return nil, errf(ErrMalformed, "samples: protocol %d frame on a protocol %d stream", v, d.st.v)
		}
		if err := d.decodeSamples(&r); err != nil {
			d.broken = err
			return nil, err
		}
		return &d.samples, nil
	case TypeAck:
		a := Ack{Seq: r.uvarint()}
		if r.err == nil && r.remaining() > 0 {
			a.Time = clockTime(r.varint())
		}
		if err := r.done("ack"); err != nil {
			return nil, err
		}
		d.ack = a
		return &d.ack, nil
	case TypeClose:
		code := r.uvarint()
		if code > 0xFFFF {
			r.fail(ErrMalformed, "code %d exceeds 65535", code)
		}
		c := Close{Code: CloseCode(code), Reason: r.string("reason")}
		if err := r.done("close"); err != nil {
			return nil, err
		}
		d.close = c
		return &d.close, nil
	case TypeStatus:
		st := &Status{Sources: decodeSources(&r)}
		if err := r.done("status"); err != nil {
			return nil, err
		}
		return st, nil
	case TypeClock:
		c := Clock{Origin: clockTime(r.varint()), Received: clockTime(r.varint()), Sent: clockTime(r.varint())}
		if err := r.done("clock"); err != nil {
			return nil, err
		}
		d.clock = c
		return &d.clock, nil
	default:
		return nil, errf(ErrMalformed, "unknown frame type %d", t)
	}
}

// clockMs codes a Clock timestamp: milliseconds since the epoch, 0 when unset.
func clockMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func clockTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
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
	if v := b[0] & 0x0F; v < MinVersion || v > Version {
		return errf(ErrVersion, "%s has protocol version %d, this build speaks %d to %d", what, v, MinVersion, Version)
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
	// Records beyond this frame's give their device buffers back: a frame
	// of several records (the lead-in after a connect, a resent backlog)
	// is rare, and at 12,500 collectors idle buffers of a 2 KiB a record
	// would be 25 MiB of heap for nothing.
	clear(recs[n:])
	recs = recs[:n:n]
	if len(d.hosts) < n {
		d.hosts = append(d.hosts, make([]fleet.HostSample, n-len(d.hosts))...)
	}
	d.samples.Samples = recs
	if cap(recs[0].Devices) == 0 && d.devBox == nil {
		if b, ok := devBufs.Get().(*[]fleet.DeviceSample); ok {
			recs[0].Devices, d.devBox = *b, b
		}
	}
	if d.st.procOut == nil && d.procBox == nil {
		if b, ok := procBufs.Get().(*[]fleet.Process); ok {
			d.st.procOut, d.procBox = *b, b
		}
	}
	for i := range recs {
		decodeSample(r, &recs[i], &d.st, &d.hosts[i])
		if r.err != nil {
			return r.err.in("samples: record %d", i)
		}
		if i < n-1 && d.st.v > 1 && recs[i].Procs != nil {
			// The next record's list is decoded where this one lies.
			recs[i].Procs = slices.Clone(recs[i].Procs)
		}
	}
	return r.done("samples")
}

// decodeSample decodes one record against st into s, reusing s.Devices'
// capacity; host, when not nil, is where a host sample goes.
func decodeSample(r *reader, s *fleet.Sample, st *streamState, host *fleet.HostSample) {
	seq := st.seq + uint64(r.varint())
	ms := st.predictMs() + r.varint()
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
	devCodes, hostCodes := codings(st.v)
	for i, idx := range st.layout {
		out := &s.Devices[i]
		out.Index = int(idx)
		p := st.device(int(idx))
		decodeValues(r, st.v, &out.Present, out.Values[:], values{&p.present, p.q[:], p.d[:], devSlots}, devCodes, false)
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
		decodeValues(r, st.v, &host.Present, host.Values[:], values{&st.host.present, st.host.q[:], st.host.d[:], hostSlots}, hostCodes, true)
		if r.err != nil {
			r.err.in("host")
			return
		}
		s.Host = host
	}
	s.ProcsSet, s.Procs = false, nil
	if flags&flagProcs != 0 {
		s.ProcsSet = true
		if st.v == 1 {
			s.Procs = decodeProcs(r)
		} else {
			if procs := decodeProcsV2(r, st); procs != nil {
				st.procOut = append(st.procOut[:0], procs...)
				s.Procs = st.procOut
			}
		}
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
	st.advance(seq, ms)
}

func decodeValues(r *reader, v uint8, outPresent *uint32, out []float64, prev values, codes []metricCoding, host bool) {
	hdr := r.uvarint()
	present := *prev.present
	if hdr&1 != 0 {
		p := r.uvarint()
		if r.err != nil {
			return
		}
		// Protocol 2 carries metrics this build does not know (a newer
		// collector's) and skips them; protocol 1 knew them all.
		if known := uint64(1)<<len(codes) - 1; (v == 1 && p&^known != 0) || p>>63 != 0 {
			r.fail(ErrMalformed, "present mask %#x has unknown metric bits", p)
			return
		}
		present = p
	}
	changed := hdr >> 1
	if changed&^present != 0 {
		r.fail(ErrMalformed, "change mask %#x outside present mask %#x", changed, present)
		return
	}
	var q [64]int64
	for p := present; p != 0; p &= p - 1 {
		m := bits.TrailingZeros64(p)
		bit := uint64(1) << m
		if m >= len(codes) {
			if changed&bit != 0 {
				r.uvarint() // a metric this build does not know: every residual is one varint
			}
			continue
		}
		c := &codes[m]
		var res int64
		if changed&bit != 0 {
			var ok bool
			if res, ok = readResidual(r, c.code); !ok {
				r.fail(ErrMalformed, "%s residual out of range", metricName(host, m))
			}
			if r.err != nil {
				return
			}
		}
		if c.code == codeRaw {
			q[m] = prev.q[m] ^ res
			if f := math.Float64frombits(uint64(q[m])); math.IsNaN(f) || math.IsInf(f, 0) {
				r.fail(ErrMalformed, "%s is not finite", metricName(host, m))
				return
			}
			continue
		}
		lim := limit(v, c.scale)
		pred := prev.q[m]
		if v > 1 {
			pred = predict(c, m, present, q[:], prev, lim)
		}
		x := pred + res
		if x > lim || x < -lim || (res > 0 && x < pred) || (res < 0 && x > pred) {
			r.fail(ErrMalformed, "%s out of range", metricName(host, m))
			return
		}
		q[m] = x
	}
	*prev.present = present
	*outPresent = uint32(present & (uint64(1)<<len(codes) - 1))
	clear(out)
	for p := *outPresent; p != 0; p &= p - 1 {
		m := bits.TrailingZeros32(p)
		prev.step(m, q[m])
		out[m] = unsteps(q[m], codes[m].scale)
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
		decodeProc(r, &procs[i])
		if r.err != nil {
			r.err.in("process %d", i)
			return nil
		}
	}
	return procs
}

func decodeProc(r *reader, p *fleet.Process) {
	p.Device = decodeDeviceRef(r, "process")
	pid := r.uvarint()
	if r.err == nil && pid > 0xFFFFFFFF {
		r.fail(ErrMalformed, "pid %d exceeds 32 bits", pid)
	}
	p.PID = uint32(pid)
	p.Name = r.sharedString("name")
	p.UsedMemory = r.uvarint()
	p.Job.ID = r.string("job id")
	p.Job.Source = r.internedString("job source")
	p.Job.Team = r.sharedString("job team")
	p.Job.DataClass = r.sharedString("job data class")
}

// decodeProcsV2 decodes a protocol-2 process list against st.procs (see
// appendProcsV2), in place: the result is st.procs itself, not to be changed
// by the caller. A node sends a list a second, mostly the previous one with
// other memory figures; a fresh slice each time was a quarter of the
// aggregator's allocations. Strings are shared with the previous list. On
// error st.procs is left partly written; the stream's state is lost then
// anyway.
func decodeProcsV2(r *reader, st *streamState) []fleet.Process {
	n := r.count("process count", MaxProcs)
	if r.err != nil {
		return nil
	}
	prev := len(st.procs)
	if n > prev {
		st.procs = slices.Grow(st.procs, n-prev)
	}
	st.procs = st.procs[:n]
	if n == 0 {
		return nil
	}
	procs := st.procs
	for i := range procs {
		p := &procs[i] // entry i of the previous list, read before it is overwritten
		switch tag := r.byte(); tag {
		case procFull:
			*p = fleet.Process{}
			decodeProc(r, p)
		case procSame, procMem:
			if i >= prev {
				r.fail(ErrMalformed, "refers to a previous process that was not sent")
				break
			}
			if tag == procMem {
				d, ok := readResidual(r, codeMiB)
				if !ok {
					r.fail(ErrMalformed, "used memory change out of range")
				}
				p.UsedMemory += uint64(d)
			}
		default:
			r.fail(ErrMalformed, "unknown process tag %d", tag)
		}
		decodeProcUtil(r, p)
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

// AppendRecord appends a self-contained (stateless) encoding of one sample,
// for the collector's spool. Values are quantised as in frames.
func AppendRecord(dst []byte, s *fleet.Sample) ([]byte, error) {
	st := statePool.Get().(*streamState)
	defer statePool.Put(st)
	st.reset(Version)
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
	st.reset(b[0] & 0x0F) // a spool written by an older collector still decodes
	r := reader{b: b, off: 1}
	decodeSample(&r, s, st, s.Host)
	if err := r.done("record"); err != nil {
		return err
	}
	if s.Procs != nil && st.v > 1 {
		s.Procs = slices.Clone(s.Procs) // st goes back to the pool
	}
	return nil
}
