//go:build cgo

package nvml

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/fleettop/fleettop/fleet"
)

// GPM (GPU Performance Monitoring, Hopper and newer) gives DCGM's profiling
// fields without DCGM: two samples of the device's counters, and NVML
// computes activity ratios and link rates over the time between them. Each
// device keeps its previous sample, so every tick measures the whole
// interval since the last one; the first sample is taken at Start, so even a
// one-shot collection has an interval to measure.

// GPMMetric maps one GPM metric to a fleet metric; Scale converts GPM's
// unit (percent, MiB/s) to the canonical one (ratio, bytes/s).
type GPMMetric struct {
	ID     nvml.GpmMetricId
	Metric fleet.Metric
	Scale  float64
}

// GPMMetrics are the GPM metrics the source reads (the simulated NVML in
// mock answers the same table).
var GPMMetrics = [...]GPMMetric{
	{nvml.GPM_METRIC_GRAPHICS_UTIL, fleet.MetricGREngineActive, 0.01},
	{nvml.GPM_METRIC_SM_UTIL, fleet.MetricSMActive, 0.01},
	{nvml.GPM_METRIC_SM_OCCUPANCY, fleet.MetricSMOccupancy, 0.01},
	{nvml.GPM_METRIC_ANY_TENSOR_UTIL, fleet.MetricTensorActive, 0.01},
	{nvml.GPM_METRIC_DRAM_BW_UTIL, fleet.MetricDRAMActive, 0.01},
	{nvml.GPM_METRIC_PCIE_TX_PER_SEC, fleet.MetricPCIeTx, 1 << 20},
	{nvml.GPM_METRIC_PCIE_RX_PER_SEC, fleet.MetricPCIeRx, 1 << 20},
	{nvml.GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC, fleet.MetricNVLinkTx, 1 << 20},
	{nvml.GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC, fleet.MetricNVLinkRx, 1 << 20},
}

// gpmState is one device's GPM sampling state, owned by its worker.
type gpmState struct {
	lib       nvml.Interface
	h         nvml.Device // the physical GPU (for a MIG instance: its parent)
	mig       bool        // sample the GPU instance gi of h
	gi        int
	prev, cur nvml.GpmSample
	have      bool // prev holds a sample
	req       nvml.GpmMetricsGetType
}

// newGPM returns the GPM state of a device, or nil when the GPU or driver
// has no GPM (then the profiling metrics stay absent).
func newGPM(lib nvml.Interface, h nvml.Device, mig bool, gi int) *gpmState {
	var sup nvml.GpmSupport
	ret := nvml.ERROR_FUNCTION_NOT_FOUND
	func() {
		defer func() { recover() }()
		sup, ret = lib.GpmQueryDeviceSupport(h)
	}()
	if ret != nvml.SUCCESS || sup.IsSupportedDevice == 0 {
		return nil
	}
	g := &gpmState{lib: lib, h: h, mig: mig, gi: gi}
	var r1, r2 nvml.Return
	func() {
		defer func() {
			if recover() != nil {
				r1 = nvml.ERROR_FUNCTION_NOT_FOUND
			}
		}()
		g.prev, r1 = lib.GpmSampleAlloc()
		g.cur, r2 = lib.GpmSampleAlloc()
	}()
	if r1 != nvml.SUCCESS || r2 != nvml.SUCCESS {
		g.free()
		return nil
	}
	g.req.NumMetrics = uint32(len(GPMMetrics))
	for i, gm := range GPMMetrics {
		g.req.Metrics[i].MetricId = uint32(gm.ID)
	}
	g.have = g.take(g.prev)
	return g
}

func (g *gpmState) take(s nvml.GpmSample) bool {
	return safe(func() nvml.Return {
		if g.mig {
			return g.lib.GpmMigSampleGet(g.h, g.gi, s)
		}
		return g.lib.GpmSampleGet(g.h, s)
	}) == nvml.SUCCESS
}

// read takes a sample and sets the metrics measured since the previous one.
func (g *gpmState) read(smp *fleet.DeviceSample) {
	if !g.take(g.cur) {
		g.have = false
		return
	}
	if g.have {
		g.req.Sample1, g.req.Sample2 = g.prev, g.cur
		if safe(func() nvml.Return { return g.lib.GpmMetricsGet(&g.req) }) == nvml.SUCCESS {
			for i, gm := range GPMMetrics {
				r := &g.req.Metrics[i]
				if nvml.Return(r.NvmlReturn) != nvml.SUCCESS || r.MetricId != uint32(gm.ID) {
					continue
				}
				v := r.Value * gm.Scale
				if v != v || v < 0 { // NaN or nonsense: absent
					continue
				}
				if gm.Scale < 1 {
					v = min(v, 1)
				}
				smp.Set(gm.Metric, v)
			}
		}
	}
	g.prev, g.cur = g.cur, g.prev
	g.have = true
}

func (g *gpmState) free() {
	for _, s := range []nvml.GpmSample{g.prev, g.cur} {
		if s != nil {
			safe(s.Free)
		}
	}
}
