package aggregator

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
	"github.com/fleettop/fleettop/wire/wiretest"
)

// BenchmarkWatchPublishFleet is the hub's work for one publication at 10 Hz
// in a fleet of 12,500 8-GPU nodes (100,000 GPUs) at 1 Hz: a tenth of the
// nodes changed since the last one. Subscriptions: the default page (shared
// by every plain viewer) and five viewers each with one node open (as
// loadgen's latency probes). Once in ten publications the fleet aggregates
// are due too (every ViewerInterval).
func BenchmarkWatchPublishFleet(b *testing.B) {
	for _, nodes := range []int{1250, 12500} {
		b.Run(fmt.Sprintf("gpus=%d", nodes*benchGPUs), func(b *testing.B) {
			toks, _ := ParseTokens(strings.NewReader(testTokens), "tokens")
			s, err := New(Config{Tokens: toks, Recorder: nopRecorder{}, FlushInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			for i := range nodes {
				st := wiretest.NewStream(uint64(i+1), fmt.Sprintf("watch-node-%05d", i), benchGPUs)
				ss := attach(s, st.Node())
				if err := ss.apply([]fleet.Sample{st.Next(time.Unix(1_770_000_000, 0))}); err != nil {
					b.Fatal(err)
				}
			}
			h := newWatchHub(s)
			h.enter(wire.DefaultSubscription())
			list := s.nodeList()
			for i := range 5 {
				h.enter(wire.WatchSubscribe{Version: wire.WatchVersion, Node: list[i*nodes/5].id})
			}
			h.publish(false, false)
			b.ReportAllocs()
			b.ResetTimer()
			c0 := cpuTime()
			for i := range b.N {
				for k := i % 10; k < len(list); k += 10 {
					s.touch(list[k])
				}
				if i%10 == 0 {
					h.fleetAt = time.Time{}
				}
				h.publish(false, false)
			}
			b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N)/1e6, "cpu-ms/pub")
		})
	}
}
