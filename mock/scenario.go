// Package mock simulates a leased, multi-region GPU and NPU fleet: regions with
// jurisdictions and time zones, providers and lease prices, node types,
// workloads, jobs with data classes, and faults over time. It drives simulated
// collector sources (pure Go) and, with cgo, go-nvml's mock server.
//
// Everything is deterministic: the same seed gives the same fleet, and every
// reading is a function of (seed, node, device, simulated time), apart from
// counters such as energy that integrate what came before.
package mock

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
	_ "time/tzdata" // the regions' IANA zones, even on hosts without zoneinfo

	"github.com/fleettop/fleettop/fleet"
)

// DefaultNodes is the size of the default fleet: about 300 accelerators.
const DefaultNodes = 40

// Config chooses a scenario.
type Config struct {
	Nodes int       // number of nodes; 0 means DefaultNodes
	Seed  int64     // same seed, same fleet and values
	Start time.Time // simulated time at which the scenario starts; zero: now
}

// Scenario is a simulated fleet.
type Scenario struct {
	Seed  int64
	Start time.Time
	Nodes []*Node
}

// Node is one simulated machine.
type Node struct {
	// Info is the node's identity, placement, lease and inventory, as its
	// collector would introduce it.
	Info     fleet.Node
	Model    Model
	Work     Workload
	Block    int // copy of the base block this node belongs to
	Home     bool
	TimeZone string

	start      time.Time
	key        uint64      // per-node hash key derived from the seed
	jobKey     uint64      // shared by every node of a job, so a job's nodes move together
	utcOffset  float64     // seconds east of UTC (the regions have no daylight saving)
	ambient    float64     // inlet temperature, °C
	thermalR   float64     // °C per watt
	jobs       []fleet.Job // per device; zero Job: nothing running
	procName   string      // process name on this node's devices
	faults     []Fault     // scheduled faults, repeating every hour
	hostCPUs   float64     //
	hostMem    float64     // bytes
	bootAgo    float64     // seconds between boot and the scenario start
	energyBase []float64   // joules at the scenario start, per device
	outageSpan [2]float64  // dark window within each hour (seconds); zero: never dark
	inst       []instance  // MIG instances, devices after the physical ones
}

// FaultKind names a scheduled fault.
type FaultKind uint8

// Fault kinds.
const (
	FaultXID     FaultKind = iota // an XID error on one device (Code: 48, 63, 79, 94)
	FaultThermal                  // cooling trouble: the node runs hot and throttles
	FaultHealth                   // an Ascend device reports a degraded health state
	FaultDark                     // the node goes dark (power or network) and comes back
)

var faultNames = [...]string{"xid", "thermal", "health", "dark"}

func (k FaultKind) String() string { return faultNames[k] }

// Fault is a fault that recurs every simulated hour, From..Until seconds after
// the start of the hour (counted from the scenario start).
type Fault struct {
	Kind   FaultKind
	Code   int64 // XID for FaultXID
	Device int   // device index; -1 for the whole node. XID 79 moves to the next device each hour.
	From   float64
	Until  float64
}

// faultPlan places the scripted faults in the base block: which group (by job
// prefix and model), which node of the group, and when within each hour.
var faultPlan = []struct {
	job, model string
	node       int
	f          Fault
}{
	{"vision-train", "h100", 0, Fault{Kind: FaultThermal, Device: -1, From: 60, Until: 1260}},
	{"arabic-llm", "h100", 1, Fault{Kind: FaultXID, Code: 48, Device: 2, From: 120, Until: 720}},
	{"chat-serve-me", "h100", 0, Fault{Kind: FaultXID, Code: 79, Device: 5, From: 180, Until: 2400}},
	{"speech-train", "h100", 0, Fault{Kind: FaultXID, Code: 63, Device: 6, From: 300, Until: 900}},
	{"", "a100", 0, Fault{Kind: FaultDark, Device: -1, From: 360, Until: 660}}, // Johor notebooks node, see below
	{"chat-serve", "h200", 1, Fault{Kind: FaultXID, Code: 94, Device: 3, From: 480, Until: 1080}},
	{"cn-search", "910b", 1, Fault{Kind: FaultHealth, Device: 4, From: 900, Until: 1500}},
}

// darkGroup is the group whose first node goes dark: the Johor notebooks.
const darkGroupRegion, darkGroupModel = "Johor", "a100"

var notebookUsers = []string{"amir", "bo", "chen", "dewi", "farah", "hui", "jun", "kumar", "lina", "mei", "nadia", "omar", "priya", "rui", "siti", "wei"}

// New builds the scenario for cfg.
func New(cfg Config) (*Scenario, error) {
	n := cfg.Nodes
	if n == 0 {
		n = DefaultNodes
	}
	if n < 0 {
		return nil, fmt.Errorf("mock: %d nodes: want a positive number", n)
	}
	start := cfg.Start
	if start.IsZero() {
		start = time.Now().Round(0)
	}
	regions := map[string]Region{}
	for _, r := range Regions {
		regions[r.Name] = r
	}
	order := interleave()
	rented := make([]slot, 0, len(order))
	for _, sl := range order {
		if !baseGroups[sl.group].owned {
			rented = append(rented, sl)
		}
	}
	sc := &Scenario{Seed: cfg.Seed, Start: start, Nodes: make([]*Node, 0, n)}
	locs := map[string]float64{}
	for i := range n {
		// The first block is the whole base block; later blocks repeat its
		// rented nodes only (see baseGroups).
		slot, block := order[i%len(order)], 0
		if i >= len(order) {
			j := i - len(order)
			slot, block = rented[j%len(rented)], 1+j/len(rented)
		}
		nd, err := newNode(cfg.Seed, start, i, block, slot, regions[baseGroups[slot.group].region], locs)
		if err != nil {
			return nil, err
		}
		sc.Nodes = append(sc.Nodes, nd)
	}
	return sc, nil
}

// slot is one node of the base block: group and position within the group.
type slot struct{ group, member int }

// interleave orders the base block's nodes region by region in turn, so the
// first few nodes already cover every region.
func interleave() []slot {
	byRegion := make([][]slot, len(Regions))
	for gi, g := range baseGroups {
		for ri, r := range Regions {
			if r.Name == g.region {
				for m := range g.count {
					byRegion[ri] = append(byRegion[ri], slot{gi, m})
				}
			}
		}
	}
	var out []slot
	for more := true; more; {
		more = false
		for ri := range byRegion {
			if len(byRegion[ri]) > 0 {
				out = append(out, byRegion[ri][0])
				byRegion[ri] = byRegion[ri][1:]
				more = true
			}
		}
	}
	return out
}

func newNode(seed int64, start time.Time, index, block int, sl slot, reg Region, locs map[string]float64) (*Node, error) {
	g := baseGroups[sl.group]
	m := Models[g.model]
	// Structural choices come from a PCG stream of their own per node, so
	// node i is the same whatever the fleet size.
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(index)*0x9e3779b97f4a7c15+1))
	key := hash2(uint64(seed), uint64(index)+0xabcdef)
	off, ok := locs[reg.TimeZone]
	if !ok {
		loc, err := time.LoadLocation(reg.TimeZone)
		if err != nil {
			return nil, fmt.Errorf("mock: time zone %s: %w", reg.TimeZone, err)
		}
		_, o := start.In(loc).Zone()
		off = float64(o)
		locs[reg.TimeZone] = off
	}
	id := fmt.Sprintf("%s-%s-%03d", reg.Code, m.Key, index)
	nd := &Node{
		Model: m, Work: g.work, Block: block, Home: reg.Home, TimeZone: reg.TimeZone,
		start: start, key: key, utcOffset: off,
		jobKey:   hash2(uint64(seed), uint64(block)<<16|uint64(sl.group)),
		ambient:  22 + 6*rng.Float64(),
		hostCPUs: 128,
		hostMem:  1 << 40,
		bootAgo:  86400 * (2 + 60*rng.Float64()),
	}
	if m.Key == "h100" || m.Key == "h200" {
		nd.hostCPUs, nd.hostMem = 192, 2<<40
	}
	if m.Key == "l40s" {
		nd.hostCPUs, nd.hostMem = 64, 512<<30
	}
	// Temperature at the power limit, steady state: SXM parts run ~70 °C.
	tempAtLimit := 68 + 6*rng.Float64()
	nd.thermalR = (tempAtLimit - nd.ambient) / m.PowerLimit

	nd.Info = fleet.Node{
		ID:           id,
		Hostname:     id,
		Region:       reg.Name,
		Site:         siteName(reg, g.provider, rng),
		Provider:     g.provider,
		Jurisdiction: reg.Jurisdiction,
		Lease:        lease(rng, start, g, m, reg, id, sl.member),
		Labels:       map[string]string{"workload": g.work.String(), "zone": reg.TimeZone},
		Driver:       m.Driver,
		BootID:       fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uint32(key), uint16(key>>32), uint16(key>>48), uint16(key>>8), key>>16&0xffffffffffff),
	}
	if m.Vendor == fleet.VendorNVIDIA {
		nd.Info.CUDA = m.Toolkit
	} else {
		nd.Info.CUDA = m.Toolkit // CANN version, in the same slot
	}
	nd.Info.Devices = make([]fleet.Device, m.PerNode)
	nd.energyBase = make([]float64, m.PerNode)
	for d := range m.PerNode {
		dk := hash2(key, uint64(d))
		nd.Info.Devices[d] = fleet.Device{
			Index:       d,
			UUID:        deviceUUID(m.Vendor, dk),
			Vendor:      m.Vendor,
			Model:       m.Name,
			PCIBusID:    fmt.Sprintf("00000000:%02X:00.0", busIDs[d%len(busIDs)]),
			MemoryTotal: m.MemMiB << 20,
			PowerLimit:  m.PowerLimit,
		}
		// Energy since driver load: days of uptime at a middling draw.
		nd.energyBase[d] = nd.bootAgo * (m.IdlePower + 0.45*(m.PowerLimit-m.IdlePower))
	}
	nd.jobs, nd.procName = jobsFor(g, m, seed, block, sl, rng)
	for _, mp := range migPlan {
		if g.region == mp.region && g.model == mp.model && sl.member == mp.member {
			nd.addMIG(mp.gpus, notebookUsers, hash2(uint64(seed), uint64(block)<<16|uint64(sl.group)))
		}
	}
	nd.faults = faultsFor(g, sl)
	for _, f := range nd.faults {
		if f.Kind == FaultDark {
			nd.outageSpan = [2]float64{f.From, f.Until}
		}
	}
	return nd, nil
}

var busIDs = []int{0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB}

func deviceUUID(v fleet.Vendor, k uint64) string {
	k2 := mix(k)
	if v == fleet.VendorAscend {
		return fmt.Sprintf("NPU-%08x-%04x-%04x-%04x-%012x", uint32(k), uint16(k>>32), uint16(k>>48), uint16(k2), k2>>16&0xffffffffffff)
	}
	return fmt.Sprintf("GPU-%08x-%04x-%04x-%04x-%012x", uint32(k), uint16(k>>32), uint16(k>>48), uint16(k2), k2>>16&0xffffffffffff)
}

func siteName(reg Region, provider string, rng *rand.Rand) string {
	if reg.Home {
		return reg.Name + " campus"
	}
	return fmt.Sprintf("%s %s-%d", provider, reg.Code, 1+rng.IntN(3))
}

// regionFactor is how much a region's market charges over the list price.
var regionFactor = map[string]float64{
	"Singapore": 1.12, "Johor": 0.92, "Dubai": 1.15, "Riyadh": 1.20, "Hangzhou": 1.0, "Beijing": 1.0,
}

func lease(rng *rand.Rand, start time.Time, g group, m Model, reg Region, id string, member int) fleet.Lease {
	price := m.BaseUSD * regionFactor[reg.Name] * (0.94 + 0.12*rng.Float64())
	if g.reserved {
		price *= 0.78
	}
	local := price * currencyPerUSD[g.currency]
	cents := math.Round(local * 100)
	l := fleet.Lease{
		ID:              fmt.Sprintf("%s-%s", providerCode(g.provider), id),
		PricePerGPUHour: fleet.Money{Micros: int64(cents) * 10_000, Currency: g.currency},
		Billing:         g.billing,
		Reserved:        g.reserved,
		GPUs:            m.PerNode, // the contract: billed whatever the sensors see
		Start:           start.Add(-time.Duration(15+rng.IntN(300)) * 24 * time.Hour).Truncate(time.Hour),
	}
	switch {
	case g.reserved:
		l.End = start.Add(time.Duration(30+rng.IntN(270)) * 24 * time.Hour).Truncate(time.Hour)
	case g.work == Idle && member == 0:
		// Idle on-demand nodes that nobody released: their leases run out soon.
		l.End = start.Add(time.Duration(20+rng.IntN(60)) * time.Hour).Truncate(time.Hour)
	case g.work == Notebook && member == 1:
		l.End = start.Add(time.Duration(3+rng.IntN(4)) * 24 * time.Hour).Truncate(time.Hour)
	}
	return l
}

func providerCode(p string) string {
	b := make([]byte, 0, 4)
	up := true
	for i := 0; i < len(p) && len(b) < 4; i++ {
		c := p[i]
		if c == ' ' {
			up = true
			continue
		}
		if up && c >= 'A' && c <= 'Z' {
			b = append(b, c+'a'-'A')
		}
		up = false
	}
	return string(b)
}

func jobsFor(g group, m Model, seed int64, block int, sl slot, rng *rand.Rand) ([]fleet.Job, string) {
	jobs := make([]fleet.Job, m.PerNode)
	if g.work == Idle {
		return jobs, ""
	}
	num := 1000 + hash2(uint64(seed), uint64(block)<<16|uint64(sl.group))%9000
	switch g.work {
	case Training:
		j := fleet.Job{ID: fmt.Sprintf("%s-%d", g.job, num), Source: "slurm", Team: g.team, DataClass: g.class}
		for d := range jobs {
			jobs[d] = j
		}
		return jobs, "python3"
	case Inference:
		j := fleet.Job{ID: fmt.Sprintf("%s-%d", g.job, num), Source: "k8s", Team: g.team, DataClass: g.class}
		for d := range jobs {
			jobs[d] = j
		}
		if m.Vendor == fleet.VendorAscend {
			return jobs, "mindie_server"
		}
		return jobs, "vllm"
	default: // notebooks: one user per device
		for d := range jobs {
			u := notebookUsers[rng.IntN(len(notebookUsers))]
			jobs[d] = fleet.Job{ID: fmt.Sprintf("nb-%s-%d", u, num%100), Source: "env", Team: g.team, DataClass: g.class}
		}
		return jobs, "ipykernel_launcher"
	}
}

func faultsFor(g group, sl slot) []Fault {
	var out []Fault
	for _, p := range faultPlan {
		if p.f.Kind == FaultDark {
			if g.region == darkGroupRegion && g.model == darkGroupModel && sl.member == p.node {
				out = append(out, p.f)
			}
			continue
		}
		if g.job == p.job && g.model == p.model && sl.member == p.node {
			out = append(out, p.f)
		}
	}
	return out
}

// Faults returns the node's scheduled faults.
func (n *Node) Faults() []Fault { return n.faults }

// Jobs returns the job running on each device (zero Job: none).
func (n *Node) Jobs() []fleet.Job { return n.jobs }

// Dark reports whether the node is dark (powered off or cut off) at t. A
// runner stops the node's collector while it is dark and starts a fresh one
// (as after a reboot) when it comes back.
func (n *Node) Dark(t time.Time) bool {
	if n.outageSpan[1] == 0 {
		return false
	}
	s := n.hourPos(t)
	return s >= n.outageSpan[0] && s < n.outageSpan[1]
}

// NextChange returns the next simulated instant after t at which Dark(t)
// changes; zero when the node never goes dark.
func (n *Node) NextChange(t time.Time) time.Time {
	if n.outageSpan[1] == 0 {
		return time.Time{}
	}
	el := n.elapsed(t)
	hour := math.Floor(el / 3600)
	for h := hour; h < hour+2; h++ {
		for _, edge := range n.outageSpan {
			at := h*3600 + edge
			if at > el {
				return n.start.Add(time.Duration(at * float64(time.Second)))
			}
		}
	}
	return time.Time{}
}

func (n *Node) elapsed(t time.Time) float64 { return t.Sub(n.start).Seconds() }

func (n *Node) hourPos(t time.Time) float64 {
	el := n.elapsed(t)
	return el - 3600*math.Floor(el/3600)
}

// MonthlyBurnUSD is what each region's leases cost in a 30-day month at list
// price, in US dollars (for sizing demo budgets).
func (sc *Scenario) MonthlyBurnUSD() map[string]float64 {
	out := map[string]float64{}
	for _, n := range sc.Nodes {
		p := n.Info.Lease.PricePerGPUHour
		out[n.Info.Region] += float64(p.Micros) / fleet.MicrosPerUnit / currencyPerUSD[p.Currency] * float64(len(n.Info.Devices)) * 24 * 30
	}
	return out
}
