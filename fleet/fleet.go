// Package fleet is fleettop's vocabulary: nodes, devices, samples, jobs, leases,
// events and money. Every other package speaks it.
//
// Units inside the code: memory in bytes, power in watts, energy in joules,
// temperature in °C, clocks in MHz, utilisation as a ratio 0..1, money as integer
// micro-units of a currency. A metric the hardware does not report is absent,
// never zero: see DeviceSample.Has.
package fleet

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// Vendor names an accelerator family.
type Vendor string

// The vendors fleettop knows.
const (
	VendorNVIDIA Vendor = "nvidia"
	VendorAscend Vendor = "ascend"
)

// Valid reports whether v is a known vendor.
func (v Vendor) Valid() bool { return v == VendorNVIDIA || v == VendorAscend }

// Node is one machine as it introduces itself: identity, placement labels,
// lease and inventory. It changes only when the collector reconnects.
type Node struct {
	ID           string `json:"id"`
	Hostname     string `json:"hostname"`
	Region       string `json:"region"`       // e.g. "ap-southeast-1" or "Singapore"
	Site         string `json:"site"`         // data centre or zone
	Provider     string `json:"provider"`     // who rents it to us
	Jurisdiction string `json:"jurisdiction"` // ISO 3166-1 alpha-2 country code, e.g. "SG"
	Lease        Lease  `json:"lease"`
	// Labels are free-form extra labels from the collector's config.
	Labels map[string]string `json:"labels,omitempty"`
	// Driver and CUDA versions as the driver reports them ("" when absent).
	Driver       string   `json:"driver,omitempty"`
	CUDA         string   `json:"cuda,omitempty"`
	BootID       string   `json:"boot_id,omitempty"`
	AgentVersion string   `json:"agent_version,omitempty"`
	Devices      []Device `json:"devices"`
	// Sources is each telemetry source's health as the collector last
	// reported it (in Hello and whenever one changes).
	Sources []SourceStatus `json:"sources,omitempty"`
}

// SourceStatus is one collector source's health: a source that failed to
// start or to collect is down, with the reason it gave.
type SourceStatus struct {
	Name   string `json:"name"` // registry name: "nvml", "ascend", "host", "jobs"
	Up     bool   `json:"up"`
	Reason string `json:"reason,omitempty"` // why it is down ("" when up)
}

// BilledGPUs is how many GPUs the node's lease charges for: the contracted
// count when the lease states one, else the GPUs its sources enumerated
// (MIG instances are part of their GPU, not GPUs of their own).
func (n *Node) BilledGPUs() int {
	if n.Lease.GPUs > 0 {
		return n.Lease.GPUs
	}
	return n.PhysicalGPUs()
}

// VisibleGPUs is how many of the node's GPUs (not MIG instances) are not lost.
func (n *Node) VisibleGPUs() int {
	v := 0
	for i := range n.Devices {
		if n.Devices[i].State != DeviceLost && !n.Devices[i].IsInstance() {
			v++
		}
	}
	return v
}

// BlindGPUs is how many GPUs are paid for but not visible ("paid but
// blind"): the GPUs billed less the devices seen and not lost.
func (n *Node) BlindGPUs() int {
	return max(0, n.BilledGPUs()-n.VisibleGPUs())
}

// Device is one accelerator's inventory entry.
type Device struct {
	Index       int    `json:"index"` // position on the node, 0-based; also the key in samples
	UUID        string `json:"uuid"`
	Vendor      Vendor `json:"vendor"`
	Model       string `json:"model"` // e.g. "NVIDIA H100 80GB HBM3", "Ascend 910B"
	PCIBusID    string `json:"pci_bus_id,omitempty"`
	MemoryTotal uint64 `json:"memory_total"` // bytes
	// PowerLimit is the enforced power limit in watts; 0 when unknown.
	PowerLimit float64 `json:"power_limit"`
	MIG        bool    `json:"mig,omitempty"`
	// State is set by the aggregator: DeviceLost once the device fell off
	// the bus (XID 79) or left the inventory, until the node boots again.
	// Collectors never send it.
	State DeviceState `json:"state,omitempty"`
	// Instance is set when the device is a MIG GPU instance; the physical
	// GPU it is carved from is the device with index Instance.Parent.
	Instance MIGInstance `json:"mig_instance,omitzero"`
}

// MIGInstance places a MIG device under its physical GPU. The zero value
// (no profile) means "not a MIG instance".
type MIGInstance struct {
	Parent            int    `json:"parent"`              // Device.Index of the physical GPU
	GPUInstanceID     int    `json:"gpu_instance_id"`     // DCGM's GPU_I_ID
	ComputeInstanceID int    `json:"compute_instance_id"` //
	Profile           string `json:"profile"`             // DCGM's GPU_I_PROFILE, e.g. "3g.40gb"
}

// IsInstance reports whether d is a MIG instance rather than a physical GPU.
func (d *Device) IsInstance() bool { return d.Instance.Profile != "" }

// PhysicalGPUs counts the node's physical accelerators (MIG instances are
// carved from them and are not leased on their own).
func (n *Node) PhysicalGPUs() int {
	c := 0
	for i := range n.Devices {
		if !n.Devices[i].IsInstance() {
			c++
		}
	}
	return c
}

// DeviceState is what the aggregator knows of a device's presence.
type DeviceState string

// Device states; "" is DeviceOK.
const (
	DeviceOK   DeviceState = "ok"
	DeviceLost DeviceState = "lost"
)

// Billing is how a lease rounds leased time.
type Billing string

// Billing granularities.
const (
	BillPerSecond      Billing = "second"
	BillPerStartedHour Billing = "hour"
)

// Lease is what we pay for a node. A zero PricePerGPUHour means "price not
// known from the node"; the aggregator's price table may supply one.
type Lease struct {
	ID              string  `json:"id,omitempty"`
	PricePerGPUHour Money   `json:"price_per_gpu_hour"`
	Billing         Billing `json:"billing,omitempty"`
	Reserved        bool    `json:"reserved,omitempty"`
	// GPUs is the contracted GPU count (collector.yaml gpus:); the lease
	// charges for it whatever the sensors see. 0: not stated, bill the
	// devices enumerated.
	GPUs  int       `json:"gpus,omitempty"`
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"` // zero: open-ended
}

// Money is an amount in integer micro-units (1e-6) of a currency.
// There is no float money anywhere in fleettop.
type Money struct {
	Micros   int64  `json:"micros"`
	Currency string `json:"currency"` // ISO 4217, e.g. "USD"
}

// MicrosPerUnit is the number of micro-units in one unit of currency.
const MicrosPerUnit = 1_000_000

// String formats m as "12.34 USD" (two decimals, rounded half away from zero).
func (m Money) String() string { return FormatMicros(m.Micros, 2, HalfAway) + " " + m.Currency }

// Metric names one per-device measurement. The order is part of the wire
// protocol: append only.
type Metric uint8

// Per-device metrics, in their canonical units.
const (
	MetricUtil           Metric = iota // GPU (NVIDIA) or AICore (Ascend) utilisation, ratio 0..1
	MetricMemUtil                      // memory-controller utilisation, ratio 0..1
	MetricMemUsed                      // bytes
	MetricMemFree                      // bytes
	MetricMemTotal                     // bytes, as sampled (v2 memory info may differ from inventory)
	MetricPower                        // watts
	MetricEnergy                       // joules since driver load (monotonic counter)
	MetricTemp                         // °C
	MetricSMClock                      // MHz
	MetricMemClock                     // MHz
	MetricFan                          // ratio 0..1 of maximum speed
	MetricThrottle                     // NVML clock-event reasons bitmask
	MetricECCCorrected                 // volatile corrected ECC error count
	MetricECCUncorrected               // volatile uncorrected ECC error count
	MetricRemappedRows                 // remapped rows (correctable + uncorrectable)
	MetricRetiredPages                 // retired pages (older GPUs)
	MetricHealth                       // Health value
	// Profiling activity (NVML GPM, Hopper and newer; absent elsewhere), as
	// DCGM's DCGM_FI_PROF_* fields: ratios 0..1 of the sample window, link
	// traffic in bytes per second.
	MetricGREngineActive    // graphics/compute engine active, ratio 0..1
	MetricSMActive          // SMs with at least one warp resident, ratio 0..1
	MetricSMOccupancy       // resident warps over the maximum, ratio 0..1
	MetricTensorActive      // any tensor pipe active, ratio 0..1
	MetricDRAMActive        // device memory interface busy, ratio 0..1
	MetricPCIeTx            // bytes/s sent over PCIe
	MetricPCIeRx            // bytes/s received over PCIe
	MetricNVLinkTx          // bytes/s sent over all NVLinks
	MetricNVLinkRx          // bytes/s received over all NVLinks
	MetricECCCorrectedAgg   // aggregate (lifetime) corrected ECC error count
	MetricECCUncorrectedAgg // aggregate (lifetime) uncorrected ECC error count
	MetricRemapPending      // 1: a row remap waits for the next GPU reset
	MetricRemapFailure      // 1: a row remap failed (the GPU needs service)
	NumMetrics              // number of metrics; not a metric
)

// The device metric set must fit DeviceSample.Present.
var _ [32 - NumMetrics]struct{}

var metricNames = [NumMetrics]string{
	"util", "mem_util", "mem_used", "mem_free", "mem_total", "power", "energy", "temp",
	"sm_clock", "mem_clock", "fan", "throttle", "ecc_corrected", "ecc_uncorrected",
	"remapped_rows", "retired_pages", "health",
	"gr_engine_active", "sm_active", "sm_occupancy", "tensor_active", "dram_active",
	"pcie_tx", "pcie_rx", "nvlink_tx", "nvlink_rx",
	"ecc_corrected_aggregate", "ecc_uncorrected_aggregate", "remap_pending", "remap_failure",
}

// String returns the metric's snake_case name, used in JSON.
func (m Metric) String() string {
	if m < NumMetrics {
		return metricNames[m]
	}
	return fmt.Sprintf("metric(%d)", uint8(m))
}

// Health of a device (Ascend reports it directly; NVIDIA's is derived).
type Health uint8

// Health values, worst last.
const (
	HealthOK       Health = 0
	HealthWarning  Health = 1
	HealthCritical Health = 2
)

// DeviceSample holds one device's measurements at one instant. Only the
// metrics whose bit is set in Present exist; the others are absent.
type DeviceSample struct {
	Index   int                 // Device.Index
	Present uint32              // bit m set: Values[m] is valid
	Values  [NumMetrics]float64 // canonical units, see Metric
}

// Set records metric m.
func (d *DeviceSample) Set(m Metric, v float64) {
	d.Values[m] = v
	d.Present |= 1 << m
}

// Has reports whether metric m is present.
func (d *DeviceSample) Has(m Metric) bool { return d.Present&(1<<m) != 0 }

// Get returns metric m and whether it is present.
func (d *DeviceSample) Get(m Metric) (float64, bool) { return d.Values[m], d.Has(m) }

// Clear marks metric m absent.
func (d *DeviceSample) Clear(m Metric) {
	d.Values[m] = 0
	d.Present &^= 1 << m
}

// HostMetric names one host measurement. Append only (wire protocol).
type HostMetric uint8

// Host metrics, in canonical units.
const (
	HostCPUUtil    HostMetric = iota // ratio 0..1 over all cores
	HostLoad1                        // load average
	HostLoad5                        //
	HostLoad15                       //
	HostMemUsed                      // bytes
	HostMemTotal                     // bytes
	HostNetRx                        // bytes received since boot, all non-loopback interfaces
	HostNetTx                        // bytes sent since boot
	HostUptime                       // seconds
	NumHostMetrics                   // not a metric
)

var hostMetricNames = [NumHostMetrics]string{
	"cpu_util", "load1", "load5", "load15", "mem_used", "mem_total", "net_rx", "net_tx", "uptime",
}

// String returns the host metric's snake_case name.
func (m HostMetric) String() string {
	if m < NumHostMetrics {
		return hostMetricNames[m]
	}
	return fmt.Sprintf("host_metric(%d)", uint8(m))
}

// HostSample holds the node's own measurements; absent metrics have no bit.
type HostSample struct {
	Present uint32
	Values  [NumHostMetrics]float64
}

// Set records host metric m.
func (h *HostSample) Set(m HostMetric, v float64) {
	h.Values[m] = v
	h.Present |= 1 << m
}

// Get returns host metric m and whether it is present.
func (h *HostSample) Get(m HostMetric) (float64, bool) {
	return h.Values[m], h.Present&(1<<m) != 0
}

// Job is a unit of work that owns GPU processes: a Slurm job, a Kubernetes
// pod, or whatever FLEETTOP_JOB names.
type Job struct {
	ID        string `json:"id"`                   // "" for processes without a job
	Source    string `json:"source,omitempty"`     // "env", "slurm", "k8s"
	Team      string `json:"team,omitempty"`       // FLEETTOP_TEAM
	DataClass string `json:"data_class,omitempty"` // FLEETTOP_DATA_CLASS, e.g. "cn-customer"
}

// Process is a compute process on a device.
type Process struct {
	Device     int    `json:"device"` // Device.Index
	PID        uint32 `json:"pid"`
	Name       string `json:"name,omitempty"`
	UsedMemory uint64 `json:"used_memory"` // bytes; 0 when the driver does not say
	Job        Job    `json:"job"`
	// Util is the process's share of the device's SMs over the last sample
	// window (NVML process utilisation), ratio 0..1; absent when not known.
	Util OptFloat `json:"util,omitzero"`
}

// EventKind classifies events.
type EventKind string

// Event kinds raised by collectors or the aggregator.
const (
	EventXID       EventKind = "xid"       // NVIDIA XID error; Code is the XID
	EventECC       EventKind = "ecc"       // ECC error counts rose
	EventThermal   EventKind = "thermal"   // thermal throttling / over temperature
	EventHealth    EventKind = "health"    // Ascend health changed
	EventOffline   EventKind = "offline"   // node stopped reporting
	EventIdle      EventKind = "idle"      // leased and idle
	EventResidency EventKind = "residency" // data class outside its allowed jurisdictions
	EventBudget    EventKind = "budget"    // budget threshold crossed
	EventBlind     EventKind = "blind"     // fewer GPUs visible than the lease pays for
	EventSource    EventKind = "source"    // a collector source is down
	EventConflict  EventKind = "conflict"  // two collectors claim one node id
	EventClock     EventKind = "clock"     // node clock off the aggregator's by more than the threshold
)

// Severity of an event or alert.
type Severity string

// Severities.
const (
	SevInfo     Severity = "info"
	SevWarning  Severity = "warning"
	SevCritical Severity = "critical"
)

// Event is something that happened at an instant on a node (or device).
type Event struct {
	Time     time.Time `json:"time"`
	Kind     EventKind `json:"kind"`
	Severity Severity  `json:"severity"`
	Device   int       `json:"device"` // Device.Index, -1 for the whole node
	Code     int64     `json:"code,omitempty"`
	Message  string    `json:"message"`
}

// Alert is a condition with a start and (once cleared) an end.
type Alert struct {
	ID       string    `json:"id"`   // stable key, e.g. "residency/job-42/node-7"
	Kind     EventKind `json:"kind"` //
	Severity Severity  `json:"severity"`
	Node     string    `json:"node,omitempty"`
	Region   string    `json:"region,omitempty"`
	Device   int       `json:"device"` // -1 when not device-specific
	Job      string    `json:"job,omitempty"`
	Message  string    `json:"message"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"` // zero while open
	// Set by operators (aggregator operator tokens): acknowledged, by whom,
	// and silenced until when.
	Acked         bool      `json:"acked,omitempty"`
	AckedBy       string    `json:"acked_by,omitempty"`
	SilencedUntil time.Time `json:"silenced_until,omitzero"`
}

// AlertMark is what an operator decided about an alert: acknowledged (seen,
// being handled) and/or silenced until a time. The aggregator keeps
// them in its store.
type AlertMark struct {
	Acked         bool      `json:"acked,omitempty"`
	Start         time.Time `json:"start,omitzero"` // the acknowledged occurrence of the alert
	By            string    `json:"by"`             // token name
	At            time.Time `json:"at"`
	SilencedUntil time.Time `json:"silenced_until,omitzero"`
}

// Open reports whether the alert has not ended.
func (a *Alert) Open() bool { return a.End.IsZero() }

var sevRank = map[Severity]int{SevCritical: 0, SevWarning: 1, SevInfo: 2}

// CompareAlerts orders alerts as every list shows them: open first, then by
// severity, then newest first, then by id.
func CompareAlerts(a, b Alert) int {
	if ao, bo := a.Open(), b.Open(); ao != bo {
		if ao {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(sevRank[a.Severity], sevRank[b.Severity]); c != 0 {
		return c
	}
	if c := b.Start.Compare(a.Start); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// Sample is one sequenced record from a node: everything measured at one tick,
// plus the events seen since the previous record. Seq is per node, starts at 1
// and increases by exactly one per record, so the aggregator can detect gaps and
// duplicates. Events travel inside samples so that they share the spool and the
// resend guarantee.
type Sample struct {
	Seq     uint64
	Time    time.Time
	Devices []DeviceSample
	Host    *HostSample // nil: no host sample in this record
	// ProcsSet reports that Procs is the complete, current process list
	// (sent when it changes); when false, the previous list still holds.
	ProcsSet bool
	Procs    []Process
	Events   []Event
}
