//go:build cgo

package nvml

import (
	"sync/atomic"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/fleettop/fleettop/fleet"
)

// field names one NVML query, for remembering which ones a device does not
// support (they are never called again).
type field uint8

const (
	fUtil field = iota
	fMemV2
	fMemV1
	fPower
	fEnergy
	fTemp
	fSMClock
	fMemClock
	fFan
	fEvents
	fThrottle
	fECCCorr
	fECCUncorr
	fRemap
	fRetired
	fProcs
	fECCCorrAgg
	fECCUncorrAgg
	fProcUtil
	fMigCount
)

// eccCounters are the ECC error counts read each sample: corrected and
// uncorrected, since the driver loaded (volatile) and over the GPU's life
// (aggregate).
var eccCounters = [...]struct {
	f       field
	kind    nvml.MemoryErrorType
	counter nvml.EccCounterType
	m       fleet.Metric
}{
	{fECCCorr, nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC, fleet.MetricECCCorrected},
	{fECCUncorr, nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC, fleet.MetricECCUncorrected},
	{fECCCorrAgg, nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.AGGREGATE_ECC, fleet.MetricECCCorrectedAgg},
	{fECCUncorrAgg, nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC, fleet.MetricECCUncorrectedAgg},
}

type device struct {
	idx  int
	h    nvml.Device
	req  chan uint64
	busy atomic.Bool

	// Owned by the worker while busy, read by Collect after the done message.
	sample fleet.DeviceSample
	procs  []fleet.Process
	unsup  uint32 // bit f: field f is not supported

	gpm *gpmState // nil: no GPM on this device
	// noProcs: the processes are listed by the device's MIG instances.
	noProcs bool
	// lastUtilTS is the newest process-utilisation sample already seen.
	lastUtilTS uint64
	utilByPID  map[uint32]float64
}

func (s *Source) worker(d *device) {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case round := <-d.req:
			d.read()
			d.busy.Store(false)
			select {
			case s.done <- doneMsg{dev: d.idx, round: round}:
			case <-s.stop:
				return
			}
		}
	}
}

// try runs one query unless the device is known not to support it; a
// NOT_SUPPORTED (or missing function) answer is remembered.
func (d *device) try(f field, fn func() nvml.Return) bool {
	if d.unsup&(1<<f) != 0 {
		return false
	}
	switch ret := safe(fn); ret {
	case nvml.SUCCESS:
		return true
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
		d.unsup |= 1 << f
	}
	return false
}

func (d *device) supported(f field) bool { return d.unsup&(1<<f) == 0 }

// read takes one sample of the device into d.sample and d.procs.
func (d *device) read() {
	h := d.h
	smp := &d.sample
	*smp = fleet.DeviceSample{Index: d.idx}
	var ret nvml.Return

	var u nvml.Utilization
	if d.try(fUtil, func() nvml.Return { u, ret = h.GetUtilizationRates(); return ret }) {
		smp.Set(fleet.MetricUtil, float64(u.Gpu)/100)
		smp.Set(fleet.MetricMemUtil, float64(u.Memory)/100)
	}

	var m2 nvml.Memory_v2
	if d.try(fMemV2, func() nvml.Return { m2, ret = h.GetMemoryInfo_v2(); return ret }) {
		smp.Set(fleet.MetricMemUsed, float64(m2.Used))
		smp.Set(fleet.MetricMemFree, float64(m2.Free))
		smp.Set(fleet.MetricMemTotal, float64(m2.Total))
	} else if !d.supported(fMemV2) {
		var m1 nvml.Memory
		if d.try(fMemV1, func() nvml.Return { m1, ret = h.GetMemoryInfo(); return ret }) {
			smp.Set(fleet.MetricMemUsed, float64(m1.Used))
			smp.Set(fleet.MetricMemFree, float64(m1.Free))
			smp.Set(fleet.MetricMemTotal, float64(m1.Total))
		}
	}

	var v uint32
	if d.try(fPower, func() nvml.Return { v, ret = h.GetPowerUsage(); return ret }) {
		smp.Set(fleet.MetricPower, float64(v)/1000) // mW
	}
	var e uint64
	if d.try(fEnergy, func() nvml.Return { e, ret = h.GetTotalEnergyConsumption(); return ret }) {
		smp.Set(fleet.MetricEnergy, float64(e)/1000) // mJ
	}
	if d.try(fTemp, func() nvml.Return { v, ret = h.GetTemperature(nvml.TEMPERATURE_GPU); return ret }) {
		smp.Set(fleet.MetricTemp, float64(v))
	}
	if d.try(fSMClock, func() nvml.Return { v, ret = h.GetClockInfo(nvml.CLOCK_SM); return ret }) {
		smp.Set(fleet.MetricSMClock, float64(v))
	}
	if d.try(fMemClock, func() nvml.Return { v, ret = h.GetClockInfo(nvml.CLOCK_MEM); return ret }) {
		smp.Set(fleet.MetricMemClock, float64(v))
	}
	if d.try(fFan, func() nvml.Return { v, ret = h.GetFanSpeed(); return ret }) {
		smp.Set(fleet.MetricFan, float64(v)/100)
	}
	if d.try(fEvents, func() nvml.Return { e, ret = h.GetCurrentClocksEventReasons(); return ret }) {
		smp.Set(fleet.MetricThrottle, float64(e))
	} else if !d.supported(fEvents) {
		if d.try(fThrottle, func() nvml.Return { e, ret = h.GetCurrentClocksThrottleReasons(); return ret }) {
			smp.Set(fleet.MetricThrottle, float64(e))
		}
	}
	for i := range eccCounters {
		c := &eccCounters[i]
		if d.try(c.f, func() nvml.Return { e, ret = h.GetTotalEccErrors(c.kind, c.counter); return ret }) {
			smp.Set(c.m, float64(e))
		}
	}

	var corr, unc int
	var pending, failed bool
	if d.try(fRemap, func() nvml.Return { corr, unc, pending, failed, ret = h.GetRemappedRows(); return ret }) {
		smp.Set(fleet.MetricRemappedRows, float64(corr+unc))
		health := fleet.HealthOK
		if pending {
			health = fleet.HealthWarning
		}
		if failed {
			health = fleet.HealthCritical
		}
		smp.Set(fleet.MetricHealth, float64(health))
		smp.Set(fleet.MetricRemapPending, b2f(pending))
		smp.Set(fleet.MetricRemapFailure, b2f(failed))
	} else if !d.supported(fRemap) {
		var pages []uint64
		n, ok := 0, false
		for _, cause := range [...]nvml.PageRetirementCause{
			nvml.PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS, nvml.PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
		} {
			if d.try(fRetired, func() nvml.Return { pages, ret = h.GetRetiredPages(cause); return ret }) {
				n += len(pages)
				ok = true
			}
		}
		if ok {
			smp.Set(fleet.MetricRetiredPages, float64(n))
		}
	}

	if d.gpm != nil {
		d.gpm.read(smp)
	}

	d.procs = d.procs[:0]
	if d.noProcs {
		return
	}
	var ps []nvml.ProcessInfo
	if d.try(fProcs, func() nvml.Return { ps, ret = h.GetComputeRunningProcesses(); return ret }) {
		d.readProcUtil()
		for _, p := range ps {
			fp := fleet.Process{Device: d.idx, PID: p.Pid, UsedMemory: usedMem(p.UsedGpuMemory)}
			if u, ok := d.utilByPID[p.Pid]; ok {
				fp.Util = fleet.Some(u)
			}
			d.procs = append(d.procs, fp)
		}
	}
}

// readProcUtil reads the SM utilisation of each process over the samples
// NVML took since the previous call (its newest sample per process wins).
// Without new samples a process keeps no utilisation: absent, not zero.
func (d *device) readProcUtil() {
	clear(d.utilByPID)
	var us []nvml.ProcessUtilizationSample
	var ret nvml.Return
	if !d.try(fProcUtil, func() nvml.Return { us, ret = d.h.GetProcessUtilization(d.lastUtilTS); return ret }) {
		return
	}
	if d.utilByPID == nil {
		d.utilByPID = make(map[uint32]float64, len(us))
	}
	newest := map[uint32]uint64{}
	for _, u := range us {
		if u.TimeStamp > d.lastUtilTS {
			d.lastUtilTS = u.TimeStamp
		}
		if ts, seen := newest[u.Pid]; seen && ts > u.TimeStamp {
			continue
		}
		newest[u.Pid] = u.TimeStamp
		d.utilByPID[u.Pid] = min(float64(u.SmUtil)/100, 1)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// usedMem maps NVML's "not available" marker (all ones) to 0, "unknown".
func usedMem(v uint64) uint64 {
	if v == ^uint64(0) {
		return 0
	}
	return v
}
