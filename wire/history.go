package wire

import "time"

// HistoryResponse is the body of GET /api/v1/history: the series of one
// scope (the fleet, a region or a node) over a named range (fleet.HistoryRanges),
// one point per step, oldest first; a point is null where nothing was
// reported. The points are the steps from From to To (exclusive), the last
// one still filling.
type HistoryResponse struct {
	Aggregator string    `json:"aggregator,omitempty"`
	Scope      string    `json:"scope"`        // "fleet", "region" or "node"
	ID         string    `json:"id,omitempty"` // the region or node
	Range      string    `json:"range"`        // "15m"
	StepS      float64   `json:"step_s"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	// Sources says where the points came from: "ring" (the aggregator's
	// live memory), "rollup_minute", "rollup_hour" (SQLite).
	Sources []string        `json:"sources"`
	Series  []HistorySeries `json:"series"`
}

// HistorySeries is one series of a HistoryResponse: the scope itself (the
// fleet, the region, the node), a region of the fleet (by=region) or one
// GPU of the node.
type HistorySeries struct {
	Name    string     `json:"name"`          // "fleet", a region, a node id, "gpu 3"
	Device  *int       `json:"gpu,omitempty"` // the GPU's index, for a GPU's series
	Util    []*float64 `json:"util"`          // mean utilisation, ratio 0..1
	UtilMax []*float64 `json:"util_max"`      // the highest sample's
	Power   []*float64 `json:"power"`         // W: the sum of each GPU's mean
	MemUsed []*float64 `json:"mem_used"`      // bytes, summed like power
	TempMax []*float64 `json:"temp_max"`      // °C, the hottest GPU's
	Idle    []*float64 `json:"idle"`          // share of GPU time under the idle threshold, 0..1
}
