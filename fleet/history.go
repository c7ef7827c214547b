package fleet

import (
	"strings"
	"time"
)

// MaxHistoryPoints bounds the points of one history series, whatever the
// range: the aggregator downsamples to the range's step.
const MaxHistoryPoints = 300

// HistoryRange is a span of history that viewers ask for by name, and the
// step its points are summed into (aligned to multiples of Step since the
// Unix epoch, so that rollup minutes and hours fall into whole points).
type HistoryRange struct {
	Name string
	Span time.Duration
	Step time.Duration
}

// Points is how many points a series of r has.
func (r HistoryRange) Points() int { return int(r.Span / r.Step) }

// HistoryRanges are the ranges the history API serves, shortest first:
// 1m and 15m come from the aggregator's live ring, 1h and 24h from the
// minute rollups, 7d from the hour rollups (each with the ring for its
// newest minutes).
var HistoryRanges = []HistoryRange{
	{Name: "1m", Span: time.Minute, Step: time.Second},           // 60 points
	{Name: "15m", Span: 15 * time.Minute, Step: 5 * time.Second}, // 180
	{Name: "1h", Span: time.Hour, Step: time.Minute},             // 60
	{Name: "24h", Span: 24 * time.Hour, Step: 5 * time.Minute},   // 288
	{Name: "7d", Span: 7 * 24 * time.Hour, Step: time.Hour},      // 168
}

// DefaultHistoryRange is the range viewers start with.
const DefaultHistoryRange = "15m"

// LookupHistoryRange returns the range called name ("15m"), ok false when
// there is none.
func LookupHistoryRange(name string) (HistoryRange, bool) {
	for _, r := range HistoryRanges {
		if strings.EqualFold(r.Name, name) {
			return r, true
		}
	}
	return HistoryRange{}, false
}

// HistoryBucket is the sums of one group's samples within one step of a
// history range, as the store's rollups and the aggregator's ring both
// yield them, so that the two merge. Device means (power, memory) are
// summed over the group's devices: a region's power is the sum of its
// GPUs' mean power in the step.
type HistoryBucket struct {
	Group    string // "" (everything asked for), a region, or a device index in decimal
	Start    int64  // Unix ms of the step's start
	UtilN    int64  // samples reporting utilisation
	UtilSum  float64
	UtilMax  float64
	Power    float64 // W, sum over devices of each one's mean
	PowerN   int     // devices that reported power
	MemUsed  float64 // bytes, like Power
	MemN     int
	TempMax  float64 // °C
	TempN    int     // devices that reported a temperature
	Reported int64   // ms of GPU time reported (rollups) or samples × step (ring)
	Idle     int64   // of Reported, ms under the idle threshold
}

// HistoryQuery selects what the store sums: one node, one region or the
// whole fleet, grouped by nothing, by region or by device.
type HistoryQuery struct {
	Node, Region string
	By           string // "", "region" or "device"
	From, To     time.Time
	Step         time.Duration
}
