package wire

import (
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// The watch stream (websocket /v1/watch, viewer token) carries JSON text
// messages of type WatchMsg: first one with Kind "snapshot" holding the whole
// fleet, then at most one "update" a second holding only the nodes that
// changed since the previous message (coalesced per viewer), plus the current
// summary, jobs and alerts. The same NodeView is what /api/v1/fleet returns in
// its "nodes" array.

// WatchVersion is the version of the watch stream's JSON.
const WatchVersion = 1

// Watch message kinds.
const (
	WatchSnapshot = "snapshot"
	WatchUpdate   = "update"
)

// Node states.
const (
	StateOnline  = "online"
	StateStale   = "stale"   // missed a few intervals
	StateOffline = "offline" // missed many; last_seen tells when
	// StateDegraded is an online node with a device lost (XID 79, or gone
	// from the inventory within one boot) or fewer visible GPUs than its
	// lease pays for (paid but blind).
	StateDegraded = "degraded"
)

// WatchMsg is one message of the watch stream.
type WatchMsg struct {
	Version int       `json:"version"`
	Kind    string    `json:"kind"` // WatchSnapshot or WatchUpdate
	Time    time.Time `json:"time"` // aggregator clock
	// Aggregator names the aggregator (its --name or listen address), so a
	// viewer of several aggregators can tell them apart.
	Aggregator string        `json:"aggregator,omitempty"`
	Nodes      []NodeView    `json:"nodes"`             // snapshot: all; update: changed
	Removed    []string      `json:"removed,omitempty"` // node ids forgotten since last message
	Summary    Summary       `json:"summary"`
	Jobs       []JobView     `json:"jobs,omitempty"`   // every known job (complete list)
	Alerts     []fleet.Alert `json:"alerts,omitempty"` // open alerts and the recently closed (complete list)
}

// NodeView is one node as viewers and /api/v1/fleet see it.
type NodeView struct {
	ID           string      `json:"id"`
	Hostname     string      `json:"hostname"`
	Region       string      `json:"region"`
	Site         string      `json:"site,omitempty"`
	Jurisdiction string      `json:"jurisdiction"`
	Provider     string      `json:"provider"`
	State        string      `json:"state"` // StateOnline, StateDegraded, StateStale, StateOffline
	LastSeen     time.Time   `json:"last_seen"`
	Seq          uint64      `json:"seq"`  // last applied sequence
	Gaps         uint64      `json:"gaps"` // records lost in transit, total
	Lease        fleet.Lease `json:"lease"`
	// GPUs is what the lease bills (its contracted count, else the devices);
	// GPUsBlind of them are paid for but not visible (never enumerated, or
	// lost).
	GPUs      int `json:"gpus"`
	GPUsBlind int `json:"gpus_blind,omitempty"`
	// Sources is each collector source's health, as last reported.
	Sources []fleet.SourceStatus `json:"sources,omitempty"`
	// BurnPerHour is what the node costs per hour now (all its GPUs, lease
	// price × count), converted by the aggregator into its display currency
	// (in the lease currency only when that has no exchange rate).
	BurnPerHour fleet.Money        `json:"burn_per_hour"`
	Host        map[string]float64 `json:"host,omitempty"` // HostMetric.String() → value
	Devices     []DeviceView       `json:"devices"`
	Procs       []fleet.Process    `json:"procs,omitempty"`
	Events      []fleet.Event      `json:"events,omitempty"` // recent, newest last
}

// DeviceView is one device's inventory and latest values. Absent metrics are
// absent from Metrics (never 0). Util is duplicated at top level for
// convenience and is omitted when absent.
type DeviceView struct {
	Index       int          `json:"index"`
	UUID        string       `json:"uuid"`
	Vendor      fleet.Vendor `json:"vendor"`
	Model       string       `json:"model"`
	MemoryTotal uint64       `json:"memory_total"`
	PowerLimit  float64      `json:"power_limit"`
	// State is fleet.DeviceOK, or fleet.DeviceLost for a device that fell
	// off the bus or left the inventory, until its node boots again; a lost
	// device is not counted online.
	State   fleet.DeviceState  `json:"state"`
	Util    *float64           `json:"util,omitempty"` // 0..1
	Metrics map[string]float64 `json:"metrics"`        // fleet.Metric.String() → value
}

// Summary is the fleet at a glance. Money is in the display currency.
type Summary struct {
	Currency    string `json:"currency"`
	GPUsOnline  int    `json:"gpus_online"`
	GPUsStale   int    `json:"gpus_stale"`
	GPUsOffline int    `json:"gpus_offline"`
	// GPUsLost are devices lost to XID 79 or gone from the inventory (until
	// their node boots again); they count in none of the above.
	GPUsLost int `json:"gpus_lost"`
	// GPUsBlind are GPUs the leases bill that are not visible (never
	// enumerated, or lost): "paid but blind"; BlindBurnPerHour is what they
	// cost per hour.
	GPUsBlind        int         `json:"gpus_blind"`
	BlindBurnPerHour fleet.Money `json:"blind_burn_per_hour"`
	NodesOnline      int         `json:"nodes_online"`
	NodesStale       int         `json:"nodes_stale"`
	NodesOffline     int         `json:"nodes_offline"`
	// NodesDegraded are online nodes with a lost or invisible GPU (counted
	// apart from NodesOnline); their visible GPUs count in GPUsOnline.
	NodesDegraded   int         `json:"nodes_degraded"`
	Util            float64     `json:"util"` // mean over online devices, 0..1
	BurnPerHour     fleet.Money `json:"burn_per_hour"`
	IdleBurnPerHour fleet.Money `json:"idle_burn_per_hour"`
	SpendToday      fleet.Money `json:"spend_today"`
	SpendMonth      fleet.Money `json:"spend_month"`
	ProjectedMonth  fleet.Money `json:"projected_month"`
	AlertsOpen      int         `json:"alerts_open"`
	// Regions and Costs are optional richer breakdowns filled by the cost engine.
	Costs []CostLine `json:"costs,omitempty"`
	// LeasesEnding lists leases that end within the configured horizon.
	LeasesEnding []LeaseEnding `json:"leases_ending,omitempty"`
}

// CostLine is spend and burn for one group (by region, provider, model or team).
type CostLine struct {
	By          string      `json:"by"`    // "region", "provider", "model", "team"
	Group       string      `json:"group"` // e.g. "Singapore"
	GPUs        int         `json:"gpus"`
	BurnPerHour fleet.Money `json:"burn_per_hour"`
	IdleBurn    fleet.Money `json:"idle_burn_per_hour"`
	SpendToday  fleet.Money `json:"spend_today"`
	SpendMonth  fleet.Money `json:"spend_month"`
	IdleSpend   fleet.Money `json:"idle_spend_month"`
	Budget      fleet.Money `json:"budget,omitzero"`
	// ProjectedMonth is the month so far plus what the leases accrue to its
	// end (region, provider and model lines).
	ProjectedMonth fleet.Money `json:"projected_month,omitzero"`
}

// LeaseEnding is a lease that ends soon.
type LeaseEnding struct {
	Node  string    `json:"node"`
	Lease string    `json:"lease"`
	GPUs  int       `json:"gpus"`
	End   time.Time `json:"end"`
}

// JobView is one job and where it runs.
type JobView struct {
	fleet.Job
	Regions       []string    `json:"regions"`
	Jurisdictions []string    `json:"jurisdictions"`
	Nodes         []string    `json:"nodes"`
	GPUs          int         `json:"gpus"`
	Util          float64     `json:"util"` // mean over its GPUs, 0..1
	BurnPerHour   fleet.Money `json:"burn_per_hour"`
	Spend         fleet.Money `json:"spend"` // so far
	// Allowed is false when the job's data class may not be processed in one
	// of its jurisdictions (a residency violation).
	Allowed   bool   `json:"allowed"`
	Violation string `json:"violation,omitempty"`
}
