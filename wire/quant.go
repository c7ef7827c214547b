package wire

import (
	"math"

	"github.com/fleettop/fleettop/fleet"
)

// Every value travels as an integer number of steps of a fixed resolution per
// metric. Protocol 2 (this build's) uses the resolution the hardware really
// reports, so quantising loses nothing a sensor measured:
//
//	metric                  step      source of the resolution
//	util, mem_util          1 %       nvmlDeviceGetUtilizationRates: nvmlUtilization_t.gpu and
//	                                  .memory are unsigned int percent; npu-smi prints whole percent
//	fan                     1 %       nvmlDeviceGetFanSpeed: unsigned int percent
//	mem_used/free/total     1 byte    nvmlDeviceGetMemoryInfo(_v2): unsigned long long bytes
//	                                  (in practice whole MiB, which the coding below exploits)
//	power                   1 mW      nvmlDeviceGetPowerUsage: unsigned int milliwatts (the
//	                                  sensor's own step is coarser and varies by board; the
//	                                  decimal coding below makes coarser steps cheap)
//	energy                  1 mJ      nvmlDeviceGetTotalEnergyConsumption: unsigned long long mJ
//	temp                    1 °C      nvmlDeviceGetTemperature: unsigned int °C; npu-smi whole °C
//	sm_clock, mem_clock     1 MHz     nvmlDeviceGetClockInfo: unsigned int MHz
//	throttle, ecc_*, remapped_rows, retired_pages, health   1 (counts and bitmasks)
//	gr_engine_active, sm_active, 1e-3   nvmlGpmMetricsGet: double percent, a ratio of
//	sm_occupancy, tensor_active,        cycle counters over the window; kept to a tenth
//	dram_active (ratio)                 of a percent, as dcgmi dmon prints DCGM's
//	                                    profiling ratios (three decimals)
//	pcie_tx/rx, nvlink_tx/rx  1 MiB/s   nvmlGpmMetricsGet: double MiB/s (see linkScale)
//	ecc_*_aggregate, remap_pending, remap_failure   1
//
// Protocol 1 used 1e-4 for ratios and 0.1 °C for temperature; a protocol-1
// stream still decodes with those steps.
//
// Host metrics: cpu_util 1e-4 (computed from /proc/stat jiffies), load1/5/15
// 0.01 (as /proc/loadavg prints them), memory in bytes (/proc/meminfo counts
// whole KiB), network counters 1 byte, uptime 0.01 s (as /proc/uptime).
//
// A metric appended to fleet's table without an entry here (scale 0) travels
// as its raw float64 bits, so any metric is carried losslessly.
//
// Times travel at millisecond precision and decode in UTC. Device power
// limits in Hello use 1e-3 W.
//
// A decoded value equals Quantize of the value that was encoded, exactly.
// A quantised value must lie within ±2^59 steps for whole-unit metrics (bytes,
// counts) and ±2^50 steps for fractional resolutions (see maxFracSteps);
// NaN, ±Inf and values beyond that range are refused by the encoder and the
// decoder.

// How a metric's value is predicted from the connection's previous values;
// only the residual (value − prediction) travels.
const (
	predPrev    = iota // a gauge: the previous value
	predCounter        // a counter: previous value + previous increment (delta of delta)
	predFree           // free memory: previous free − the change of used memory
	predTwin           // the previous value + the change of the metric just before it
)

// How a residual is written (always exactly one varint, so a decoder can skip
// a metric it does not know).
const (
	codeVarint  = iota // zig-zag varint
	codeMiB            // uvarint z<<1: residual/2^20 when whole MiB, else z<<1|1 of the residual
	codeKiB            // the same with 2^10
	codeDecimal        // uvarint z<<2 | e: residual/10^e with e in 0..3 as large as divides it
	codeRaw            // scale 0: uvarint of the float64 bits XOR the previous bits
)

// metricCoding is how protocol 2 carries one metric.
type metricCoding struct {
	scale float64 // steps per canonical unit; 0: raw float64 bits
	pred  uint8
	code  uint8
}

// metricCodes is protocol 2's device table.
var metricCodes = func() []metricCoding {
	set := map[fleet.Metric]metricCoding{
		fleet.MetricUtil:           {100, predPrev, codeVarint},
		fleet.MetricMemUtil:        {100, predPrev, codeVarint},
		fleet.MetricMemUsed:        {1, predPrev, codeMiB},
		fleet.MetricMemFree:        {1, predFree, codeMiB},
		fleet.MetricMemTotal:       {1, predPrev, codeMiB},
		fleet.MetricPower:          {1e3, predPrev, codeDecimal},
		fleet.MetricEnergy:         {1e3, predCounter, codeDecimal},
		fleet.MetricTemp:           {1, predPrev, codeVarint},
		fleet.MetricSMClock:        {1, predPrev, codeVarint},
		fleet.MetricMemClock:       {1, predPrev, codeVarint},
		fleet.MetricFan:            {100, predPrev, codeVarint},
		fleet.MetricThrottle:       {1, predPrev, codeVarint},
		fleet.MetricECCCorrected:   {1, predPrev, codeVarint},
		fleet.MetricECCUncorrected: {1, predPrev, codeVarint},
		fleet.MetricRemappedRows:   {1, predPrev, codeVarint},
		fleet.MetricRetiredPages:   {1, predPrev, codeVarint},
		fleet.MetricHealth:         {1, predPrev, codeVarint},
		// GPM reports float percentages and MiB/s: ratios travel at a tenth
		// of a percent (the three decimals dcgmi dmon shows DCGM's
		// DCGM_FI_PROF_* ratios with), link traffic in whole MiB/s (GPM's
		// unit, see linkScale).
		fleet.MetricGREngineActive:    {1e3, predPrev, codeVarint},
		fleet.MetricSMActive:          {1e3, predPrev, codeVarint},
		fleet.MetricSMOccupancy:       {1e3, predPrev, codeVarint},
		fleet.MetricTensorActive:      {1e3, predPrev, codeVarint},
		fleet.MetricDRAMActive:        {1e3, predPrev, codeVarint},
		fleet.MetricPCIeTx:            {linkScale, predPrev, codeVarint},
		fleet.MetricPCIeRx:            {linkScale, predPrev, codeVarint},
		fleet.MetricNVLinkTx:          {linkScale, predPrev, codeVarint},
		fleet.MetricNVLinkRx:          {linkScale, predTwin, codeVarint}, // collectives send and receive alike
		fleet.MetricECCCorrectedAgg:   {1, predPrev, codeVarint},
		fleet.MetricECCUncorrectedAgg: {1, predPrev, codeVarint},
		fleet.MetricRemapPending:      {1, predPrev, codeVarint},
		fleet.MetricRemapFailure:      {1, predPrev, codeVarint},
	}
	return protocol2Table(fleet.NumMetrics, set)
}()

// hostCodes is protocol 2's host table.
var hostCodes = func() []metricCoding {
	set := map[fleet.HostMetric]metricCoding{
		fleet.HostCPUUtil:  {1e4, predPrev, codeVarint},
		fleet.HostLoad1:    {100, predPrev, codeVarint},
		fleet.HostLoad5:    {100, predPrev, codeVarint},
		fleet.HostLoad15:   {100, predPrev, codeVarint},
		fleet.HostMemUsed:  {1, predPrev, codeKiB},
		fleet.HostMemTotal: {1, predPrev, codeKiB},
		fleet.HostNetRx:    {1, predCounter, codeVarint},
		fleet.HostNetTx:    {1, predCounter, codeVarint},
		fleet.HostUptime:   {100, predCounter, codeVarint},
	}
	return protocol2Table(fleet.NumHostMetrics, set)
}()

// protocol2Table is the table of n metrics that codes each as set says and
// any other (a metric added to fleet's table without an entry here) as its
// raw float64 bits.
func protocol2Table[M ~uint8](n M, set map[M]metricCoding) []metricCoding {
	t := make([]metricCoding, n)
	for m := range t {
		c, ok := set[M(m)]
		if !ok {
			c = metricCoding{0, predPrev, codeRaw}
		}
		t[m] = c
	}
	return t
}

// metricScaleV1 is protocol 1's steps per canonical unit of each metric
// (every residual a plain varint against the previous value).
var metricScaleV1 = [...]float64{
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

// hostScaleV1 is protocol 1's host table (the same steps as protocol 2's).
var hostScaleV1 = [...]float64{
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

// v1Codes turns a protocol-1 scale table into codings: plain varint deltas.
func v1Codes(scales []float64, n int) []metricCoding {
	t := make([]metricCoding, n)
	for m := range t {
		t[m] = metricCoding{1, predPrev, codeVarint}
		if m < len(scales) {
			t[m].scale = scales[m]
		}
	}
	return t
}

var (
	metricCodesV1 = v1Codes(metricScaleV1[:], int(fleet.NumMetrics))
	hostCodesV1   = v1Codes(hostScaleV1[:], int(fleet.NumHostMetrics))
)

// codings returns the device and host tables of protocol v.
func codings(v uint8) (dev, host []metricCoding) {
	if v == 1 {
		return metricCodesV1, hostCodesV1
	}
	return metricCodes, hostCodes
}

// linkScale is the resolution of the PCIe and NVLink traffic metrics: whole
// MiB/s, the unit NVML's GPM reports them in (nvml.h:
// NVML_GPM_METRIC_PCIE_TX_PER_SEC "PCIe traffic from this GPU in MiB/sec",
// NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC likewise). The figure is a rate
// derived from byte counters over the sample window (two GPM samples and
// the time between them), the same way NVML's other throughput interfaces
// work at their own granularity: nvmlDeviceGetPcieThroughput reads "a byte
// counter over a 20ms interval" and returns whole KB/s, and the NVLink
// throughput field counters (NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX/RX) count
// in KiB. GPM's double carries digits below a MiB/s, but they are the
// quotient's, not finer measurement that anyone reads: a step is 1.6e-5 of
// a PCIe 5 x16 link (64 GB/s a direction) and 2e-6 of an H100's NVLink
// (450 GB/s a direction); DCGM's dmon and Prometheus show these figures at
// MB/s-to-GB/s scale. On the mock's stream (go test ./mock -bench
// WireStream) whole bytes per second made these four metrics about a third
// of the payload, 10.4 of 29.6 B per GPU-sample, for digits nobody reads.
// (Protocol 2 carried them at 1 B/s until 2026-12-02 14:30 UTC; no release
// had shipped it.)
const linkScale = 1.0 / (1 << 20)

// procUtilScale is the resolution of Process.Util (a ratio; NVML reports whole percent).
const procUtilScale = 1e4

// powerLimitScale is the resolution of Device.PowerLimit in Hello (mW).
const powerLimitScale = 1e3

// Bounds on a quantised value. A whole-unit value (resolution 1) is exact in
// an int64 up to 2^62. A value with a fractional resolution must stay within
// ±2^50 steps, where Quantize is exactly idempotent (x/scale*scale rounds
// back to x); that is 1.1e12 W or J, or 1.1e11 as a ratio.
const (
	maxWholeSteps   = 1 << 59 // protocol 2: residual z<<2 still fits 64 bits
	maxWholeStepsV1 = 1 << 62
	maxFracSteps    = 1 << 50
)

// steps converts v to an integer number of steps; ok is false for NaN, ±Inf
// and values beyond lim.
func steps(v, scale float64, lim int64) (int64, bool) {
	r := math.Round(v * scale)
	if l := float64(lim); !(r >= -l && r <= l) { // also catches NaN
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
