package prometheus

import (
	"io"
	"math"
	"strconv"
)

// textSink writes the Prometheus text format (0.0.4) or OpenMetrics 1.0.0.
// It buffers and writes in large chunks; the first write error stops it.
type textSink struct {
	w   io.Writer
	om  bool
	buf []byte
	cur *Family
	err error
	n   int // samples written
}

const textChunk = 64 << 10

func (t *textSink) sample(f *Family, ls *labelSet, v float64) {
	if f != t.cur {
		t.cur = f
		f.render()
		if t.om {
			t.buf = append(t.buf, f.omHdr...)
		} else {
			t.buf = append(t.buf, f.textHdr...)
		}
	}
	t.buf = append(t.buf, f.Name...)
	t.buf = ls.appendText(t.buf)
	t.buf = append(t.buf, ' ')
	t.buf = appendValue(t.buf, v)
	t.buf = append(t.buf, '\n')
	t.n++
	if len(t.buf) >= textChunk {
		t.flush()
	}
}

func (t *textSink) flush() {
	if t.err == nil && len(t.buf) > 0 {
		_, t.err = t.w.Write(t.buf)
	}
	t.buf = t.buf[:0]
}

// appendValue formats a sample value as client_golang does.
func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
