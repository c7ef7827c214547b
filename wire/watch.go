package wire

import (
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// The watch stream (websocket /v1/watch, viewer token) carries JSON text
// messages of type WatchMsg. Version 2 is watch by subscription: what a viewer
// receives does not grow with the fleet.
//
// A viewer may send WatchSubscribe messages (JSON text) at any time; each one
// replaces the previous. A viewer that sends nothing has DefaultSubscription:
// the fleet aggregates and the first DefaultPageRows nodes in the default
// order. The aggregator answers:
//
//   - Fleet: fleet-wide aggregates (summary with per-region/provider/model/
//     team cost lines, one row per region, the nodes that waste most, the
//     leases that end soonest). Their size is bounded by the number of regions,
//     providers, models and teams, never by the number of nodes. Refreshed at
//     most once a second (on a fleet so large that computing them would take
//     more than 0.5 % of a core, less often, but at least every 5 seconds).
//   - FleetAlerts: the most urgent alerts, at most MaxFleetAlerts (version 3;
//     version 2 sends them inside Fleet). They change far less often than
//     the aggregates' figures: 29 of 30 refreshes at 100,000 GPUs left them
//     as they were, and resending them was two thirds of a viewer's bytes.
//   - Page and Rows: the node list the viewer shows, sorted, filtered and
//     paged by the aggregator (NodeQuery); one compact NodeRow per node.
//   - Nodes: full detail (every device and process) of the node the viewer
//     has open (WatchSubscribe.Node).
//   - JobPage: a page of jobs, sorted and filtered by the aggregator, when
//     subscribed (WatchSubscribe.Jobs).
//
// The first message after connecting or subscribing has Kind "snapshot" and
// holds all of the above. Then come "update" messages, each a delta against
// the message the viewer received before it: a section absent from an
// update is unchanged; Fleet, FleetAlerts, Page and JobPage are replaced
// whole when present; Rows holds only the page rows that changed (a viewer keeps the
// rows whose ids are in the current Page.IDs and drops the rest); Nodes
// holds the open node when it changed. Seq increases by one per publication
// of a subscription. A viewer that falls behind is never queued for: its
// next update coalesces every publication it skipped (latest state wins; Seq
// then jumps), so a slow viewer costs the aggregator no memory. Every viewer
// with the same subscription shares one encoding of each message.
//
// Node rows are pushed promptly (a short debounce after ingest, well under a
// second); the Fleet aggregates at most once a second.
//
// Versions. A viewer gets the version its WatchSubscribe names: 2 for a
// viewer that asks for 2, WatchVersion otherwise (and for a viewer that
// never subscribes). Version 2 differs from 3 only in where the alerts are:
// inside Fleet, sent with every change of the aggregates. Version 1 (every
// node in full, every second) is what /api/v1/fleet still returns in its
// "nodes" array (NodeView); viewers of version 1 messages (Nodes holding the
// whole fleet, Summary/Jobs/Alerts at top level) are still understood by
// fleettop's TUI.

// WatchVersion is the version of the watch stream's JSON.
const WatchVersion = 3

// WatchVersionAlertsInFleet is the version whose Fleet holds the alerts.
const WatchVersionAlertsInFleet = 2

// Watch message kinds.
const (
	WatchSnapshot = "snapshot"
	WatchUpdate   = "update"
)

// Page sizes.
const (
	// DefaultPageRows is the node page of a viewer that does not subscribe.
	DefaultPageRows = 30
	// MaxPageRows bounds a page (NodeQuery.Limit, JobQuery.Limit).
	MaxPageRows = 1000
	// MaxFleetAlerts bounds FleetView.Alerts (the most urgent first).
	MaxFleetAlerts = 200
	// FleetIdleTop is how many nodes FleetView.IdleTop ranks.
	FleetIdleTop = 10
	// MaxFleetLeases bounds FleetView.Summary.LeasesEnding (the soonest).
	MaxFleetLeases = 20
)

// Node sort keys (NodeQuery.Sort). Each has a natural direction: names
// ascending, figures descending (busiest, costliest, hottest first); Desc
// reverses it. Ties fall back to the default order.
const (
	SortDefault  = ""         // region, hostname, id
	SortHost     = "host"     // hostname, id
	SortUtil     = "util"     // mean utilisation, highest first (unknown last)
	SortBurn     = "burn"     // burn per hour, highest first
	SortTemp     = "temp"     // hottest device, hottest first (unknown last)
	SortState    = "state"    // state name, then default order
	SortPower    = "power"    // power drawn, highest first
	SortMem      = "mem"      // memory used, most first
	SortProvider = "provider" // provider name
	SortJobs     = "jobs"     // job ids, joined
)

// Job sort keys (JobQuery.Sort), natural direction as for nodes.
const (
	JobSortID        = ""          // id
	JobSortBurn      = "burn"      // burn per hour, highest first
	JobSortUtil      = "util"      // utilisation, highest first
	JobSortGPUs      = "gpus"      // GPUs, most first
	JobSortTeam      = "team"      // team, then id
	JobSortResidency = "residency" // violations first
)

// WatchSubscribe is what a viewer sends to choose what it receives.
type WatchSubscribe struct {
	Version int       `json:"version"` // WatchVersion the viewer speaks
	Nodes   NodeQuery `json:"nodes"`   // the node list page
	// Node is the id of the node the viewer has open ("" none): its full
	// NodeView arrives in WatchMsg.Nodes whenever it changes.
	Node string `json:"node,omitempty"`
	// Jobs subscribes to a page of jobs; nil: none.
	Jobs *JobQuery `json:"jobs,omitempty"`
}

// NodeQuery selects a page of the node list: filter, then sort, then
// [Offset, Offset+Limit).
type NodeQuery struct {
	Sort string `json:"sort,omitempty"` // Sort* constant
	Desc bool   `json:"desc,omitempty"` // reverse the natural direction
	// Filter keeps nodes whose id, hostname, region, site, jurisdiction,
	// provider, state, device models, job ids or lease id contain it
	// (case-insensitive).
	Filter string `json:"filter,omitempty"`
	Offset int    `json:"offset,omitempty"`
	Limit  int    `json:"limit"` // rows; 0 none, capped at MaxPageRows
}

// JobQuery selects a page of jobs like NodeQuery. Filter matches id, team,
// data class, regions, jurisdictions, nodes, violation, and "violation" for
// jobs that break residency.
type JobQuery struct {
	Sort   string `json:"sort,omitempty"`
	Desc   bool   `json:"desc,omitempty"`
	Filter string `json:"filter,omitempty"`
	Offset int    `json:"offset,omitempty"`
	Limit  int    `json:"limit"`
}

// DefaultSubscription is what a viewer that never subscribes receives.
func DefaultSubscription() WatchSubscribe {
	return WatchSubscribe{Version: WatchVersion, Nodes: NodeQuery{Limit: DefaultPageRows}}
}

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
	Aggregator string `json:"aggregator,omitempty"`
	// Seq numbers the publications of one subscription; an update applies
	// on top of the message received before it (Seq jumps when it coalesces
	// publications a slow viewer skipped).
	Seq uint64 `json:"seq,omitempty"`
	// Version 2: the open node's full view, when it changed. Version 1: every
	// node (snapshot) or the changed ones (update).
	Nodes   []NodeView `json:"nodes,omitempty"`
	Removed []string   `json:"removed,omitempty"` // node ids forgotten (version 2: the open node)
	Fleet   *FleetView `json:"fleet,omitempty"`   // fleet aggregates, when changed
	// FleetAlerts are the fleet's most urgent alerts, when they changed
	// (version 3).
	FleetAlerts *FleetAlerts `json:"fleet_alerts,omitempty"`
	Page        *NodePage    `json:"page,omitempty"` // the node page, when its rows or order changed
	Rows        []NodeRow    `json:"rows,omitempty"` // page rows that changed
	JobPage     *JobPage     `json:"job_page,omitempty"`
	// Version 1 only (version 2 sends them inside Fleet).
	Summary Summary       `json:"summary,omitzero"`
	Jobs    []JobView     `json:"jobs,omitempty"`   // every known job (complete list)
	Alerts  []fleet.Alert `json:"alerts,omitempty"` // open alerts and the recently closed (complete list)
}

// FleetView is the fleet at a glance: bounded by the number of groups, not
// nodes. Money is in the aggregator's display currency.
type FleetView struct {
	Summary Summary     `json:"summary"`
	Regions []RegionRow `json:"regions"` // by region name
	// Alerts (version 2; version 3 sends them as WatchMsg.FleetAlerts) are
	// the open ones and the recently closed, most urgent first, at most
	// MaxFleetAlerts; AlertsTotal counts them all.
	Alerts      []fleet.Alert `json:"alerts,omitempty"`
	AlertsTotal int           `json:"alerts_total"`
	Jobs        int           `json:"jobs"` // jobs known
	// IdleTop ranks the nodes whose idle GPUs burn most (at most
	// FleetIdleTop); IdleNodes counts every node with idle burn.
	IdleTop   []NodeRow `json:"idle_top,omitempty"`
	IdleNodes int       `json:"idle_nodes"`
	// DarkTop ranks the offline nodes that still cost money, costliest
	// first (at most FleetIdleTop); DarkNodes counts them all.
	DarkTop   []NodeRow `json:"dark_top,omitempty"`
	DarkNodes int       `json:"dark_nodes"`
	// LeasesEnding counts the leases ending within the horizon; the summary
	// lists the soonest MaxFleetLeases of them.
	LeasesEnding int `json:"leases_ending"`
}

// FleetAlerts are the open alerts and the recently closed, most urgent
// first, at most MaxFleetAlerts (FleetView.AlertsTotal counts them all).
type FleetAlerts struct {
	Alerts []fleet.Alert `json:"alerts"`
}

// RegionRow is one region's nodes added up.
type RegionRow struct {
	Region       string         `json:"region"`
	Jurisdiction string         `json:"jurisdiction"`
	Providers    []string       `json:"providers"`
	Nodes        int            `json:"nodes"`
	GPUs         int            `json:"gpus"`
	Online       int            `json:"online"` // nodes by state
	Stale        int            `json:"stale"`
	Offline      int            `json:"offline"`
	Models       map[string]int `json:"models"`         // device model → count
	Util         *float64       `json:"util,omitempty"` // mean over reporting GPUs of nodes not offline
	MemUsed      float64        `json:"mem_used"`
	MemTotal     float64        `json:"mem_total"`
	Power        float64        `json:"power"`
	Burn
	AlertsOpen int `json:"alerts_open"`
}

// NodePage is the subscribed page of the node list.
type NodePage struct {
	Query  NodeQuery `json:"query"`  // as the aggregator applied it
	Total  int       `json:"total"`  // nodes that pass the filter
	Offset int       `json:"offset"` // of IDs[0] in the sorted, filtered list
	IDs    []string  `json:"ids"`    // the page, in order
}

// NodeRow is one node as a list shows it: identity and figures added up
// over its devices, a few hundred bytes whatever its size. Its site,
// jurisdiction and lease are in the full NodeView (the filter matches them).
type NodeRow struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	Region   string `json:"region"`
	Provider string `json:"provider"`
	State    string `json:"state"`
	// LastSeen is sent for nodes that are not online (the list says since
	// when); zero for online nodes.
	LastSeen time.Time      `json:"last_seen,omitzero"`
	GPUs     int            `json:"gpus"`
	Models   map[string]int `json:"models,omitempty"`  // device model → count
	Util     *float64       `json:"util,omitempty"`    // mean over devices that report it
	MemUsed  float64        `json:"mem_used"`          // bytes, summed
	MemTotal float64        `json:"mem_total"`         // bytes, summed
	Power    float64        `json:"power"`             // watts, summed
	Hottest  *float64       `json:"hottest,omitempty"` // °C
	IdleGPUs int            `json:"idle_gpus"`         // reporting utilisation below the idle threshold
	Jobs     []string       `json:"jobs,omitempty"`    // sorted ids
	// Burn's idle part is burn × idle GPUs / GPUs.
	Burn
}

// JobPage is the subscribed page of jobs.
type JobPage struct {
	Query  JobQuery  `json:"query"`
	Total  int       `json:"total"`
	Offset int       `json:"offset"`
	Jobs   []JobView `json:"jobs"`
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
	Driver  string               `json:"driver,omitempty"` // NVIDIA driver (or Ascend firmware) version
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
	PCIBusID    string       `json:"pci_bus_id,omitempty"`
	// Instance places a MIG instance under its physical GPU (zero: a GPU).
	Instance fleet.MIGInstance `json:"mig_instance,omitzero"`
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
	NodesDegraded int     `json:"nodes_degraded"`
	Util          float64 `json:"util"` // mean over online devices, 0..1
	Burn
	SpendToday fleet.Money `json:"spend_today"`
	// PrepaidToday is the part of SpendToday that hourly-billed leases
	// charged ahead: the rest of each started hour (zero when no lease
	// bills by the hour). Spend figures include it.
	PrepaidToday   fleet.Money `json:"prepaid_today"`
	SpendMonth     fleet.Money `json:"spend_month"`
	ProjectedMonth fleet.Money `json:"projected_month"`
	AlertsOpen     int         `json:"alerts_open"`
	// Regions and Costs are optional richer breakdowns filled by the cost engine.
	Costs []CostLine `json:"costs,omitempty"`
	// LeasesEnding lists leases that end within the configured horizon.
	LeasesEnding []LeaseEnding `json:"leases_ending,omitempty"`
}

// Burn is what something (a node, a region, a group, the fleet) costs per
// hour now, and the part of that its idle GPUs cost. Summary, CostLine,
// RegionRow and NodeRow embed it, so its fields stand flat in their JSON.
type Burn struct {
	BurnPerHour fleet.Money `json:"burn_per_hour"`
	IdleBurn    fleet.Money `json:"idle_burn_per_hour"`
}

// CostLine is spend and burn for one group (by region, provider, model or team).
type CostLine struct {
	By    string `json:"by"`    // "region", "provider", "model", "team"
	Group string `json:"group"` // e.g. "Singapore"
	GPUs  int    `json:"gpus"`
	Burn
	SpendToday fleet.Money `json:"spend_today"`
	SpendMonth fleet.Money `json:"spend_month"`
	IdleSpend  fleet.Money `json:"idle_spend_month"`
	Budget     fleet.Money `json:"budget,omitzero"`
	// ProjectedMonth is the month so far plus what the leases accrue to its
	// end (region, provider and model lines).
	ProjectedMonth fleet.Money `json:"projected_month,omitzero"`
}

// MoneyFields lists the summary's money figures, for code that treats
// them all alike (summing the summaries of several aggregators).
func (s *Summary) MoneyFields() []*fleet.Money {
	return []*fleet.Money{&s.BurnPerHour, &s.IdleBurn, &s.BlindBurnPerHour,
		&s.SpendToday, &s.PrepaidToday, &s.SpendMonth, &s.ProjectedMonth}
}

// MoneyFields lists the line's money figures, as Summary.MoneyFields does.
func (c *CostLine) MoneyFields() []*fleet.Money {
	return []*fleet.Money{&c.BurnPerHour, &c.IdleBurn, &c.SpendToday, &c.SpendMonth,
		&c.IdleSpend, &c.Budget, &c.ProjectedMonth}
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
	Spend         fleet.Money `json:"spend"` // this month (in the aggregator's time zone), from the ledger
	// Allowed is false when the job's data class may not be processed in one
	// of its jurisdictions (a residency violation).
	Allowed   bool   `json:"allowed"`
	Violation string `json:"violation,omitempty"`
}
