package collector

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/fleettop/fleettop/fleet"
)

// noisyGPUs is an 8-GPU source whose every metric moves every tick, as on
// a busy training node: the worst case for the record's delta coding.
type noisyGPUs struct {
	r      *rand.Rand
	energy float64
	tick   int
}

func (n *noisyGPUs) Name() string { return "noisy" }
func (n *noisyGPUs) Start(context.Context) (Inventory, error) {
	var inv Inventory
	for i := range 8 {
		inv.Devices = append(inv.Devices, fleet.Device{Index: i, UUID: "GPU-x", Vendor: fleet.VendorNVIDIA})
	}
	return inv, nil
}
func (n *noisyGPUs) Collect(_ context.Context, s *fleet.Sample) error {
	n.tick++
	n.energy += 5600
	for i := range 8 {
		d := fleet.DeviceSample{Index: i}
		d.Set(fleet.MetricUtil, 0.8+0.2*n.r.Float64())
		d.Set(fleet.MetricMemUtil, 0.3+0.3*n.r.Float64())
		used := float64(60<<30) + float64(n.r.IntN(1<<30))
		d.Set(fleet.MetricMemUsed, used)
		d.Set(fleet.MetricMemFree, float64(80<<30)-used)
		d.Set(fleet.MetricMemTotal, 80<<30)
		d.Set(fleet.MetricPower, 550+150*n.r.Float64())
		d.Set(fleet.MetricEnergy, n.energy)
		d.Set(fleet.MetricTemp, float64(55+n.r.IntN(10)))
		d.Set(fleet.MetricSMClock, float64(1755+15*n.r.IntN(10)))
		d.Set(fleet.MetricMemClock, 2619)
		d.Set(fleet.MetricThrottle, 0)
		d.Set(fleet.MetricECCCorrected, 0)
		d.Set(fleet.MetricECCUncorrected, 0)
		d.Set(fleet.MetricRemappedRows, 0)
		d.Set(fleet.MetricHealth, 0)
		s.Devices = append(s.Devices, d)
		s.Procs = append(s.Procs, fleet.Process{Device: i, PID: uint32(4000 + i + n.tick/60), Name: "python3", UsedMemory: 60 << 30,
			Job: fleet.Job{ID: "train-llama-70b", Source: "slurm", Team: "nlp", DataClass: "internal"}})
	}
	h := &fleet.HostSample{}
	h.Set(fleet.HostCPUUtil, n.r.Float64())
	h.Set(fleet.HostLoad1, 20*n.r.Float64())
	h.Set(fleet.HostMemUsed, float64(400<<30)+float64(n.r.IntN(1<<30)))
	h.Set(fleet.HostMemTotal, 2<<40)
	h.Set(fleet.HostNetRx, float64(n.tick)*1e8)
	h.Set(fleet.HostNetTx, float64(n.tick)*1e8)
	h.Set(fleet.HostUptime, float64(n.tick))
	s.Host = h
	return nil
}
func (n *noisyGPUs) Close() error { return nil }

// BenchmarkAgentSample is one tick of an 8-GPU node: collect (a source that
// does no I/O), attribute, encode the record and append it to the spool.
func BenchmarkAgentSample(b *testing.B) {
	for _, mode := range []string{"memory", "disk", "disk-procs-every-record"} {
		b.Run(mode, func(b *testing.B) {
			dir := ""
			if mode != "memory" {
				dir = b.TempDir()
			}
			a, err := NewAgent(AgentConfig{Node: fleet.Node{ID: "n"}, Sources: []Source{&noisyGPUs{r: rand.New(rand.NewPCG(1, 2))}}, SpoolDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			if a.spool, err = OpenSpool(dir, SpoolOptions{}); err != nil {
				b.Fatal(err)
			}
			defer a.spool.Close()
			ctx := context.Background()
			a.startSources(ctx)
			var bytes int
			b.ReportAllocs()
			for b.Loop() {
				if mode == "disk-procs-every-record" {
					a.forceProcs.Store(true)
				}
				a.sampleOnce(ctx)
				bytes += len(a.rec)
				if a.spool.NextSeq()%64 == 0 {
					a.spool.Ack(a.spool.NextSeq() - 1)
				}
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "B/record")
			b.ReportMetric(float64(bytes)/float64(b.N)/8, "B/gpu-sample")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/8, "ns/gpu-sample")
		})
	}
}
