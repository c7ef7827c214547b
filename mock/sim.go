package mock

import (
	"fmt"
	"math"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// Noise model. Each reading is what NVML (or npu-smi) would return, at its
// resolution: utilisation and memory utilisation in whole percent
// (nvmlUtilization_t is unsigned int percent), temperature in whole °C
// (nvmlDeviceGetTemperature), SM clock in 15 MHz steps (the clock tables
// step in 15 MHz on A100/H100), power at 0.1 W (NVML reports mW; on Ampere
// and newer it is a 1 s average, so a 1 Hz reader sees a smoothed draw, not
// sample noise), energy as a counter in whole joules (integrated from the
// draw), used memory in whole MiB. The shapes follow what nvidia-smi dmon
// (which prints pwr, gtemp, sm, mem as integers) and DCGM traces of real
// jobs show: training holds 90–99 % with dips to a few percent at
// checkpoints (every 30 min here, 45 s long); inference follows the local
// day with ±8 % second-to-second jitter; notebooks are idle or bursty;
// power follows utilisation (idle draw plus a 0.9 power of utilisation)
// with ±1.5 % ripple; temperature follows power with a lag (a weighted look
// back over a minute) and ±0.75 °C drift; used memory is flat for training
// (±0.2 % drift, the allocator's caching) and tracks load for inference.
// Values drift smoothly (value noise joined by a smoothstep over 2–120 s)
// rather than jumping independently every second, which is what makes
// delta coding pay on real streams. These shapes are stated from the
// published dmon/DCGM examples' general form, not fitted to a recorded
// trace: the session that wrote this had no trace file to fit against.
// GPM's profiling ratios and link traffic follow the work: see profile.go
// (training's link traffic is a per-step square wave, not white noise).

// NVML clock-event (throttle) reasons, as nvmlDeviceGetCurrentClocksEventReasons reports them.
const (
	ThrottleGPUIdle           = 0x1
	ThrottleSwPowerCap        = 0x4
	ThrottleSwThermalSlowdown = 0x20
	ThrottleHwThermalSlowdown = 0x40
)

const mib = 1 << 20

// devState is what the simulation derives for one device at one instant.
type devState struct {
	util, memUtil float64
	memUsed       uint64
	power, temp   float64
	sm            float64
	throttle      uint32
	fellOff       bool
	thermal       bool
	procAlive     bool // a process holds the device
}

// hourOf splits elapsed seconds into the hour index and the position within it.
func hourOf(el float64) (int64, float64) {
	h := math.Floor(el / 3600)
	return int64(h), el - h*3600
}

// active reports whether fault f covers device d at elapsed time el.
func (n *Node) active(f *Fault, d int, el float64) bool {
	h, pos := hourOf(el)
	if el < 0 || pos < f.From || pos >= f.Until {
		return false
	}
	return f.Device < 0 || d < 0 || n.faultDevice(f, h) == d
}

// faultDevice is the device a fault hits in hour h: XID 79 moves on each hour
// (the fallen GPU was reseated; another one goes).
func (n *Node) faultDevice(f *Fault, h int64) int {
	if f.Device < 0 {
		return -1
	}
	if f.Kind == FaultXID && f.Code == 79 {
		return int((int64(f.Device) + h) % int64(n.Model.PerNode))
	}
	return f.Device
}

// occurrences counts how many times fault f has started on device d by el.
func (n *Node) occurrences(f *Fault, d int, el float64) int64 {
	if el < f.From {
		return 0
	}
	last := int64(math.Floor((el - f.From) / 3600))
	if f.Kind == FaultXID && f.Code == 79 {
		var c int64
		for h := int64(0); h <= last; h++ {
			if n.faultDevice(f, h) == d {
				c++
			}
		}
		return c
	}
	if f.Device != d {
		return 0
	}
	return last + 1
}

// util is the device's utilisation at elapsed time el.
func (n *Node) util(dk uint64, el, unix float64) (u float64, alive bool) {
	switch n.Work {
	case Training:
		phase := at(n.jobKey, 0) * 1800
		if math.Mod(el+phase+1e6*1800, 1800) < 45 { // checkpoint: the whole job waits on storage
			return 0.04 + 0.06*smooth(dk, el, 5), true
		}
		return clamp(0.91+0.08*smooth(dk^1, el, 4)-0.04*smooth(n.jobKey, el, 90), 0, 1), true
	case Inference:
		lh := math.Mod((unix+n.utcOffset)/3600, 24)
		day := 0.5 - 0.5*math.Cos(2*math.Pi*(lh-4)/24) // trough at 04:00, peak at 16:00 local
		u := 0.06 + 0.74*day*(0.75+0.5*smooth(n.jobKey, el, 120)) + 0.16*(smooth(dk, el, 3)-0.5)
		return clamp(u, 0.02, 1), true
	case Notebook:
		if at(dk, int64(math.Floor(el/1800))) >= 0.65 { // no kernel running in this half hour
			return 0, false
		}
		b := smooth(dk^2, el, 20)
		if b < 0.55 {
			return 0.01 * smooth(dk^3, el, 7), true
		}
		return clamp((b-0.55)/0.45*1.3, 0, 1) * (0.7 + 0.3*smooth(dk^3, el, 2)), true
	default:
		return 0, false
	}
}

// powerAt is the draw for utilisation u (before thermal effects).
func (n *Node) powerAt(dk uint64, u, el float64) float64 {
	m := &n.Model
	if u < 0.005 {
		return m.IdlePower * (0.97 + 0.06*smooth(dk^5, el, 10))
	}
	pf := 0.12 + 0.86*math.Pow(u, 0.9)
	p := m.IdlePower + (m.PowerLimit-m.IdlePower)*pf*(0.99+0.03*smooth(dk^5, el, 2))
	return math.Min(p, m.PowerLimit*0.995)
}

// state computes device d at elapsed el (unix: seconds since the Unix epoch at el).
func (n *Node) state(d int, el, unix float64) devState {
	var s devState
	dk := hash2(n.key, uint64(d))
	for i := range n.faults {
		f := &n.faults[i]
		if !n.active(f, d, el) {
			continue
		}
		switch {
		case f.Kind == FaultXID && f.Code == 79:
			s.fellOff = true
			return s
		case f.Kind == FaultThermal:
			s.thermal = true
		}
	}
	m := &n.Model
	u, alive := n.util(dk, el, unix)
	s.util, s.procAlive = u, alive && n.jobs[d].ID != ""
	p := n.powerAt(dk, u, el)
	// Temperature follows power with a lag: a weighted look back over a minute.
	u20, _ := n.util(dk, el-20, unix-20)
	u60, _ := n.util(dk, el-60, unix-60)
	pLag := 0.5*p + 0.3*n.powerAt(dk, u20, el-20) + 0.2*n.powerAt(dk, u60, el-60)
	r := n.thermalR * (0.94 + 0.12*at(dk, 9))
	s.temp = n.ambient + r*pLag + 1.5*(smooth(dk^6, el, 50)-0.5)
	s.sm = m.MaxSM * (0.96 + 0.04*smooth(dk^7, el, 6))
	switch {
	case u < 0.02:
		s.sm = m.IdleSM
		s.throttle = ThrottleGPUIdle
	case p >= m.PowerLimit*0.96:
		s.sm = m.MaxSM * 0.89
		s.throttle = ThrottleSwPowerCap
	}
	if s.thermal {
		s.temp += 17 + 3*smooth(dk^8, el, 20)
		if s.temp >= 85 {
			s.throttle = ThrottleSwThermalSlowdown | ThrottleHwThermalSlowdown
			s.sm = m.MaxSM * 0.71
			p *= 0.82
		}
	}
	s.power = p
	s.temp = math.Round(s.temp)
	s.sm = math.Round(s.sm/15) * 15
	total := float64(m.MemMiB)
	var frac float64
	switch n.Work {
	case Training:
		frac = 0.93 + 0.04*at(dk, 7) + 0.004*smooth(dk^4, el, 30)
		s.memUtil = u * (0.42 + 0.1*smooth(dk^9, el, 5))
	case Inference:
		frac = 0.55 + 0.2*at(dk, 7) + 0.15*u
		s.memUtil = u * (0.55 + 0.15*smooth(dk^9, el, 5))
	case Notebook:
		if alive {
			frac = 0.15 + 0.45*at(dk, int64(math.Floor(el/1800))+1<<40)
		}
		s.memUtil = u * 0.4
	}
	used := math.Max(frac*total, 0.006*total)
	s.memUsed = uint64(used) * mib
	return s
}

// ReadDevice fills ds with device d's readings at simulated time t; energy is
// the device's energy counter (joules), which the caller integrates.
func (n *Node) ReadDevice(d int, t time.Time, energy float64, ds *fleet.DeviceSample) devState {
	el := t.Sub(n.start).Seconds()
	unix := float64(t.UnixNano()) / 1e9
	s := n.state(d, el, unix)
	ds.Index = d
	ds.Present = 0
	ds.Set(fleet.MetricHealth, float64(fleet.HealthCritical))
	if s.fellOff {
		return s
	}
	m := &n.Model
	dk := hash2(n.key, uint64(d))
	total := m.MemMiB * mib
	ds.Set(fleet.MetricUtil, math.Round(s.util*100)/100) // drivers report whole percent
	ds.Set(fleet.MetricMemUtil, math.Round(s.memUtil*100)/100)
	ds.Set(fleet.MetricMemUsed, float64(s.memUsed))
	ds.Set(fleet.MetricMemFree, float64(total-s.memUsed))
	ds.Set(fleet.MetricMemTotal, float64(total))
	ds.Set(fleet.MetricPower, math.Round(s.power*10)/10)
	ds.Set(fleet.MetricTemp, s.temp)
	ds.Set(fleet.MetricSMClock, s.sm)
	ds.Set(fleet.MetricMemClock, m.MemClock)
	// Corrected ECC errors trickle in on a few devices.
	corr := math.Floor(at(dk, 11) * 4)
	if at(dk, 12) < 0.15 && el > 0 {
		corr += math.Floor(el / (600 + 3000*at(dk, 13)))
	}
	var uncorr, remapped int64
	health := fleet.HealthOK
	if s.thermal {
		health = fleet.HealthWarning
	}
	for i := range n.faults {
		f := &n.faults[i]
		switch {
		case f.Kind == FaultXID && (f.Code == 48 || f.Code == 94):
			c := n.occurrences(f, d, el)
			uncorr += c
			if f.Code == 48 {
				remapped += c
			}
		case f.Kind == FaultXID && f.Code == 63:
			remapped += n.occurrences(f, d, el)
			corr += float64(n.occurrences(f, d, el) * 12)
		}
		if f.Kind != FaultThermal && f.Code != 79 && n.active(f, d, el) {
			health = fleet.HealthWarning
		}
	}
	ds.Set(fleet.MetricECCCorrected, corr)
	ds.Set(fleet.MetricECCUncorrected, float64(uncorr))
	ds.Set(fleet.MetricHealth, float64(health))
	if m.Vendor == fleet.VendorNVIDIA {
		ds.Set(fleet.MetricEnergy, math.Round(energy))
		ds.Set(fleet.MetricThrottle, float64(s.throttle))
		ds.Set(fleet.MetricRemappedRows, float64(remapped))
		// Lifetime counts: what the volatile ones add to the board's history.
		ds.Set(fleet.MetricECCCorrectedAgg, corr+math.Floor(at(dk, 14)*40))
		ds.Set(fleet.MetricECCUncorrectedAgg, float64(uncorr)+math.Floor(at(dk, 15)*1.3))
		ds.Set(fleet.MetricRemapPending, b2f(health >= fleet.HealthWarning && remapped > 0))
		ds.Set(fleet.MetricRemapFailure, 0)
		if m.hasGPM() {
			n.setProfile(dk, el, &s, ds, 1)
		}
		if m.HasFan {
			ds.Set(fleet.MetricFan, math.Round(clamp(0.3+0.7*(s.temp-35)/50, 0.3, 1)*100)/100)
		}
	}
	return s
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// InitialEnergy is device d's energy counter (joules since driver load) for a
// reader that starts at t: the time before is integrated at a middling draw.
func (n *Node) InitialEnergy(d int, t time.Time) float64 {
	el := max(t.Sub(n.start).Seconds(), 0)
	return n.energyBase[d] + el*(n.Model.IdlePower+0.45*(n.Model.PowerLimit-n.Model.IdlePower))
}

// ReadHost fills h with the node's host readings at t.
func (n *Node) ReadHost(t time.Time, h *fleet.HostSample) {
	el := t.Sub(n.start).Seconds()
	base := [...]float64{Idle: 0.02, Training: 0.38, Inference: 0.22, Notebook: 0.08}[n.Work]
	cpu := clamp(base*(0.8+0.4*smooth(n.key^0x11, el, 15)), 0.005, 1)
	h.Set(fleet.HostCPUUtil, math.Round(cpu*1000)/1000)
	h.Set(fleet.HostLoad1, math.Round(cpu*n.hostCPUs*(0.9+0.2*smooth(n.key^0x12, el, 5))*100)/100)
	h.Set(fleet.HostLoad5, math.Round(cpu*n.hostCPUs*(0.95+0.1*smooth(n.key^0x12, el, 60))*100)/100)
	h.Set(fleet.HostLoad15, math.Round(cpu*n.hostCPUs*100)/100)
	h.Set(fleet.HostMemTotal, n.hostMem)
	h.Set(fleet.HostMemUsed, math.Round(n.hostMem*(0.08+0.5*base+0.05*smooth(n.key^0x13, el, 120))))
	up := n.bootAgo + el
	netRate := [...]float64{Idle: 2e4, Training: 1.2e9, Inference: 4e7, Notebook: 2e6}[n.Work]
	h.Set(fleet.HostNetRx, math.Floor(up*netRate*1.1))
	h.Set(fleet.HostNetTx, math.Floor(up*netRate*0.9))
	h.Set(fleet.HostUptime, math.Floor(up))
}

// AppendEvents appends the events that began in (from, to] of simulated time.
func (n *Node) AppendEvents(dst []fleet.Event, from, to time.Time) []fleet.Event {
	a, b := from.Sub(n.start).Seconds(), to.Sub(n.start).Seconds()
	for i := range n.faults {
		f := &n.faults[i]
		for _, edge := range [2]float64{f.From, f.Until} {
			if b < edge {
				continue
			}
			h := math.Floor((b - edge) / 3600)
			when := h*3600 + edge
			if when <= a {
				continue
			}
			t := n.start.Add(time.Duration(when * float64(time.Second)))
			if ev, ok := n.event(f, int64(h), edge == f.From, t); ok {
				dst = append(dst, ev...)
			}
		}
	}
	return dst
}

// nextXIDAfter returns when the first XID after t (of simulated time)
// begins; a day after t when the node has none scheduled.
func (n *Node) nextXIDAfter(t time.Time) time.Time {
	a := t.Sub(n.start).Seconds()
	next := math.Inf(1)
	for i := range n.faults {
		f := &n.faults[i]
		if f.Kind != FaultXID {
			continue
		}
		// The same edges as AppendEvents: f.From, then every hour after.
		when := f.From
		if a >= f.From {
			when += (math.Floor((a-f.From)/3600) + 1) * 3600
		}
		next = min(next, when)
	}
	if math.IsInf(next, 1) {
		return t.Add(24 * time.Hour)
	}
	return n.start.Add(time.Duration(next * float64(time.Second)))
}

func (n *Node) event(f *Fault, h int64, begin bool, t time.Time) ([]fleet.Event, bool) {
	d := n.faultDevice(f, h)
	switch f.Kind {
	case FaultXID:
		if !begin {
			if f.Code == 79 {
				return []fleet.Event{{Time: t, Kind: fleet.EventHealth, Severity: fleet.SevInfo, Device: d,
					Message: fmt.Sprintf("GPU %d back on the bus after reset", d)}}, true
			}
			return nil, false
		}
		sev := fleet.SevWarning
		if f.Code == 79 || f.Code == 48 {
			sev = fleet.SevCritical
		}
		evs := []fleet.Event{{Time: t, Kind: fleet.EventXID, Severity: sev, Device: d, Code: f.Code,
			Message: fleet.XIDText(f.Code)}}
		if f.Code == 48 || f.Code == 94 {
			evs = append(evs, fleet.Event{Time: t, Kind: fleet.EventECC, Severity: fleet.SevWarning, Device: d,
				Message: fmt.Sprintf("uncorrectable ECC errors on GPU %d rose to %d", d, h+1)})
		}
		return evs, true
	case FaultThermal:
		if begin {
			return []fleet.Event{{Time: t, Kind: fleet.EventThermal, Severity: fleet.SevWarning, Device: -1,
				Message: "thermal slowdown: cooling degraded, clocks reduced"}}, true
		}
		return []fleet.Event{{Time: t, Kind: fleet.EventThermal, Severity: fleet.SevInfo, Device: -1,
			Message: "thermal slowdown cleared"}}, true
	case FaultHealth:
		if begin {
			return []fleet.Event{{Time: t, Kind: fleet.EventHealth, Severity: fleet.SevWarning, Device: d,
				Message: fmt.Sprintf("NPU %d health Warning: HBM multi-bit ECC alarm", d)}}, true
		}
		return []fleet.Event{{Time: t, Kind: fleet.EventHealth, Severity: fleet.SevInfo, Device: d,
			Message: fmt.Sprintf("NPU %d health OK", d)}}, true
	}
	return nil, false
}

// AppendProcs appends the compute processes running at t.
func (n *Node) AppendProcs(dst []fleet.Process, t time.Time, states []devState) []fleet.Process {
	el := t.Sub(n.start).Seconds()
	for d, s := range states {
		if p, ok := n.proc(d, el, s); ok {
			dst = append(dst, p)
		}
	}
	return n.instProcs(dst, t)
}

// DeviceProcs appends the compute processes on device d at t.
func (n *Node) DeviceProcs(dst []fleet.Process, d int, t time.Time) []fleet.Process {
	if d >= len(n.Info.Devices) {
		for _, p := range n.instProcs(nil, t) {
			if p.Device == d {
				dst = append(dst, p)
			}
		}
		return dst
	}
	el := t.Sub(n.start).Seconds()
	if p, ok := n.proc(d, el, n.state(d, el, float64(t.UnixNano())/1e9)); ok {
		dst = append(dst, p)
	}
	return dst
}

func (n *Node) proc(d int, el float64, s devState) (fleet.Process, bool) {
	if !s.procAlive || s.fellOff || n.Info.Devices[d].MIG {
		return fleet.Process{}, false // a MIG GPU's processes run in its instances
	}
	pid := uint32(4000 + hash2(n.key, 77)%60000 + uint64(d))
	if n.Work == Notebook {
		pid = uint32(4000 + hash2(hash2(n.key, uint64(d)), uint64(el/1800))%60000)
	}
	used := s.memUsed
	if used > 512*mib {
		used -= 512 * mib
	}
	return fleet.Process{Device: d, PID: pid, Name: n.procName, UsedMemory: used, Job: n.jobs[d],
		Util: fleet.Some(math.Round(s.util*100) / 100)}, true
}
