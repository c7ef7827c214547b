package wire

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// codecError is every error the codec returns: a sentinel (ErrMalformed,
// ErrTooBig, ErrVersion) plus a message that says where and what.
type codecError struct {
	kind error
	msg  string
}

func (e *codecError) Error() string { return e.kind.Error() + ": " + e.msg }
func (e *codecError) Unwrap() error { return e.kind }

func errf(kind error, format string, a ...any) *codecError {
	return &codecError{kind: kind, msg: fmt.Sprintf(format, a...)}
}

// in prefixes the error's message with where it happened (error path only).
func (e *codecError) in(format string, a ...any) *codecError {
	e.msg = fmt.Sprintf(format, a...) + ": " + e.msg
	return e
}

// reader reads the primitives of the encoding from b. After the first error
// every read returns zero values, so decoders check err once per element
// rather than after every read; nothing a reader returns after an error is
// used to size an allocation.
type reader struct {
	b   []byte
	off int
	err *codecError
}

func (r *reader) fail(kind error, format string, a ...any) {
	if r.err == nil {
		r.err = errf(kind, format, a...)
	}
	r.off = len(r.b)
}

func (r *reader) truncated() {
	r.fail(ErrMalformed, "truncated at byte %d", len(r.b))
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) byte() byte {
	if r.off >= len(r.b) {
		r.truncated()
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// deviceIndex reads a device index, checking it is in range and not yet in
// seen (a bit per index), and records it there; false after an error.
func (r *reader) deviceIndex(seen *uint64) (uint64, bool) {
	idx := r.uvarint()
	if r.err != nil {
		return 0, false
	}
	if idx >= MaxDevices {
		r.fail(ErrMalformed, "device index %d outside 0..%d", idx, MaxDevices-1)
		return 0, false
	}
	if *seen&(1<<idx) != 0 {
		r.fail(ErrMalformed, "device index %d repeated", idx)
		return 0, false
	}
	*seen |= 1 << idx
	return idx, true
}

func (r *reader) uvarint() uint64 {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c < 0x80 {
			r.off++
			return uint64(c)
		}
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.truncated()
		} else {
			r.fail(ErrMalformed, "varint at byte %d overflows 64 bits", r.off)
		}
		return 0
	}
	r.off += n
	return v
}

// varint reads a zig-zag signed varint.
func (r *reader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// count reads an element count bounded by max and by the bytes left (every
// element takes at least one byte), so no allocation can exceed what the
// input could describe.
func (r *reader) count(what string, max int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(max) {
		r.fail(ErrTooBig, "%s %d exceeds %d", what, n, max)
		return 0
	}
	if n > uint64(r.remaining()) {
		r.fail(ErrMalformed, "%s %d exceeds the %d bytes left", what, n, r.remaining())
		return 0
	}
	return int(n)
}

// bytes reads a length-prefixed byte string (at most MaxStringBytes); the
// result aliases the input.
func (r *reader) bytes(what string) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > MaxStringBytes {
		r.fail(ErrTooBig, "%s length %d exceeds %d", what, n, MaxStringBytes)
		return nil
	}
	if n > uint64(r.remaining()) {
		r.truncated()
		return nil
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b
}

func (r *reader) string(what string) string {
	b := r.bytes(what)
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

// internedString is string for fields drawn from a small vocabulary (event
// kinds, severities, vendors, currencies): the common values cost no
// allocation.
func (r *reader) internedString(what string) string {
	b := r.bytes(what)
	switch string(b) { // no allocation: the compiler compares in place
	case "":
		return ""
	case "nvidia":
		return "nvidia"
	case "ascend":
		return "ascend"
	case "xid":
		return "xid"
	case "ecc":
		return "ecc"
	case "thermal":
		return "thermal"
	case "health":
		return "health"
	case "offline":
		return "offline"
	case "idle":
		return "idle"
	case "residency":
		return "residency"
	case "budget":
		return "budget"
	case "info":
		return "info"
	case "warning":
		return "warning"
	case "critical":
		return "critical"
	case "USD":
		return "USD"
	case "SGD":
		return "SGD"
	case "MYR":
		return "MYR"
	case "EUR":
		return "EUR"
	case "env":
		return "env"
	case "slurm":
		return "slurm"
	case "k8s":
		return "k8s"
	}
	return string(b)
}

// sharedString is string for fields that many nodes hold alike (region,
// provider, jurisdiction, device model, team): every node gets the same
// string. The aggregator keys maps by them each second, node by node (cost
// lines, region rows, residency rules); with a copy per node each lookup
// hashed bytes of its own, cold, and those misses were a tenth of the
// fleet aggregates' time. Hellos are rare, and a process list is coded
// against the previous one (its strings are read only for a process that
// is new: a list changes nearly every sample, its names seldom), so a
// mutex serves.
func (r *reader) sharedString(what string) string {
	b := r.bytes(what)
	if len(b) == 0 {
		return ""
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if s, ok := shared.m[string(b)]; ok { // no allocation: the compiler looks up in place
		return s
	}
	s := string(b)
	if len(shared.m) < maxShared {
		shared.m[s] = s
	}
	return s
}

// maxShared bounds the shared strings: a node that sends a new value in
// every Hello fills the table, after which new values are plain copies
// (slower to key maps by, never wrong).
const maxShared = 1 << 14

// shared is the strings sharedString has met. Not unique.Make: its values
// are reclaimed with their last Handle, and the strings are kept, not the
// handles, so nodes connecting a GC cycle apart would get copies of their
// own again.
var shared = struct {
	mu sync.Mutex
	m  map[string]string
}{m: map[string]string{}}

// end checks that the whole input was consumed.
func (r *reader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail(ErrMalformed, "%d trailing bytes", len(r.b)-r.off)
	}
}

// done ends a frame or record named what: nil when it decoded whole, else
// the first error, in what.
func (r *reader) done(what string) *codecError {
	r.end()
	if r.err != nil {
		return r.err.in("%s", what)
	}
	return nil
}

// time reads an optional absolute time: a flag bit set by the caller says
// whether it is there; the value is zig-zag milliseconds since the epoch.
func (r *reader) timeMs() time.Time {
	return time.UnixMilli(r.varint()).UTC()
}

func appendString(dst []byte, what, s string) ([]byte, *codecError) {
	if len(s) > MaxStringBytes {
		return dst, errf(ErrTooBig, "%s length %d exceeds %d", what, len(s), MaxStringBytes)
	}
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...), nil
}
