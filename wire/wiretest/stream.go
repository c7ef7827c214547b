// Package wiretest generates realistic collector streams for the codec's
// tests and benchmarks and for the load generator: one node's GPUs sampled
// once a second, drifting the way real hardware does.
package wiretest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Stream is one simulated node. Not safe for concurrent use.
type Stream struct {
	rng  *rand.Rand
	node fleet.Node
	seq  uint64
	gpus []gpu
	host fleet.HostSample
}

type gpu struct {
	util, memUtil, memUsed, power, energy, temp, smClock float64
	ecc                                                  float64
}

const (
	memTotal   = 80 << 30 // H100 80GB
	powerLimit = 700.0
)

// NewStream returns a node called id with the given number of GPUs; the
// same seed yields the same stream.
func NewStream(seed uint64, id string, gpus int) *Stream {
	s := &Stream{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	s.node = fleet.Node{
		ID: id, Hostname: id + ".example", Region: "ap-southeast-1", Site: "sg-1",
		Provider: "acme", Jurisdiction: "SG",
		Lease: fleet.Lease{
			ID: "lease-" + id, PricePerGPUHour: fleet.Money{Micros: 2_490_000, Currency: "USD"},
			Billing: fleet.BillPerSecond, Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		Labels:       map[string]string{"team": "research", "rack": "r12"},
		Driver:       "550.54.15",
		CUDA:         "12.4",
		BootID:       fmt.Sprintf("boot-%x", seed),
		AgentVersion: "test",
	}
	for i := range gpus {
		s.node.Devices = append(s.node.Devices, fleet.Device{
			Index: i, UUID: fmt.Sprintf("GPU-%08x-%04x", seed, i), Vendor: fleet.VendorNVIDIA,
			Model: "NVIDIA H100 80GB HBM3", PCIBusID: fmt.Sprintf("00000000:%02X:00.0", 0x18+i),
			MemoryTotal: memTotal, PowerLimit: powerLimit,
		})
		busy := s.rng.Float64()
		s.gpus = append(s.gpus, gpu{
			util: busy, memUtil: busy * 0.6,
			memUsed: float64((20 + s.rng.IntN(50)) << 30), power: 100 + 500*busy,
			energy: float64(s.rng.IntN(1e9)), temp: float64(35 + s.rng.IntN(30)), smClock: 1980,
		})
	}
	s.host.Set(fleet.HostMemTotal, 2<<40)
	s.host.Set(fleet.HostMemUsed, 400<<30)
	s.host.Set(fleet.HostNetRx, 1e12)
	s.host.Set(fleet.HostNetTx, 1e12)
	s.host.Set(fleet.HostUptime, 86400)
	return s
}

// Node returns the node's Hello identity.
func (s *Stream) Node() fleet.Node { return s.node }

// Next returns the next record, taken at t. Each GPU reports 15 metrics (no
// fan or retired pages, like an H100): utilisation wobbles a few percent,
// power ±10 W, temperature ±1 °C, memory changes now and then in MiB,
// energy grows by power × 1 s. Values are at hardware resolution (whole
// percent, milliwatts, millijoules, whole °C), as NVML reports them.
func (s *Stream) Next(t time.Time) fleet.Sample {
	s.seq++
	rec := fleet.Sample{Seq: s.seq, Time: t, Devices: make([]fleet.DeviceSample, len(s.gpus))}
	r := s.rng
	for i := range s.gpus {
		g := &s.gpus[i]
		g.util = clamp(g.util+(r.Float64()-0.5)*0.06, 0, 1)
		g.memUtil = clamp(g.memUtil+(r.Float64()-0.5)*0.04, 0, 1)
		if r.IntN(20) == 0 {
			g.memUsed = clamp(g.memUsed+float64(r.IntN(2049)-1024)*(1<<20), 1<<30, memTotal)
		}
		g.power = clamp(g.power+(r.Float64()-0.5)*20, 60, powerLimit)
		g.energy += math.Round(g.power * 1000) // mJ, like NVML's counter
		g.temp = clamp(g.temp+float64(r.IntN(3)-1), 25, 90)
		if r.IntN(10) == 0 {
			g.smClock = 1755 + 15*float64(r.IntN(16))
		}
		if r.IntN(5000) == 0 {
			g.ecc++
		}
		d := &rec.Devices[i]
		d.Index = i
		d.Set(fleet.MetricUtil, math.Round(g.util*100)/100)
		d.Set(fleet.MetricMemUtil, math.Round(g.memUtil*100)/100)
		d.Set(fleet.MetricMemUsed, g.memUsed)
		d.Set(fleet.MetricMemFree, memTotal-g.memUsed)
		d.Set(fleet.MetricMemTotal, memTotal)
		d.Set(fleet.MetricPower, math.Round(g.power*1000)/1000)
		d.Set(fleet.MetricEnergy, g.energy/1000)
		d.Set(fleet.MetricTemp, g.temp)
		d.Set(fleet.MetricSMClock, g.smClock)
		d.Set(fleet.MetricMemClock, 2619)
		d.Set(fleet.MetricThrottle, 0)
		d.Set(fleet.MetricECCCorrected, g.ecc)
		d.Set(fleet.MetricECCUncorrected, 0)
		d.Set(fleet.MetricRemappedRows, 0)
		d.Set(fleet.MetricHealth, float64(fleet.HealthOK))
	}
	s.host.Values[fleet.HostNetRx] += float64(r.IntN(1 << 20))
	s.host.Values[fleet.HostNetTx] += float64(r.IntN(1 << 20))
	s.host.Values[fleet.HostUptime]++
	h := s.host
	h.Set(fleet.HostCPUUtil, math.Round(r.Float64()*1000)/1000)
	h.Set(fleet.HostLoad1, math.Round(r.Float64()*3200)/100)
	h.Set(fleet.HostLoad5, 20)
	h.Set(fleet.HostLoad15, 18)
	rec.Host = &h
	if s.seq == 1 {
		rec.ProcsSet = true
		for i := range s.gpus {
			rec.Procs = append(rec.Procs, fleet.Process{
				Device: i, PID: uint32(1000 + i), Name: "python3", UsedMemory: uint64(s.gpus[i].memUsed),
				Job: fleet.Job{ID: "job-42", Source: "slurm", Team: "research"},
			})
		}
	}
	return rec
}

func clamp(v, lo, hi float64) float64 { return max(lo, min(hi, v)) }
