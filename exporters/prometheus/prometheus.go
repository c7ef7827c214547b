// Package prometheus exports the live fleet on the aggregator's /metrics and
// through remote_write: NVIDIA devices under the DCGM exporter's names and
// labels, Ascend devices under npu-exporter's, and fleettop's own cost and
// policy series, so that existing Grafana dashboards work unchanged.
//
// Values are converted to the units those exporters use: utilisation in
// percent, framebuffer memory in MiB (DCGM) or HBM in MB (npu-exporter),
// energy in mJ. A metric a device does not report is not emitted.
//
// The series are a table (table.go): one row per device series, label sets
// built once per device on its node's Hello (labels.go, the one place label
// values are sanitised), rendered from live state on each scrape
// (render.go) into the text formats (text.go, handler.go) or remote_write
// requests (remote.go).
package prometheus

import (
	"time"

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
