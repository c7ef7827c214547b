// Package prometheus exports the live fleet on the aggregator's /metrics:
// NVIDIA devices under the DCGM exporter's names and labels, Ascend devices
// under npu-exporter's, and fleettop's own cost and policy series, so that
// existing Grafana dashboards work unchanged.
//
// Values are converted to the units those exporters use: utilisation in
// percent, framebuffer memory in MiB (DCGM) or HBM in MB (npu-exporter),
// energy in mJ. A metric a device does not report is not emitted.
package prometheus

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleettop/fleettop/aggregator/insight"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// Summarizer is the part of aggregator.Insights the exporter reads.
type Summarizer interface {
	Summarize(now time.Time) (wire.Summary, []wire.JobView, []fleet.Alert)
}

// placer is implemented by the insight engine: money and policy grouped by placement.
type placer interface {
	Placements(now time.Time) []insight.Placement
}

var (
	// node (the node id) keeps two nodes with the same hostname and device
	// UUIDs from rendering colliding series.
	dcgmLabels  = []string{"gpu", "UUID", "device", "modelName", "Hostname", "hostname", "region", "provider", "jurisdiction", "node"}
	npuLabels   = []string{"id", "model_name", "vdie_id", "hostname", "region", "provider", "jurisdiction", "node"}
	placeLabels = []string{"region", "provider", "jurisdiction", "currency"}
)

// devMetric maps one fleet metric to an exporter series.
type devMetric struct {
	m     fleet.Metric
	scale float64
	desc  *prometheus.Desc
}

func gauge(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

const mib = 1 << 20

// DCGM's names. DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION is a counter in
// dcgm-exporter, but promtool requires counters to end in _total; the name is
// what dashboards use, so it is typed gauge here (rate() works the same).
var dcgmMetrics = []devMetric{
	{fleet.MetricUtil, 100, gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", dcgmLabels)},
	{fleet.MetricMemUtil, 100, gauge("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", dcgmLabels)},
	{fleet.MetricMemUsed, 1.0 / mib, gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", dcgmLabels)},
	{fleet.MetricMemFree, 1.0 / mib, gauge("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", dcgmLabels)},
	{fleet.MetricPower, 1, gauge("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", dcgmLabels)},
	{fleet.MetricEnergy, 1000, gauge("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).", dcgmLabels)},
	{fleet.MetricTemp, 1, gauge("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", dcgmLabels)},
	{fleet.MetricSMClock, 1, gauge("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", dcgmLabels)},
	{fleet.MetricMemClock, 1, gauge("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", dcgmLabels)},
}

var dcgmXID = gauge("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", dcgmLabels)

const mb = 1e6

var npuMetrics = []devMetric{
	{fleet.MetricUtil, 100, gauge("npu_chip_info_utilization", "the ai core utilization", npuLabels)},
	{fleet.MetricMemUsed, 1.0 / mb, gauge("npu_chip_info_hbm_used_memory", "the npu hbm used memory, unit is 'MB'", npuLabels)},
	{fleet.MetricMemTotal, 1.0 / mb, gauge("npu_chip_info_hbm_total_memory", "the npu hbm total memory, unit is 'MB'", npuLabels)},
	{fleet.MetricPower, 1, gauge("npu_chip_info_power", "the npu power, unit is 'W'", npuLabels)},
	{fleet.MetricTemp, 1, gauge("npu_chip_info_temperature", "the npu temperature, unit is 'C'", npuLabels)},
}

var npuHealth = gauge("npu_chip_info_health_status", "the npu health status: 1 healthy, 0 unhealthy", npuLabels)

var (
	leasePrice = gauge("fleettop_lease_price_per_gpu_hour", "Lease price per GPU-hour of a node, in its currency.",
		[]string{"node", "hostname", "lease", "region", "provider", "jurisdiction", "currency"})
	burn  = gauge("fleettop_cost_burn_per_hour", "What the leased GPUs cost per hour now.", placeLabels)
	spend = prometheus.NewDesc("fleettop_cost_spend_total", "Lease spend accrued this calendar month (UTC), whether nodes report or not; resets at the start of a month.",
		placeLabels, nil)
	idleSpend = prometheus.NewDesc("fleettop_cost_idle_spend_total", "Spend on GPU time under the idle threshold this calendar month (UTC); resets at the start of a month.",
		placeLabels, nil)
	violations = gauge("fleettop_residency_violations", "Jobs (per node) processing a data class outside its allowed jurisdictions.",
		[]string{"region", "provider", "jurisdiction"})
	alertsOpen = gauge("fleettop_alerts_open", "Open alerts by severity.", []string{"region", "provider", "jurisdiction", "severity"})
	gpus       = gauge("fleettop_gpus", "Accelerators known, by state.", []string{"region", "provider", "jurisdiction", "state"})
)

// Collector emits the fleet's series at scrape time.
type Collector struct {
	nodes func() []wire.NodeView
	ins   Summarizer
	now   func() time.Time
}

// NewCollector returns a collector over the live fleet. ins may be nil: then
// burn comes from each node's lease, in the lease currency, and there are no
// spend, residency or alert series. Any aggregator.Insights is a Summarizer.
func NewCollector(nodes func() []wire.NodeView, ins Summarizer) prometheus.Collector {
	return &Collector{nodes: nodes, ins: ins, now: time.Now}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range dcgmMetrics {
		ch <- d.desc
	}
	ch <- dcgmXID
	for _, d := range npuMetrics {
		ch <- d.desc
	}
	for _, d := range []*prometheus.Desc{npuHealth, leasePrice, burn, spend, idleSpend, violations, alertsOpen, gpus} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	nodes := c.nodes()
	now := c.now()
	type place struct{ region, provider, jurisdiction string }
	states := map[place]map[string]int{}
	nodeBurn := map[[4]string]int64{}
	for i := range nodes {
		n := &nodes[i]
		p := place{n.Region, n.Provider, n.Jurisdiction}
		if states[p] == nil {
			states[p] = map[string]int{}
		}
		states[p][n.State] += len(n.Devices)
		if pr := n.Lease.PricePerGPUHour; pr.Micros > 0 {
			ch <- constMetric(leasePrice, prometheus.GaugeValue, units(pr.Micros),
				n.ID, n.Hostname, n.Lease.ID, n.Region, n.Provider, n.Jurisdiction, pr.Currency)
		}
		if b := n.BurnPerHour; b.Currency != "" {
			nodeBurn[[4]string{n.Region, n.Provider, n.Jurisdiction, b.Currency}] += b.Micros
		}
		if n.State == wire.StateOffline {
			continue // its last values are history, not the present
		}
		host := n.Hostname
		if host == "" {
			host = n.ID
		}
		for j := range n.Devices {
			d := &n.Devices[j]
			switch d.Vendor {
			case fleet.VendorNVIDIA:
				lv := []string{strconv.Itoa(d.Index), d.UUID, "nvidia" + strconv.Itoa(d.Index), d.Model, host, host, n.Region, n.Provider, n.Jurisdiction, n.ID}
				emit(ch, d, dcgmMetrics, lv)
				xid, seen := 0.0, false
				for _, ev := range n.Events {
					if ev.Kind == fleet.EventXID && ev.Device == d.Index {
						xid, seen = float64(ev.Code), true
					}
				}
				if seen || len(d.Metrics) > 0 {
					ch <- constMetric(dcgmXID, prometheus.GaugeValue, xid, lv...)
				}
			case fleet.VendorAscend:
				lv := []string{strconv.Itoa(d.Index), d.Model, d.UUID, host, n.Region, n.Provider, n.Jurisdiction, n.ID}
				emit(ch, d, npuMetrics, lv)
				if h, ok := d.Metrics[fleet.MetricHealth.String()]; ok {
					v := 0.0
					if fleet.Health(h) == fleet.HealthOK {
						v = 1
					}
					ch <- constMetric(npuHealth, prometheus.GaugeValue, v, lv...)
				}
			}
		}
	}
	for p, byState := range states {
		for st, n := range byState {
			ch <- constMetric(gpus, prometheus.GaugeValue, float64(n), p.region, p.provider, p.jurisdiction, st)
		}
	}
	if pl, ok := c.ins.(placer); ok && c.ins != nil {
		for _, p := range pl.Placements(now) {
			lv := []string{p.Region, p.Provider, p.Jurisdiction, p.BurnPerHour.Currency}
			ch <- constMetric(burn, prometheus.GaugeValue, units(p.BurnPerHour.Micros), lv...)
			ch <- constMetric(spend, prometheus.CounterValue, units(p.SpendMonth.Micros), lv...)
			ch <- constMetric(idleSpend, prometheus.CounterValue, units(p.IdleSpendMonth.Micros), lv...)
			ch <- constMetric(violations, prometheus.GaugeValue, float64(p.Violations), p.Region, p.Provider, p.Jurisdiction)
			for _, sev := range []fleet.Severity{fleet.SevInfo, fleet.SevWarning, fleet.SevCritical} {
				ch <- constMetric(alertsOpen, prometheus.GaugeValue, float64(p.AlertsOpen[sev]), p.Region, p.Provider, p.Jurisdiction, string(sev))
			}
		}
		return
	}
	// Without the engine: burn per lease currency from the nodes themselves.
	for k, v := range nodeBurn {
		ch <- constMetric(burn, prometheus.GaugeValue, units(v), k[0], k[1], k[2], k[3])
	}
	if c.ins == nil {
		return
	}
	type sevKey struct {
		p   place
		sev fleet.Severity
	}
	byNode := map[string]place{}
	for i := range nodes {
		byNode[nodes[i].ID] = place{nodes[i].Region, nodes[i].Provider, nodes[i].Jurisdiction}
	}
	open := map[sevKey]int{}
	viol := map[place]int{}
	for p := range states {
		viol[p] = 0
	}
	_, _, alerts := c.ins.Summarize(now)
	for _, a := range alerts {
		p, ok := byNode[a.Node]
		if !a.Open() || !ok {
			continue
		}
		open[sevKey{p, a.Severity}]++
		if a.Kind == fleet.EventResidency {
			viol[p]++
		}
	}
	for k, n := range open {
		ch <- constMetric(alertsOpen, prometheus.GaugeValue, float64(n), k.p.region, k.p.provider, k.p.jurisdiction, string(k.sev))
	}
	for p, n := range viol {
		ch <- constMetric(violations, prometheus.GaugeValue, float64(n), p.region, p.provider, p.jurisdiction)
	}
}

func emit(ch chan<- prometheus.Metric, d *wire.DeviceView, ms []devMetric, lv []string) {
	for _, dm := range ms {
		v, ok := d.Metrics[dm.m.String()]
		if !ok {
			continue
		}
		ch <- constMetric(dm.desc, prometheus.GaugeValue, v*dm.scale, lv...)
	}
}

// units turns micro-units into currency units for export (the only place
// money becomes a float: Prometheus samples are floats).
func units(micros int64) float64 { return float64(micros) / fleet.MicrosPerUnit }

// constMetric is prometheus.MustNewConstMetric without the panic: a value
// that cannot be a metric (a label that is not UTF-8) becomes an invalid
// metric, which the registry reports as an error while the rest is served.
func constMetric(desc *prometheus.Desc, vt prometheus.ValueType, v float64, lv ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(desc, vt, v, lv...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}
