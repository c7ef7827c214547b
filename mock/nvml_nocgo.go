//go:build !cgo

package mock

import "github.com/fleettop/fleettop/collector"

// collectorSources reads the node through the pure-Go simulated source
// (without cgo there is no NVML, real or mock).
func collectorSources(n *Node) ([]collector.Source, error) {
	return []collector.Source{NewSource(n, SourceOptions{})}, nil
}
