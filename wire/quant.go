package wire

import (
	"math"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Every value travels as an integer number of steps of a fixed resolution per
// metric, chosen to be lossless for what the hardware reports:
//
//	util, mem_util, fan (ratio)  1e-4      NVML and npu-smi report whole percent
//	mem_used/free/total          1 byte
//	power                        1e-3 W    NVML reports milliwatts
//	energy                       1e-3 J    NVML reports millijoules
//	temp                         0.1 °C    NVML and npu-smi report whole °C
//	sm_clock, mem_clock          1 MHz
//	throttle, ecc_*, remapped_rows, retired_pages, health   1 (counts and bitmasks)
//
// Host metrics: cpu_util 1e-4, load1/5/15 0.01 (as /proc/loadavg), memory and
// network counters 1 byte, uptime 0.01 s (as /proc/uptime).
//
// Times travel at millisecond precision and decode in UTC. Device power
// limits in Hello use 1e-3 W.
//
// A decoded value equals Quantize of the value that was encoded, exactly.
// A quantised value must lie within ±2^62 steps for whole-unit metrics (bytes,
// counts) and ±2^50 steps for fractional resolutions (see maxFracSteps);
// NaN, ±Inf and values beyond that range are refused by the encoder and the
// decoder.

// metricScale is the number of steps per canonical unit of each metric.
var metricScale = [fleet.NumMetrics]float64{
	fleet.MetricUtil:           1e4,
	fleet.MetricMemUtil:        1e4,
	fleet.MetricMemUsed:        1,
	fleet.MetricMemFree:        1,
	fleet.MetricMemTotal:       1,
	fleet.MetricPower:          1e3,
	fleet.MetricEnergy:         1e3,
	fleet.MetricTemp:           10,
	fleet.MetricSMClock:        1,
	fleet.MetricMemClock:       1,
	fleet.MetricFan:            1e4,
	fleet.MetricThrottle:       1,
	fleet.MetricECCCorrected:   1,
	fleet.MetricECCUncorrected: 1,
	fleet.MetricRemappedRows:   1,
	fleet.MetricRetiredPages:   1,
	fleet.MetricHealth:         1,
}

// hostScale is the number of steps per canonical unit of each host metric.
var hostScale = [fleet.NumHostMetrics]float64{
	fleet.HostCPUUtil:  1e4,
	fleet.HostLoad1:    100,
	fleet.HostLoad5:    100,
	fleet.HostLoad15:   100,
	fleet.HostMemUsed:  1,
	fleet.HostMemTotal: 1,
	fleet.HostNetRx:    1,
	fleet.HostNetTx:    1,
	fleet.HostUptime:   100,
}

// powerLimitScale is the resolution of Device.PowerLimit in Hello (mW).
const powerLimitScale = 1e3

// Bounds on a quantised value. A whole-unit value (resolution 1) is exact in
// an int64 up to 2^62. A value with a fractional resolution must stay within
// ±2^50 steps, where Quantize is exactly idempotent (x/scale*scale rounds
// back to x); that is 1.1e12 W or J, or 1.1e11 as a ratio.
const (
	maxWholeSteps = 1 << 62
	maxFracSteps  = 1 << 50
)

func maxSteps(scale float64) int64 {
	if scale == 1 {
		return maxWholeSteps
	}
	return maxFracSteps
}

const (
	allMetrics     = uint32(1)<<fleet.NumMetrics - 1
	allHostMetrics = uint32(1)<<fleet.NumHostMetrics - 1
)

// Quantize returns v as the codec transmits metric m: rounded to the metric's
// resolution (see the table above). Decoding an encoded value yields exactly
// Quantize(m, v). Unknown metrics are returned unchanged.
func Quantize(m fleet.Metric, v float64) float64 {
	if m >= fleet.NumMetrics {
		return v
	}
	return quant(v, metricScale[m])
}

// QuantizeHost is Quantize for host metrics.
func QuantizeHost(m fleet.HostMetric, v float64) float64 {
	if m >= fleet.NumHostMetrics {
		return v
	}
	return quant(v, hostScale[m])
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
	if scale == 1 {
		return math.Round(v)
	}
	return math.Round(v*scale) / scale
}

// steps converts v to an integer number of steps; ok is false for NaN, ±Inf
// and values beyond maxSteps.
func steps(v, scale float64) (int64, bool) {
	r := math.Round(v * scale)
	if lim := float64(maxSteps(scale)); !(r >= -lim && r <= lim) { // also catches NaN
		return 0, false
	}
	return int64(r), true
}

// unsteps is the inverse of steps; it must compute exactly what quant does.
func unsteps(q int64, scale float64) float64 {
	if scale == 1 {
		return float64(q)
	}
	return float64(q) / scale
}
