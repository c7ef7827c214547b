package prometheus

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// benchFleet is nodes 8-GPU H100 nodes in 12 regions, every GPU reporting
// the metrics an H100 reports; built once, walked by every scrape.
func benchFleet(nodes int) Fleet {
	fs := make([]*fakeNode, nodes)
	for i := range fs {
		v := &wire.NodeView{ID: fmt.Sprintf("node-%05d", i), Hostname: fmt.Sprintf("gpu-%05d.example.internal", i),
			Region: fmt.Sprintf("region-%02d", i%12), Provider: "provider-a", Jurisdiction: "SG", State: wire.StateOnline,
			BurnPerHour: fleet.Money{Micros: 8 * 2_850_000, Currency: "USD"}}
		f := &fakeNode{v: v, node: fleet.Node{ID: v.ID, Hostname: v.Hostname, Region: v.Region, Provider: v.Provider,
			Jurisdiction: v.Jurisdiction, Lease: fleet.Lease{ID: "L-" + v.ID, PricePerGPUHour: fleet.Money{Micros: 2_850_000, Currency: "USD"}}}}
		for d := 0; d < 8; d++ {
			f.node.Devices = append(f.node.Devices, fleet.Device{Index: d, UUID: fmt.Sprintf("GPU-%08x-0000-4000-8000-%012x", i, d),
				Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3"})
			s := &fleet.DeviceSample{Index: d}
			for m, x := range map[fleet.Metric]float64{fleet.MetricUtil: 0.73, fleet.MetricMemUtil: 0.31, fleet.MetricMemUsed: 41 << 30,
				fleet.MetricMemFree: 39 << 30, fleet.MetricPower: 512.25, fleet.MetricEnergy: 8.1234567e7 + float64(i),
				fleet.MetricTemp: 61, fleet.MetricSMClock: 1980, fleet.MetricMemClock: 2619} {
				s.Set(m, x+float64(d))
			}
			f.samples = append(f.samples, s)
		}
		fs[i] = f
	}
	return func(fn func(NodeReader)) {
		for _, f := range fs {
			fn(f)
		}
	}
}

type discard struct{ n int }

func (d *discard) Header() http.Header         { return http.Header{} }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

var _ http.ResponseWriter = (*discard)(nil)
var _ io.Writer = (*discard)(nil)

// BenchmarkScrape measures one /metrics scrape of the fleet series (the
// handler end to end, fakeInsights for the placement series), plain and
// gzip, at 10,000 and 100,000 GPUs. CPU per scrape ≈ ns/op (one goroutine).
func BenchmarkScrape(b *testing.B) {
	for _, gpus := range []int{10_000, 100_000} {
		e := NewExporter(benchFleet(gpus/8), fakeInsights{})
		h := e.Handler(nil, nil)
		for _, gz := range []bool{false, true} {
			b.Run(fmt.Sprintf("gpus=%d/gzip=%v", gpus, gz), func(b *testing.B) {
				req := httptest.NewRequest("GET", "/metrics", nil)
				if gz {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				var w discard
				h.ServeHTTP(&w, req) // build label sets, as the first scrape after Hello does
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					w.n = 0
					h.ServeHTTP(&w, req)
				}
				b.ReportMetric(float64(w.n), "B/scrape")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(gpus), "ns/gpu")
			})
		}
	}
}

// BenchmarkRemoteWrite measures one remote_write interval of the fleet
// series: render into WriteRequests of 2,000 samples and snappy-compress
// each, as the remote_write loop does before buffering.
func BenchmarkRemoteWrite(b *testing.B) {
	for _, gpus := range []int{10_000, 100_000} {
		e := NewExporter(benchFleet(gpus/8), fakeInsights{})
		b.Run(fmt.Sprintf("gpus=%d", gpus), func(b *testing.B) {
			var raw, packed int
			var dst []byte
			ts := time.Unix(1_800_000_000, 0)
			b.ReportAllocs()
			for b.Loop() {
				raw, packed = 0, 0
				e.WriteRequests(ts, 2000, nil, func(req []byte, _ int) {
					raw += len(req)
					dst = snappy.Encode(dst[:cap(dst)], req)
					packed += len(dst)
				})
			}
			b.ReportMetric(float64(raw), "B/interval")
			b.ReportMetric(float64(packed), "snappyB/interval")
		})
	}
}
