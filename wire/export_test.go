package wire

// What a decoder yields for a value, a sample or a node: the codec tests in
// wire_test compare decoded frames against these. Compiled only into this
// package's tests.

import (
	"math"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Quantize returns v as the codec transmits metric m: rounded to the metric's
// resolution (see the table above). Decoding an encoded value yields exactly
// Quantize(m, v). Unknown metrics are returned unchanged.
func Quantize(m fleet.Metric, v float64) float64 {
	if m >= fleet.NumMetrics {
		return v
	}
	return quant(v, metricCodes[m].scale)
}

// QuantizeHost is Quantize for host metrics.
func QuantizeHost(m fleet.HostMetric, v float64) float64 {
	if m >= fleet.NumHostMetrics {
		return v
	}
	return quant(v, hostCodes[m].scale)
}

// QuantizeTime returns t as the codec transmits it: truncated to the
// millisecond, in UTC. The zero time stays the zero time.
func QuantizeTime(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// QuantizeSample rewrites s in place (including *s.Host) into exactly what a
// decoder yields for it: values quantised, absent values zeroed, times at
// millisecond precision in UTC, empty slices nil.
func QuantizeSample(s *fleet.Sample) {
	s.Time = QuantizeTime(s.Time)
	for i := range s.Devices {
		d := &s.Devices[i]
		for m := range fleet.NumMetrics {
			if d.Present&(1<<m) != 0 {
				d.Values[m] = Quantize(m, d.Values[m])
			} else {
				d.Values[m] = 0
			}
		}
	}
	if len(s.Devices) == 0 {
		s.Devices = nil
	}
	if h := s.Host; h != nil {
		for m := range fleet.NumHostMetrics {
			if h.Present&(1<<m) != 0 {
				h.Values[m] = QuantizeHost(m, h.Values[m])
			} else {
				h.Values[m] = 0
			}
		}
	}
	if !s.ProcsSet || len(s.Procs) == 0 {
		s.Procs = nil
	}
	for i := range s.Procs {
		if v, ok := s.Procs[i].Util.Get(); ok {
			s.Procs[i].Util = fleet.Some(quant(v, procUtilScale))
		}
	}
	for i := range s.Events {
		s.Events[i].Time = QuantizeTime(s.Events[i].Time)
	}
	if len(s.Events) == 0 {
		s.Events = nil
	}
}

// QuantizeNode rewrites n in place into exactly what a decoder yields for it
// in a Hello: lease times at millisecond precision in UTC (zero stays zero),
// power limits at 1e-3 W, empty labels and devices nil.
func QuantizeNode(n *fleet.Node) {
	if !n.Lease.Start.IsZero() {
		n.Lease.Start = QuantizeTime(n.Lease.Start)
	}
	if !n.Lease.End.IsZero() {
		n.Lease.End = QuantizeTime(n.Lease.End)
	}
	if len(n.Labels) == 0 {
		n.Labels = nil
	}
	if len(n.Devices) == 0 {
		n.Devices = nil
	}
	for i := range n.Devices {
		n.Devices[i].PowerLimit = quant(n.Devices[i].PowerLimit, powerLimitScale)
	}
}

func quant(v, scale float64) float64 {
	if scale == 0 {
		return v
	}
	if scale == 1 {
		return math.Round(v)
	}
	return math.Round(v*scale) / scale
}
