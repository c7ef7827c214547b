package mock

import (
	"fmt"
	"math"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Profiling activity and MIG in the simulation.
//
// NVML's utilisation says only that a kernel ran; the profiling ratios say
// how much of the GPU it used. The simulation makes the gap depend on the
// work: a training step fills most SMs and keeps the tensor pipes busy,
// serving uses fewer, a notebook fewer still. GPM (and so these metrics)
// exists on Hopper only; on A100 and L40S they stay absent.

// hasGPM reports whether the model's NVML offers GPM profiling (Hopper and newer).
func (m *Model) hasGPM() bool {
	switch m.Key {
	case "h100", "h200", "h20":
		return true
	}
	return false
}

// work shape: fraction of "busy" time that keeps SMs active, occupancy per
// active SM, tensor share, and PCIe / NVLink bytes per second at full load.
var workShape = [...]struct{ sm, occ, tensor, pcie, nvlink float64 }{
	Idle:      {0.5, 0.2, 0, 1e5, 0},
	Training:  {0.86, 0.55, 0.62, 2.4e9, 1.1e11},
	Inference: {0.58, 0.38, 0.41, 6e8, 9e9},
	Notebook:  {0.34, 0.25, 0.18, 2e8, 0},
}

// setProfile sets the profiling metrics of a device whose state is s.
func (n *Node) setProfile(dk uint64, el float64, s *devState, ds *fleet.DeviceSample, share float64) {
	w := workShape[n.Work]
	u := s.util
	jit := func(k uint64, p float64) float64 { return 0.94 + 0.12*smooth(dk^k, el, p) }
	r3 := func(x float64) float64 { return math.Round(clamp(x, 0, 1)*1e3) / 1e3 } // the wire's step (wire/quant.go)
	gr := r3(u * 0.985 * share)
	sm := r3(gr * w.sm * jit(0x21, 7))
	ds.Set(fleet.MetricGREngineActive, gr)
	ds.Set(fleet.MetricSMActive, sm)
	ds.Set(fleet.MetricSMOccupancy, r3(sm*w.occ*jit(0x22, 11)))
	ds.Set(fleet.MetricTensorActive, r3(sm*w.tensor*jit(0x23, 5)))
	ds.Set(fleet.MetricDRAMActive, r3(s.memUtil*0.92*share*jit(0x24, 9)))
	l := n.links(dk, el, u, share)
	ds.Set(fleet.MetricPCIeTx, l.pcieTx)
	ds.Set(fleet.MetricPCIeRx, l.pcieRx)
	ds.Set(fleet.MetricNVLinkTx, l.nvlinkTx)
	ds.Set(fleet.MetricNVLinkRx, l.nvlinkRx)
}

// Link traffic. GPM's PCIe and NVLink figures are byte counters differenced
// over the sample window (NVML divides the bytes between two GPM samples by
// the time between them), so a 1 Hz reader sees each second's traffic
// integrated, not an instantaneous rate. What that shows for the work here:
//
//   - Data-parallel training moves its gradients once per optimisation step:
//     NCCL's all-reduce runs over NVLink during the backward pass at close to
//     the links' bandwidth and the links idle through the forward pass and
//     the optimiser step; the next batch is copied in over PCIe at the start
//     of the step; a checkpoint writes the model and optimiser state out over
//     PCIe while the GPUs wait. Traces of such jobs (DCGM's
//     DCGM_FI_PROF_NVLINK_TX_BYTES / PCIE_RX_BYTES in dcgmi dmon, Nsight
//     Systems' NVLink and PCIe throughput rows, NCCL's profiler) show that
//     shape: a square wave at the step period (a second to several seconds
//     for LLM training), all GPUs of a job in phase (a collective finishes
//     on every rank together), flat at the link rate inside a burst and
//     near zero between. The simulation integrates that square wave over
//     each window: a window wholly inside a burst reads the burst rate, one
//     wholly between reads zero, and a window the burst's edge crosses reads
//     the fraction it overlaps. Ring all-reduce sends and receives the same
//     bytes, so NVLink tx equals rx.
//   - Inference with tensor parallelism moves activations on every token, so
//     its NVLink traffic follows the request load (utilisation, with the
//     load's own second-to-second jitter); requests and responses cross
//     PCIe in proportion.
//   - Notebooks copy data in over PCIe as they compute and use no NVLink;
//     idle GPUs show only the driver's trickle.
//
// These shapes are stated from the published traces' general form, not
// fitted to a recorded trace (there was none to fit against). Values are
// whole bytes per second; the wire keeps them at GPM's own step, 1 MiB/s
// (see wire/quant.go).
type linkRates struct{ pcieTx, pcieRx, nvlinkTx, nvlinkRx float64 }

// stepCycle is a training job's step: period, the fraction of it the
// gradient all-reduce occupies (at its end), and where t=0 falls in it.
func (n *Node) stepCycle() (period, comm, phase float64) {
	period = 1.5 + 4.5*at(n.jobKey, 0x31)
	comm = 0.3 + 0.3*at(n.jobKey, 0x32)
	return period, comm, at(n.jobKey, 0x33) * period
}

// burstTime is the time within [0, x] spent in bursts that occupy the
// fraction f at the end of each period p starting at offset off.
func burstTime(x, p, f, off float64) float64 {
	y := x + off
	k := math.Floor(y / p)
	r := y - k*p
	return k*f*p + math.Max(0, r-(1-f)*p)
}

// windowShare is the share of the second before el spent in bursts.
func windowShare(el, p, f, off float64) float64 {
	return clamp(burstTime(el, p, f, off)-burstTime(el-1, p, f, off), 0, 1)
}

func (n *Node) links(dk uint64, el, u, share float64) linkRates {
	w := workShape[n.Work]
	var l linkRates
	switch n.Work {
	case Training:
		p, c, off := n.stepCycle()
		if u >= 0.5 { // stepping (not waiting on a checkpoint)
			// Bursts at the link rate that moves the step's gradients.
			l.nvlinkTx = math.Round(w.nvlink / c * share * windowShare(el, p, c, off))
			l.nvlinkRx = l.nvlinkTx
			// The batch arrives in the first 8 % of the step.
			l.pcieRx = math.Round(w.pcie / 0.08 * share * windowShare(el, p, 0.08, off+0.08*p))
			l.pcieTx = math.Round(2e6 * share) // losses and metrics to the host
		} else {
			l.pcieTx = math.Round(1.2e10 * share) // the checkpoint leaves over PCIe
		}
	case Inference, Notebook:
		jit := 0.94 + 0.12*smooth(dk^0x25, el, 3)
		l.pcieRx = math.Round(w.pcie * u * share * jit)
		l.pcieTx = math.Round(w.pcie * 0.3 * u * share * jit)
		l.nvlinkTx = math.Round(w.nvlink * u * share * jit)
		l.nvlinkRx = math.Round(w.nvlink * 0.97 * u * share * jit)
	default:
		l.pcieRx, l.pcieTx = math.Round(w.pcie*share), math.Round(w.pcie*0.5*share)
	}
	return l
}

// migSlice is one MIG GPU instance of a simulated A100-80GB or H100-80GB.
type migSlice struct {
	profile string
	gi      int
	slices  int // of 7 compute slices
	memMiB  uint64
}

// migLayout is how a partitioned GPU is carved: one 3g, one 2g, two 1g.
var migLayout = []migSlice{
	{"3g.40gb", 2, 3, 40192},
	{"2g.20gb", 3, 2, 19968},
	{"1g.10gb", 9, 1, 9856},
	{"1g.10gb", 10, 1, 9856},
}

// migPlan: which nodes of the base block run MIG, and on how many GPUs.
// The Johor research notebooks share their first A100s between users.
var migPlan = []struct {
	region, model string
	member, gpus  int
}{
	{"Johor", "a100", 0, 2},
}

// instance is a MIG instance of a simulated node.
type instance struct {
	dev    fleet.Device
	parent int
	slice  migSlice
	job    fleet.Job
	key    uint64
}

// addMIG partitions the first gpus devices of n.
func (n *Node) addMIG(gpus int, users []string, num uint64) {
	for p := range min(gpus, len(n.Info.Devices)) {
		n.Info.Devices[p].MIG = true
		for k, sl := range migLayout {
			idx := len(n.Info.Devices) + len(n.inst)
			key := hash2(n.key, uint64(1000+idx))
			u := users[int(key%uint64(len(users)))]
			n.inst = append(n.inst, instance{
				dev: fleet.Device{
					Index: idx, UUID: migUUID(key), Vendor: fleet.VendorNVIDIA,
					Model:    n.Model.Name + " MIG " + sl.profile,
					PCIBusID: n.Info.Devices[p].PCIBusID, MemoryTotal: sl.memMiB << 20,
					Instance: fleet.MIGInstance{Parent: p, GPUInstanceID: sl.gi, ComputeInstanceID: 0, Profile: sl.profile},
				},
				parent: p, slice: sl, key: key,
				job: fleet.Job{ID: fmt.Sprintf("nb-%s-%d", u, (num+uint64(k))%100), Source: "env", Team: "research", DataClass: "internal"},
			})
		}
	}
}

func migUUID(k uint64) string {
	k2 := mix(k)
	return fmt.Sprintf("MIG-%08x-%04x-%04x-%04x-%012x", uint32(k), uint16(k>>32), uint16(k>>48), uint16(k2), k2>>16&0xffffffffffff)
}

// Instances returns the node's MIG instances as devices (indexes after the
// physical GPUs); nil when the node runs no MIG.
func (n *Node) Instances() []fleet.Device {
	if len(n.inst) == 0 {
		return nil
	}
	out := make([]fleet.Device, len(n.inst))
	for i := range n.inst {
		out[i] = n.inst[i].dev
	}
	return out
}

// ReadInstance fills ds with MIG instance i's readings at t (i counts the
// node's instances from 0): its memory and, on Hopper, its profiling
// activity. Like NVML, an instance reports no utilisation, power or
// temperature of its own.
func (n *Node) ReadInstance(i int, t time.Time, ds *fleet.DeviceSample) {
	in := &n.inst[i]
	el := t.Sub(n.start).Seconds()
	*ds = fleet.DeviceSample{Index: in.dev.Index}
	ps := n.state(in.parent, el, float64(t.UnixNano())/1e9)
	if ps.fellOff {
		return
	}
	s := n.instState(in, el)
	total := in.slice.memMiB * mib
	ds.Set(fleet.MetricMemUsed, float64(s.memUsed))
	ds.Set(fleet.MetricMemFree, float64(total-s.memUsed))
	ds.Set(fleet.MetricMemTotal, float64(total))
	if n.Model.hasGPM() {
		n.setProfile(in.key, el, &s, ds, 1)
	}
}

// instState is an instance's own activity: a notebook of its own.
func (n *Node) instState(in *instance, el float64) devState {
	var s devState
	b := smooth(in.key^2, el, 20)
	if at(in.key, int64(math.Floor(el/1800))) < 0.7 {
		s.procAlive = true
		if b >= 0.5 {
			s.util = clamp((b-0.5)/0.5*1.2, 0, 1)
		}
	}
	s.memUtil = s.util * 0.4
	frac := 0.0
	if s.procAlive {
		frac = 0.2 + 0.6*at(in.key, int64(math.Floor(el/1800))+1<<40)
	}
	s.memUsed = uint64(math.Max(frac, 0.01)*float64(in.slice.memMiB)) * mib
	return s
}

// instProcs appends the processes of the node's MIG instances at t.
func (n *Node) instProcs(dst []fleet.Process, t time.Time) []fleet.Process {
	el := t.Sub(n.start).Seconds()
	for i := range n.inst {
		in := &n.inst[i]
		if n.state(in.parent, el, float64(t.UnixNano())/1e9).fellOff {
			continue
		}
		s := n.instState(in, el)
		if !s.procAlive {
			continue
		}
		pid := uint32(4000 + hash2(in.key, uint64(el/1800))%60000)
		p := fleet.Process{Device: in.dev.Index, PID: pid, Name: "ipykernel_launcher", UsedMemory: s.memUsed, Job: in.job}
		p.Util = fleet.Some(math.Round(s.util*workShape[Notebook].sm*100) / 100)
		dst = append(dst, p)
	}
	return dst
}
