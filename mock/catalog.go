package mock

import (
	"strconv"

	"github.com/fleettop/fleettop/fleet"
)

// Region is a place where the simulated fleet rents (or owns) machines.
type Region struct {
	Name         string // shown to users, e.g. "Singapore"
	Code         string // short prefix of node ids, e.g. "sin"
	Jurisdiction string // ISO 3166-1 alpha-2
	TimeZone     string // IANA zone; inference load follows its local day
	Home         bool   // a home site (owned hardware, internal chargeback)
}

// Regions are the simulated regions, in the order the default fleet
// interleaves them.
var Regions = []Region{
	{Name: "Singapore", Code: "sin", Jurisdiction: "SG", TimeZone: "Asia/Singapore"},
	{Name: "Johor", Code: "jhb", Jurisdiction: "MY", TimeZone: "Asia/Kuala_Lumpur"},
	{Name: "Dubai", Code: "dxb", Jurisdiction: "AE", TimeZone: "Asia/Dubai"},
	{Name: "Riyadh", Code: "ruh", Jurisdiction: "SA", TimeZone: "Asia/Riyadh"},
	{Name: "Hangzhou", Code: "hgh", Jurisdiction: "CN", TimeZone: "Asia/Shanghai", Home: true},
	{Name: "Beijing", Code: "pek", Jurisdiction: "CN", TimeZone: "Asia/Shanghai", Home: true},
}

// Model is an accelerator model and the shape of the node that carries it.
type Model struct {
	Key        string // short name used in node ids, e.g. "h100"
	Name       string // as the driver reports it
	Vendor     fleet.Vendor
	PerNode    int     // accelerators per node
	MemMiB     uint64  // memory per device as the driver reports it
	PowerLimit float64 // watts
	IdlePower  float64 // watts at rest
	MaxSM      float64 // MHz, boost clock
	IdleSM     float64 // MHz, idle clock
	MemClock   float64 // MHz
	HasFan     bool    // PCIe cards with a reported fan
	BaseUSD    float64 // typical on-demand price per GPU-hour, USD
	Driver     string
	Toolkit    string // CUDA or CANN version
}

// Models are the simulated node types.
var Models = map[string]Model{
	"h100": {Key: "h100", Name: "NVIDIA H100 80GB HBM3", Vendor: fleet.VendorNVIDIA, PerNode: 8, MemMiB: 81559,
		PowerLimit: 700, IdlePower: 72, MaxSM: 1980, IdleSM: 345, MemClock: 2619, BaseUSD: 2.49,
		Driver: "550.127.05", Toolkit: "12.4"},
	"h200": {Key: "h200", Name: "NVIDIA H200", Vendor: fleet.VendorNVIDIA, PerNode: 8, MemMiB: 143771,
		PowerLimit: 700, IdlePower: 76, MaxSM: 1980, IdleSM: 345, MemClock: 3201, BaseUSD: 3.49,
		Driver: "560.35.03", Toolkit: "12.6"},
	"h20": {Key: "h20", Name: "NVIDIA H20", Vendor: fleet.VendorNVIDIA, PerNode: 8, MemMiB: 97871,
		PowerLimit: 400, IdlePower: 58, MaxSM: 1980, IdleSM: 345, MemClock: 2619, BaseUSD: 1.45,
		Driver: "550.127.05", Toolkit: "12.4"},
	"a100": {Key: "a100", Name: "NVIDIA A100-SXM4-80GB", Vendor: fleet.VendorNVIDIA, PerNode: 8, MemMiB: 81920,
		PowerLimit: 400, IdlePower: 55, MaxSM: 1410, IdleSM: 210, MemClock: 1593, BaseUSD: 1.39,
		Driver: "535.216.03", Toolkit: "12.2"},
	"l40s": {Key: "l40s", Name: "NVIDIA L40S", Vendor: fleet.VendorNVIDIA, PerNode: 4, MemMiB: 46068,
		PowerLimit: 350, IdlePower: 34, MaxSM: 2520, IdleSM: 210, MemClock: 9001, HasFan: true, BaseUSD: 0.99,
		Driver: "550.127.05", Toolkit: "12.4"},
	"910b": {Key: "910b", Name: "Ascend 910B", Vendor: fleet.VendorAscend, PerNode: 8, MemMiB: 65536,
		PowerLimit: 400, IdlePower: 82, MaxSM: 1800, IdleSM: 800, MemClock: 1600, BaseUSD: 1.25,
		Driver: "24.1.rc2", Toolkit: "8.0.RC3"},
}

// currencyPerUSD converts the catalogue's USD list prices into the local
// currencies leases are priced in (approximate market rates; AED and SAR are
// pegged).
var currencyPerUSD = map[string]float64{
	"USD": 1, "SGD": 1.34, "MYR": 4.45, "AED": 3.6725, "SAR": 3.75, "CNY": 7.20,
}

// Workload is what a node spends its day doing.
type Workload uint8

// Workload shapes.
const (
	Idle      Workload = iota // leased, nothing running: money burning
	Training                  // long job: steady high utilisation, memory near full, power near limit
	Inference                 // serving: follows the region's local day
	Notebook                  // interactive: bursty, memory held between bursts
)

var workloadNames = [...]string{"idle", "training", "inference", "notebook"}

func (w Workload) String() string { return workloadNames[w] }

// group is one row of the base fleet: count nodes of one model at one
// provider doing one kind of work.
type group struct {
	region   string
	provider string
	currency string
	model    string
	count    int
	work     Workload
	job      string // job id prefix ("" for idle)
	team     string
	class    string // data class
	reserved bool
	billing  fleet.Billing
	owned    bool // the company's own hardware: a fixed site that does not grow with the rented fleet
}

// baseGroups is the 40-node base block (about 300 accelerators). Smaller
// fleets take its first nodes after interleaving the regions, so even a
// handful of nodes spans several regions. Larger fleets repeat its rented
// groups only: a company rents more capacity as it grows, while its own
// data centres (the owned Ascend sites) stay the size they are.
var baseGroups = []group{
	// Singapore: the biggest site, three providers.
	{"Singapore", "Merlion Cloud", "USD", "h100", 4, Training, "llm-pretrain", "foundation", "internal", true, fleet.BillPerStartedHour, false},
	{"Singapore", "StraitsGPU", "SGD", "h200", 2, Inference, "chat-serve", "assistant", "pii", false, fleet.BillPerSecond, false},
	{"Singapore", "StraitsGPU", "SGD", "h100", 1, Training, "cs-finetune", "cn-support", "cn-customer", false, fleet.BillPerSecond, false},
	{"Singapore", "Lion City Compute", "SGD", "l40s", 2, Notebook, "nb", "research", "internal", false, fleet.BillPerSecond, false},
	{"Singapore", "Lion City Compute", "SGD", "a100", 2, Idle, "", "", "", false, fleet.BillPerStartedHour, false},
	{"Singapore", "Lion City Compute", "SGD", "h100", 1, Training, "vision-train", "perception", "internal", true, fleet.BillPerStartedHour, false},
	// Johor: cheaper power across the causeway.
	{"Johor", "Iskandar DC", "MYR", "h100", 3, Training, "speech-train", "speech", "internal", true, fleet.BillPerStartedHour, false},
	{"Johor", "Iskandar DC", "MYR", "a100", 1, Notebook, "nb", "research", "internal", false, fleet.BillPerSecond, false},
	{"Johor", "Nusajaya GPU", "USD", "h200", 2, Inference, "search-rank", "search", "pii", false, fleet.BillPerSecond, false},
	{"Johor", "Nusajaya GPU", "USD", "l40s", 2, Inference, "embed-serve", "search", "internal", false, fleet.BillPerSecond, false},
	// Dubai.
	{"Dubai", "Gulf Compute", "AED", "h100", 2, Inference, "chat-serve-me", "assistant", "pii", false, fleet.BillPerSecond, false},
	{"Dubai", "Gulf Compute", "AED", "h200", 1, Training, "rl-tune", "foundation", "internal", true, fleet.BillPerStartedHour, false},
	{"Dubai", "Desert Cloud", "USD", "a100", 2, Training, "ads-train", "ads", "internal", false, fleet.BillPerStartedHour, false},
	{"Dubai", "Desert Cloud", "USD", "l40s", 1, Idle, "", "", "", false, fleet.BillPerSecond, false},
	// Riyadh.
	{"Riyadh", "Najd AI", "SAR", "h100", 3, Training, "arabic-llm", "foundation", "internal", true, fleet.BillPerStartedHour, false},
	{"Riyadh", "Red Sand Compute", "SAR", "h200", 2, Inference, "chat-serve-sa", "assistant", "pii", false, fleet.BillPerSecond, false},
	{"Riyadh", "Red Sand Compute", "SAR", "a100", 1, Idle, "", "", "", false, fleet.BillPerStartedHour, false},
	// Home sites in China.
	{"Hangzhou", "Hangzhou Home DC", "CNY", "910b", 3, Training, "cn-llm", "cn-foundation", "cn-customer", true, fleet.BillPerSecond, true},
	{"Hangzhou", "West Lake Colo", "CNY", "h20", 2, Inference, "cn-assist", "cn-support", "cn-customer", false, fleet.BillPerSecond, false},
	{"Beijing", "Beijing Home DC", "CNY", "910b", 2, Inference, "cn-search", "cn-search", "cn-customer", true, fleet.BillPerSecond, true},
	{"Beijing", "Haidian Colo", "CNY", "h20", 1, Notebook, "nb", "cn-research", "cn-customer", false, fleet.BillPerSecond, false},
}

// USDRates returns the value of one unit of each lease currency in US
// dollars, as decimal strings: the rate table the demo's aggregator uses, so
// its totals match the simulated market.
func USDRates() map[string]string {
	out := make(map[string]string, len(currencyPerUSD))
	for c, per := range currencyPerUSD {
		if c != "USD" {
			out[c] = strconv.FormatFloat(1/per, 'f', 4, 64)
		}
	}
	return out
}
