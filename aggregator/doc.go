// Package aggregator is the jump host's service: it authenticates collectors
// and viewers, ingests sequenced samples, keeps the live fleet in memory and
// serves it to viewers, exporters and the HTTP API.
//
// The parts, by file: ingest.go (collector sessions: Hello, samples, acks),
// node.go and live.go (the live fleet), watch.go and viewjson.go (viewers),
// api.go (HTTP routes), limits.go (bounds on what a token may hold),
// marks.go (operators' alert marks), tokens.go (who may do what), and
// hooks.go (what the aggregator needs from the store and the insight engine).
package aggregator
