package mock

import (
	"context"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// BenchmarkCollect measures one simulated node's Collect (8 devices, host,
// processes) per GPU sample.
func BenchmarkCollect(b *testing.B) {
	sc, err := New(Config{Seed: 1, Start: testStart, Nodes: 40})
	if err != nil {
		b.Fatal(err)
	}
	srcs := make([]*Source, len(sc.Nodes))
	gpus := 0
	for i, n := range sc.Nodes {
		srcs[i] = NewSource(n, SourceOptions{})
		if _, err := srcs[i].Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		gpus += len(n.Info.Devices)
	}
	var s fleet.Sample
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t := testStart.Add(time.Duration(i/len(srcs)) * time.Second)
		s.Devices, s.Procs, s.Events = s.Devices[:0], s.Procs[:0], s.Events[:0]
		s.Time = t
		if err := srcs[i%len(srcs)].Collect(context.Background(), &s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(float64(gpus)/float64(len(srcs))), "ns/gpu-sample")
}
