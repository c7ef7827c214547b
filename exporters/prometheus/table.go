package prometheus

import (
	"strconv"
	"strings"
	"sync"

	"github.com/fleettop/fleettop/fleet"
)

// Family is one metric family: its name, help and type. Type is "gauge" or
// "counter" (a counter's name ends in _total).
type Family struct {
	Name, Help, Type string

	// Rendered once, at the first scrape: the same binary runs as a
	// collector, which never scrapes and should not pay for them.
	once           sync.Once
	textHdr, omHdr string
	nameLabelPB    []byte // the __name__ Label message for remote_write
}

func newFamily(name, help, typ string) *Family {
	return &Family{Name: name, Help: help, Type: typ}
}

// render fills the family's pre-rendered headers; call it before reading
// them.
func (f *Family) render() *Family {
	f.once.Do(func() {
		h := escapeHelp(f.Help)
		f.textHdr = "# HELP " + f.Name + " " + h + "\n# TYPE " + f.Name + " " + f.Type + "\n"
		om := f.Name
		if f.Type == "counter" {
			om = strings.TrimSuffix(f.Name, "_total")
		}
		f.omHdr = "# HELP " + om + " " + h + "\n# TYPE " + om + " " + f.Type + "\n"
		f.nameLabelPB = appendLabelPB(nil, "__name__", f.Name)
	})
	return f
}

func gauge(name, help string) *Family   { return newFamily(name, help, "gauge") }
func counter(name, help string) *Family { return newFamily(name, help, "counter") }

// DeviceSeries is one row of the device table: a series per device of one
// vendor. To export a new device metric, append a row to dcgmSeries or
// npuSeries (C5/C6: names never change once shipped).
type DeviceSeries struct {
	*Family
	Vendor fleet.Vendor
	// Value returns the series' value for one device; false: not emitted.
	Value func(d *devSnap) (float64, bool)
}

// metric exports fleet metric m multiplied by scale (the exporter's unit).
func metric(m fleet.Metric, scale float64) func(*devSnap) (float64, bool) {
	return func(d *devSnap) (float64, bool) {
		if d.s == nil {
			return 0, false
		}
		v, ok := d.s.Get(m)
		if !ok || !finite(v) {
			return 0, false
		}
		return v * scale, true
	}
}

const (
	mib = 1 << 20
	mb  = 1e6
)

// dcgmSeries are NVIDIA devices under the DCGM exporter's names.
// DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION is a counter in dcgm-exporter, but
// promtool requires counters to end in _total; the name is what dashboards
// use, so it is typed gauge here (rate() works the same).
var dcgmSeries = []DeviceSeries{
	{gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."), fleet.VendorNVIDIA, metric(fleet.MetricUtil, 100)},
	{gauge("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)."), fleet.VendorNVIDIA, metric(fleet.MetricMemUtil, 100)},
	{gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."), fleet.VendorNVIDIA, metric(fleet.MetricMemUsed, 1.0/mib)},
	{gauge("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."), fleet.VendorNVIDIA, metric(fleet.MetricMemFree, 1.0/mib)},
	{gauge("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."), fleet.VendorNVIDIA, metric(fleet.MetricPower, 1)},
	{gauge("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ)."), fleet.VendorNVIDIA, metric(fleet.MetricEnergy, 1000)},
	{gauge("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."), fleet.VendorNVIDIA, metric(fleet.MetricTemp, 1)},
	{gauge("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."), fleet.VendorNVIDIA, metric(fleet.MetricSMClock, 1)},
	{gauge("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz)."), fleet.VendorNVIDIA, metric(fleet.MetricMemClock, 1)},
	// The last XID of the device among the node's recent events, 0 when
	// none; emitted once the device has reported anything. A MIG
	// instance's XIDs are its GPU's.
	{gauge("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered."), fleet.VendorNVIDIA, func(d *devSnap) (float64, bool) {
		return float64(d.xid), !d.inst && (d.xidSeen || d.seen && d.any)
	}},
	// Clock-event (throttle) reasons, ECC and row remapping (gpu, issue 15).
	{gauge("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "Current clock throttle reasons (bitmask of NVML clock event reasons)."), fleet.VendorNVIDIA, metric(fleet.MetricThrottle, 1)},
	{gauge("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC errors."), fleet.VendorNVIDIA, metric(fleet.MetricECCCorrected, 1)},
	{gauge("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors."), fleet.VendorNVIDIA, metric(fleet.MetricECCUncorrected, 1)},
	{gauge("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "Total number of single-bit persistent ECC errors."), fleet.VendorNVIDIA, metric(fleet.MetricECCCorrectedAgg, 1)},
	{gauge("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "Total number of double-bit persistent ECC errors."), fleet.VendorNVIDIA, metric(fleet.MetricECCUncorrectedAgg, 1)},
	{gauge("DCGM_FI_DEV_ROW_REMAP_PENDING", "Pending row remapping (1: a remap waits for a GPU reset)."), fleet.VendorNVIDIA, metric(fleet.MetricRemapPending, 1)},
	{gauge("DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed."), fleet.VendorNVIDIA, metric(fleet.MetricRemapFailure, 1)},
	// Profiling activity (NVML GPM; absent without it), as DCGM's
	// DCGM_FI_PROF_* fields: ratios 0..1, link traffic in bytes per second.
	{gauge("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "Ratio of time the graphics engine is active."), fleet.VendorNVIDIA, metric(fleet.MetricGREngineActive, 1)},
	{gauge("DCGM_FI_PROF_SM_ACTIVE", "The ratio of cycles an SM has at least 1 warp assigned."), fleet.VendorNVIDIA, metric(fleet.MetricSMActive, 1)},
	{gauge("DCGM_FI_PROF_SM_OCCUPANCY", "The ratio of number of warps resident on an SM."), fleet.VendorNVIDIA, metric(fleet.MetricSMOccupancy, 1)},
	{gauge("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "Ratio of cycles the tensor (HMMA) pipe is active."), fleet.VendorNVIDIA, metric(fleet.MetricTensorActive, 1)},
	{gauge("DCGM_FI_PROF_DRAM_ACTIVE", "Ratio of cycles the device memory interface is active sending or receiving data."), fleet.VendorNVIDIA, metric(fleet.MetricDRAMActive, 1)},
	{gauge("DCGM_FI_PROF_PCIE_TX_BYTES", "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second."), fleet.VendorNVIDIA, metric(fleet.MetricPCIeTx, 1)},
	{gauge("DCGM_FI_PROF_PCIE_RX_BYTES", "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second."), fleet.VendorNVIDIA, metric(fleet.MetricPCIeRx, 1)},
	{gauge("DCGM_FI_PROF_NVLINK_TX_BYTES", "The rate of data transmitted over NVLink, not including protocol headers, in bytes per second."), fleet.VendorNVIDIA, metric(fleet.MetricNVLinkTx, 1)},
	{gauge("DCGM_FI_PROF_NVLINK_RX_BYTES", "The rate of data received over NVLink, not including protocol headers, in bytes per second."), fleet.VendorNVIDIA, metric(fleet.MetricNVLinkRx, 1)},
}

// npuSeries are Ascend devices under npu-exporter's names.
var npuSeries = []DeviceSeries{
	{gauge("npu_chip_info_utilization", "the ai core utilization"), fleet.VendorAscend, metric(fleet.MetricUtil, 100)},
	{gauge("npu_chip_info_hbm_used_memory", "the npu hbm used memory, unit is 'MB'"), fleet.VendorAscend, metric(fleet.MetricMemUsed, 1.0/mb)},
	{gauge("npu_chip_info_hbm_total_memory", "the npu hbm total memory, unit is 'MB'"), fleet.VendorAscend, metric(fleet.MetricMemTotal, 1.0/mb)},
	{gauge("npu_chip_info_power", "the npu power, unit is 'W'"), fleet.VendorAscend, metric(fleet.MetricPower, 1)},
	{gauge("npu_chip_info_temperature", "the npu temperature, unit is 'C'"), fleet.VendorAscend, metric(fleet.MetricTemp, 1)},
	{gauge("npu_chip_info_health_status", "the npu health status: 1 healthy, 0 unhealthy"), fleet.VendorAscend, func(d *devSnap) (float64, bool) {
		if d.s == nil {
			return 0, false
		}
		h, ok := d.s.Get(fleet.MetricHealth)
		if !ok {
			return 0, false
		}
		if fleet.Health(h) == fleet.HealthOK {
			return 1, true
		}
		return 0, true
	}},
}

// nodeLabels returns the labels every device of vendor v on node n carries,
// by vendor: DCGM's for NVIDIA, npu-exporter's for Ascend, plus fleettop's
// placement and node (the node id, which keeps two nodes with the same
// hostname and device UUIDs from rendering colliding series); nil for
// another vendor. deviceLabels has the labels of each device. Called once
// per node per Hello. To add a label, add it here or there.
func nodeLabels(n *fleet.Node, id string, v fleet.Vendor) []label {
	host := n.Hostname
	if host == "" {
		host = id
	}
	switch v {
	case fleet.VendorNVIDIA:
		return []label{
			{"Hostname", host}, {"hostname", host},
			{"region", n.Region}, {"provider", n.Provider}, {"jurisdiction", n.Jurisdiction}, {"node", id},
			{"DCGM_FI_DRIVER_VERSION", n.Driver},
		}
	case fleet.VendorAscend:
		return []label{
			{"hostname", host}, {"region", n.Region}, {"provider", n.Provider}, {"jurisdiction", n.Jurisdiction}, {"node", id},
		}
	}
	return nil
}

// deviceLabels returns the labels of device d of node n besides its node's
// (nodeLabels); nil for a vendor the exporter has no names for. Called once
// per device per Hello.
func deviceLabels(n *fleet.Node, d *fleet.Device) []label {
	idx := strconv.Itoa(d.Index)
	switch d.Vendor {
	case fleet.VendorNVIDIA:
		// As dcgm-exporter: a MIG instance carries its GPU's gpu, UUID and
		// device, told apart by GPU_I_PROFILE and GPU_I_ID, which a whole
		// GPU does not carry; pci_bus_id and DCGM_FI_DRIVER_VERSION on all.
		uuid := d.UUID
		if d.IsInstance() {
			idx = strconv.Itoa(d.Instance.Parent)
			for i := range n.Devices {
				if n.Devices[i].Index == d.Instance.Parent {
					uuid = n.Devices[i].UUID
				}
			}
		}
		ls := []label{{"gpu", idx}, {"UUID", uuid}, {"device", "nvidia" + idx}, {"modelName", d.Model}, {"pci_bus_id", d.PCIBusID}}
		if d.IsInstance() {
			ls = append(ls, label{"GPU_I_PROFILE", d.Instance.Profile}, label{"GPU_I_ID", strconv.Itoa(d.Instance.GPUInstanceID)})
		}
		return ls
	case fleet.VendorAscend:
		return []label{{"id", idx}, {"model_name", d.Model}, {"vdie_id", d.UUID}}
	}
	return nil
}

// fleettop's own series.
var (
	famLeasePrice = gauge("fleettop_lease_price_per_gpu_hour", "Lease price per GPU-hour of a node, in its currency.")
	famGPUs       = gauge("fleettop_gpus", "Accelerators known, by state.")
	famBurn       = gauge("fleettop_cost_burn_per_hour", "What the leased GPUs cost per hour now.")
	famSpend      = counter("fleettop_cost_spend_total", "Lease spend accrued this calendar month (UTC), whether nodes report or not; resets at the start of a month.")
	famIdleSpend  = counter("fleettop_cost_idle_spend_total", "Spend on GPU time under the idle threshold this calendar month (UTC); resets at the start of a month.")
	famViolations = gauge("fleettop_residency_violations", "Jobs (per node) processing a data class outside its allowed jurisdictions.")
	famAlertsOpen = gauge("fleettop_alerts_open", "Open alerts by severity.")
	famSourceUp   = gauge("fleettop_collector_source_up", "1 when the collector's telemetry source works, 0 when it failed (as the collector last reported).")
)
