package tui

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// fixedNow is the clock of every fixture and golden screen.
var fixedNow = time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)

func usd(units float64) fleet.Money {
	return fleet.Money{Micros: int64(units * 1e6), Currency: "USD"}
}

type nodeSpec struct {
	id, host, region, jur, provider, model, state string
	gpus                                          int
	mem                                           uint64
	limit, price                                  float64
	util                                          []float64 // per GPU; nil: absent
	jobs                                          []fleet.Job
}

func makeNode(s nodeSpec) wire.NodeView {
	nv := wire.NodeView{
		ID: s.id, Hostname: s.host, Region: s.region, Jurisdiction: s.jur, Provider: s.provider,
		State: s.state, LastSeen: fixedNow.Add(-2 * time.Second), Seq: 1000,
		Lease: fleet.Lease{ID: "L-" + s.id, PricePerGPUHour: usd(s.price), Billing: fleet.BillPerSecond,
			End: fixedNow.Add(time.Duration(len(s.id)) * 24 * time.Hour)},
		BurnPerHour: usd(s.price * float64(s.gpus)),
		Host:        map[string]float64{"cpu_util": 0.25, "load1": 12.5, "mem_used": 200 << 30, "mem_total": 1 << 40},
	}
	if s.state == wire.StateOffline {
		nv.LastSeen = fixedNow.Add(-7 * time.Minute)
	}
	vendor := fleet.VendorNVIDIA
	if s.jur == "CN" || s.model == "Ascend 910B" {
		vendor = fleet.VendorAscend
	}
	for i := range s.gpus {
		d := wire.DeviceView{Index: i, UUID: fmt.Sprintf("GPU-%s-%d", s.id, i), Vendor: vendor, Model: s.model,
			MemoryTotal: s.mem, PowerLimit: s.limit, Metrics: map[string]float64{}}
		if s.util != nil {
			u := s.util[i%len(s.util)]
			d.Util = &u
			d.Metrics["util"] = u
			d.Metrics["mem_used"] = float64(s.mem) * u * 0.9
			d.Metrics["power"] = 80 + (s.limit-80)*u
			d.Metrics["temp"] = 35 + 45*u + float64(i)
			d.Metrics["sm_clock"] = 1980
			d.Metrics["mem_clock"] = 2619
			if strings.Contains(s.model, "H100") { // GPM: Hopper only
				d.Metrics["sm_active"] = math.Round(u*0.6*100) / 100
			}
		}
		nv.Devices = append(nv.Devices, d)
	}
	for i, j := range s.jobs {
		nv.Procs = append(nv.Procs, fleet.Process{Device: i, PID: uint32(4100 + i), Name: "python3",
			UsedMemory: 40 << 30, Job: j})
	}
	return nv
}

var (
	jobLLM   = fleet.Job{ID: "train-llm-7", Source: "slurm", Team: "research", DataClass: "public"}
	jobCN    = fleet.Job{ID: "ft-cn-42", Source: "env", Team: "apac", DataClass: "cn-customer"}
	jobInfer = fleet.Job{ID: "infer-sea", Source: "k8s", Team: "product", DataClass: "sg-pii"}
)

// fixtureMsgs is a fixed fleet seen by two aggregators (Asia and Gulf).
func fixtureMsgs() []*wire.WatchMsg {
	h100, h200, h20, a100, ascend := "NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA H20", "NVIDIA A100-SXM4-80GB", "Ascend 910B"
	asia := []wire.NodeView{
		makeNode(nodeSpec{id: "sg-a1", host: "sin-h100-01", region: "Singapore", jur: "SG", provider: "Equinix", model: h100, state: wire.StateOnline,
			gpus: 8, mem: 80 << 30, limit: 700, price: 2.5, util: []float64{0.92, 0.88, 0.95, 0.9}, jobs: []fleet.Job{jobLLM, jobLLM}}),
		makeNode(nodeSpec{id: "sg-a2", host: "sin-h100-02", region: "Singapore", jur: "SG", provider: "Equinix", model: h100, state: wire.StateOnline,
			gpus: 8, mem: 80 << 30, limit: 700, price: 2.5, util: []float64{0.02, 0.01}, jobs: []fleet.Job{jobInfer}}),
		makeNode(nodeSpec{id: "sg-b1", host: "sin-h200-01", region: "Singapore", jur: "SG", provider: "Digital Realty", model: h200, state: wire.StateStale,
			gpus: 8, mem: 141 << 30, limit: 700, price: 3.8, util: []float64{0.55, 0.6}}),
		makeNode(nodeSpec{id: "my-j1", host: "jhb-h20-01", region: "Johor", jur: "MY", provider: "Yondr", model: h20, state: wire.StateOnline,
			gpus: 8, mem: 96 << 30, limit: 400, price: 1.2, util: []float64{0.75, 0.7}, jobs: []fleet.Job{jobCN, jobLLM}}),
		makeNode(nodeSpec{id: "my-j2", host: "jhb-a100-01", region: "Johor", jur: "MY", provider: "Yondr", model: a100, state: wire.StateOffline,
			gpus: 4, mem: 80 << 30, limit: 400, price: 1.1}),
		makeNode(nodeSpec{id: "sg-h1", host: "home-910b-01", region: "Home DC", jur: "SG", provider: "self", model: ascend, state: wire.StateOnline,
			gpus: 8, mem: 64 << 30, limit: 310, price: 0.9, util: []float64{0.4, 0.35}}),
	}
	asia[0].Events = []fleet.Event{
		{Time: fixedNow.Add(-40 * time.Minute), Kind: fleet.EventThermal, Severity: fleet.SevWarning, Device: 2, Message: "thermal slowdown at 87°C"},
		{Time: fixedNow.Add(-5 * time.Minute), Kind: fleet.EventXID, Severity: fleet.SevCritical, Device: 5, Code: 79, Message: "XID 79: GPU has fallen off the bus"},
	}
	gulf := []wire.NodeView{
		makeNode(nodeSpec{id: "ae-d1", host: "dxb-h100-01", region: "Dubai", jur: "AE", provider: "G42", model: h100, state: wire.StateOnline,
			gpus: 8, mem: 80 << 30, limit: 700, price: 2.9, util: []float64{0.81, 0.83}, jobs: []fleet.Job{jobCN}}),
		makeNode(nodeSpec{id: "ae-d2", host: "dxb-h100-02", region: "Dubai", jur: "AE", provider: "G42", model: h100, state: wire.StateOnline,
			gpus: 8, mem: 80 << 30, limit: 700, price: 2.9, util: []float64{0.0}}),
	}
	asiaSum := wire.Summary{Currency: "USD", GPUsOnline: 32, GPUsStale: 8, GPUsOffline: 4, NodesOnline: 4, NodesStale: 1, NodesOffline: 1,
		NodesDegraded: 1, GPUsLost: 1, GPUsBlind: 2, BlindBurnPerHour: usd(5.8), PrepaidToday: usd(1.5),
		Util: 0.52, Burn: wire.Burn{BurnPerHour: usd(108.4), IdleBurn: usd(18.75)}, SpendToday: usd(1030.8), SpendMonth: usd(41234.56),
		ProjectedMonth: usd(80655.1), AlertsOpen: 3,
		Costs: []wire.CostLine{
			{By: "region", Group: "Singapore", GPUs: 24, Burn: wire.Burn{BurnPerHour: usd(70.4), IdleBurn: usd(18.75)}, SpendToday: usd(668.8), SpendMonth: usd(26780), IdleSpend: usd(4100), Budget: usd(40000)},
			{By: "region", Group: "Johor", GPUs: 12, Burn: wire.Burn{BurnPerHour: usd(9.6)}, SpendToday: usd(91.2), SpendMonth: usd(5400)},
			{By: "region", Group: "Home DC", GPUs: 8, Burn: wire.Burn{BurnPerHour: usd(7.2)}, SpendToday: usd(68.4), SpendMonth: usd(2700)},
			{By: "team", Group: "research", GPUs: 12, Burn: wire.Burn{BurnPerHour: usd(25)}, SpendToday: usd(237.5), SpendMonth: usd(9000), Budget: usd(20000)},
		},
		LeasesEnding: []wire.LeaseEnding{{Node: "sg-b1", Lease: "L-sg-b1", GPUs: 8, End: fixedNow.Add(3*24*time.Hour + 4*time.Hour)}},
	}
	gulfSum := wire.Summary{Currency: "USD", GPUsOnline: 16, NodesOnline: 2, NodesDegraded: 1, PrepaidToday: usd(0.5), Util: 0.41,
		Burn: wire.Burn{BurnPerHour: usd(46.4), IdleBurn: usd(23.2)}, SpendToday: usd(440.8), SpendMonth: usd(17400.5), ProjectedMonth: usd(34520), AlertsOpen: 1,
		Costs: []wire.CostLine{
			{By: "region", Group: "Dubai", GPUs: 16, Burn: wire.Burn{BurnPerHour: usd(46.4), IdleBurn: usd(23.2)}, SpendToday: usd(440.8), SpendMonth: usd(17400.5), IdleSpend: usd(8700)},
			{By: "team", Group: "apac", GPUs: 8, Burn: wire.Burn{BurnPerHour: usd(23.2)}, SpendToday: usd(220.4), SpendMonth: usd(8700)},
		},
	}
	asiaJobs := []wire.JobView{
		{Job: jobLLM, Regions: []string{"Johor", "Singapore"}, Jurisdictions: []string{"MY", "SG"}, Nodes: []string{"my-j1", "sg-a1"}, GPUs: 3,
			Util: 0.86, BurnPerHour: usd(6.2), Spend: usd(1488), Allowed: true},
		{Job: jobCN, Regions: []string{"Johor"}, Jurisdictions: []string{"MY"}, Nodes: []string{"my-j1"}, GPUs: 1, Util: 0.75,
			BurnPerHour: usd(1.2), Spend: usd(28.8), Allowed: true},
		{Job: jobInfer, Regions: []string{"Singapore"}, Jurisdictions: []string{"SG"}, Nodes: []string{"sg-a2"}, GPUs: 1, Util: 0.02,
			BurnPerHour: usd(2.5), Spend: usd(60), Allowed: true},
	}
	gulfJobs := []wire.JobView{
		{Job: jobCN, Regions: []string{"Dubai"}, Jurisdictions: []string{"AE"}, Nodes: []string{"ae-d1"}, GPUs: 1, Util: 0.81,
			BurnPerHour: usd(2.9), Spend: usd(69.6), Allowed: false, Violation: "cn-customer not allowed in AE"},
	}
	asiaAlerts := []fleet.Alert{
		{ID: "xid/sg-a1/5", Kind: fleet.EventXID, Severity: fleet.SevCritical, Node: "sg-a1", Region: "Singapore", Device: 5,
			Message: "XID 79: GPU has fallen off the bus", Start: fixedNow.Add(-5 * time.Minute)},
		{ID: "offline/my-j2", Kind: fleet.EventOffline, Severity: fleet.SevWarning, Node: "my-j2", Region: "Johor", Device: -1,
			Message: "node stopped reporting", Start: fixedNow.Add(-7 * time.Minute)},
		{ID: "idle/sg-a2", Kind: fleet.EventIdle, Severity: fleet.SevInfo, Node: "sg-a2", Region: "Singapore", Device: -1,
			Message: "8 GPUs leased and idle for 2h", Start: fixedNow.Add(-2 * time.Hour)},
		{ID: "thermal/sg-a1/2", Kind: fleet.EventThermal, Severity: fleet.SevWarning, Node: "sg-a1", Region: "Singapore", Device: 2,
			Message: "thermal slowdown", Start: fixedNow.Add(-50 * time.Minute), End: fixedNow.Add(-38 * time.Minute)},
	}
	gulfAlerts := []fleet.Alert{
		{ID: "residency/ft-cn-42/ae-d1", Kind: fleet.EventResidency, Severity: fleet.SevCritical, Node: "ae-d1", Region: "Dubai", Device: -1,
			Job: "ft-cn-42", Message: "cn-customer data processed in AE", Start: fixedNow.Add(-12 * time.Minute)},
	}
	return []*wire.WatchMsg{
		{Version: 1, Kind: wire.WatchSnapshot, Time: fixedNow, Aggregator: "asia", Nodes: asia, Summary: asiaSum, Jobs: asiaJobs, Alerts: asiaAlerts},
		{Version: 1, Kind: wire.WatchSnapshot, Time: fixedNow, Aggregator: "gulf", Nodes: gulf, Summary: gulfSum, Jobs: gulfJobs, Alerts: gulfAlerts},
	}
}

// fixtureSnapshot merges the fixture as the watch source would.
func fixtureSnapshot() *Snapshot {
	f := NewMerger([]Endpoint{{URL: "http://asia:8443"}, {URL: "http://gulf:8443"}}, "", 0.05)
	for i, m := range fixtureMsgs() {
		f.SetConn(i, ConnLive, nil, fixedNow)
		f.Apply(i, m, fixedNow)
	}
	return f.Snapshot(fixedNow)
}

func fleetMoney(micros int64, cur string) fleet.Money {
	return fleet.Money{Micros: micros, Currency: cur}
}
