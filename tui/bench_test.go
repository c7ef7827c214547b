package tui

import (
	"fmt"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// bigFleet is a synthetic fleet of gpus GPUs, 8 per node, over 12 regions.
func bigFleet(gpus int) *Snapshot {
	regions := []string{"Singapore", "Johor", "Dubai", "Abu Dhabi", "Riyadh", "Tokyo", "Osaka", "Seoul", "Mumbai", "Sydney", "Frankfurt", "Home DC"}
	nodes := make([]wire.NodeView, 0, gpus/8)
	for i := range gpus / 8 {
		u := float64(i%100) / 100
		nv := makeNode(nodeSpec{id: fmt.Sprintf("n%06d", i), host: fmt.Sprintf("host-%06d", i), region: regions[i%len(regions)],
			jur: "SG", provider: fmt.Sprintf("prov-%d", i%7), model: "NVIDIA H100 80GB HBM3", state: wire.StateOnline,
			gpus: 8, mem: 80 << 30, limit: 700, price: 2.5, util: []float64{u, u / 2},
			jobs: []fleet.Job{{ID: fmt.Sprintf("job-%d", i%500), Team: "t"}}})
		nodes = append(nodes, nv)
	}
	var jobs []wire.JobView
	for j := range 500 {
		jobs = append(jobs, wire.JobView{Job: fleet.Job{ID: fmt.Sprintf("job-%d", j), Team: "t"}, Regions: regions[:2],
			Nodes: []string{"n000001"}, GPUs: gpus / 500, Util: 0.5, Allowed: j%50 != 0})
	}
	f := NewMerger([]Endpoint{{URL: "http://a"}}, "USD", 0.05)
	f.SetConn(0, ConnLive, nil, fixedNow)
	f.Apply(0, &wire.WatchMsg{Version: 1, Kind: wire.WatchSnapshot, Nodes: nodes, Jobs: jobs,
		Summary: wire.Summary{Currency: "USD", GPUsOnline: gpus, Util: 0.5, Burn: wire.Burn{BurnPerHour: usd(2.5 * float64(gpus))}}}, fixedNow)
	return f.Snapshot(fixedNow)
}

func benchFrames(b *testing.B, gpus int) {
	s := bigFleet(gpus)
	for _, view := range []struct {
		name string
		key  rune
	}{{"fleet", '1'}, {"nodes", '2'}, {"node", '3'}, {"jobs", '4'}, {"cost", '5'}} {
		b.Run(view.name, func(b *testing.B) {
			a := NewApp(Options{Clock: func() time.Time { return fixedNow }}, nil)
			a.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
			a.SetSnapshot(s)
			a.Update(tea.KeyPressMsg{Code: view.key, Text: string(view.key)})
			withHistory(a) // the graphs and sparklines of the range picked, as fetched
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				_ = a.View()
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/frame")
		})
	}
}

// Frame render time (View) at 200×50 with colour styles: it must not grow
// with the fleet.
func BenchmarkFrame10kGPUs(b *testing.B)  { benchFrames(b, 10_000) }
func BenchmarkFrame100kGPUs(b *testing.B) { benchFrames(b, 100_000) }

// Snapshot building runs off the UI goroutine once a second at most; this
// is its cost for a whole fleet.
func BenchmarkSnapshot100kGPUs(b *testing.B) {
	s := bigFleet(100_000)
	_ = s
	nodes := make([]wire.NodeView, 0)
	for _, n := range s.Nodes {
		nodes = append(nodes, *n.View)
	}
	f := NewMerger([]Endpoint{{URL: "http://a"}}, "USD", 0.05)
	f.Apply(0, &wire.WatchMsg{Version: 1, Kind: wire.WatchSnapshot, Nodes: nodes}, fixedNow)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		f.Snapshot(fixedNow)
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/snapshot")
}
