//go:build cgo

// Package nvml is the NVIDIA source: it reads GPUs through an injected
// nvml.Interface (the real library, or go-nvml's mock servers in tests).
//
// Rules it keeps: nothing is called on the library after a failed Init (go-nvml
// would then die on a missing symbol); ERROR_NOT_SUPPORTED makes a metric
// absent, never zero, and the call is not repeated; devices are sampled
// concurrently by one worker goroutine each, and a device whose previous call
// has not returned is skipped and counted, so one hung GPU stalls nothing.
package nvml

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
)

// maxQueuedEvents bounds the XID events kept between two Collect calls.
const maxQueuedEvents = 256

// Source reads NVIDIA GPUs through NVML.
type Source struct {
	lib nvml.Interface
	o   Options

	started bool
	initErr error
	inv     collector.Inventory
	devs    []*device
	byH     map[nvml.Device]int

	round   uint64
	done    chan doneMsg
	got     []bool // answered this round, by device
	skipped atomic.Uint64

	evMu      sync.Mutex
	events    []fleet.Event
	evDropped uint64
	evSet     nvml.EventSet

	stop chan struct{}
	wg   sync.WaitGroup
}

type doneMsg struct {
	dev   int
	round uint64
}

var _ collector.Source = (*Source)(nil)

// New returns a source over lib; nothing is called on lib before Start.
func New(lib nvml.Interface, o Options) *Source {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Deadline <= 0 {
		o.Deadline = 500 * time.Millisecond
	}
	if o.EventWait <= 0 {
		o.EventWait = time.Second
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Source{lib: lib, o: o, stop: make(chan struct{})}
}

// NewSystem returns a source over the machine's NVML library.
func NewSystem(o Options) *Source {
	var opts []nvml.LibraryOption
	if o.LibraryPath != "" {
		opts = append(opts, nvml.WithLibraryPath(o.LibraryPath))
	}
	return New(nvml.New(opts...), o)
}

// Name implements collector.Source.
func (s *Source) Name() string { return "nvml" }

// Skipped returns how many device samples were skipped because the device's
// previous call had not returned.
func (s *Source) Skipped() uint64 { return s.skipped.Load() }

// Counters reports the source's counters for status output.
func (s *Source) Counters() map[string]uint64 {
	s.evMu.Lock()
	dropped := s.evDropped
	s.evMu.Unlock()
	return map[string]uint64{"skipped_device_samples": s.Skipped(), "events_dropped": dropped}
}

// Start initialises NVML once and looks every device handle up once.
func (s *Source) Start(ctx context.Context) (collector.Inventory, error) {
	if s.started {
		return s.inv, s.initErr
	}
	s.started = true
	if ret := safe(s.lib.Init); ret != nvml.SUCCESS {
		// Nothing else may be called on lib now, not even ErrorString.
		s.initErr = collector.NoData("NVML not available: %s", initReason(ret))
		return collector.Inventory{}, s.initErr
	}
	inv, err := s.discover()
	if err != nil {
		safe(s.lib.Shutdown)
		s.initErr = err
		return collector.Inventory{}, err
	}
	s.inv = inv
	s.done = make(chan doneMsg, 2*len(s.devs))
	s.got = make([]bool, len(s.devs))
	for _, d := range s.devs {
		s.wg.Add(1)
		go s.worker(d)
	}
	s.startEvents()
	return inv, nil
}

func (s *Source) discover() (collector.Inventory, error) {
	var inv collector.Inventory
	n, ret := s.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return inv, collector.NoData("NVML not available: device count: %s", retText(ret))
	}
	if n == 0 {
		return inv, collector.NoData("NVML not available: the driver reports no GPUs")
	}
	if v, ret := s.lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		inv.Driver = v
	}
	if v, ret := s.lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS && v > 0 {
		inv.CUDA = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	s.byH = make(map[nvml.Device]int, n)
	for i := range n {
		h, ret := s.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			s.o.Logger.Warn("nvml: device handle", "index", i, "error", retText(ret))
			continue
		}
		idx := len(s.devs)
		dev := fleet.Device{Index: idx, Vendor: fleet.VendorNVIDIA}
		if v, ret := h.GetName(); ret == nvml.SUCCESS {
			dev.Model = v
		}
		if v, ret := h.GetUUID(); ret == nvml.SUCCESS {
			dev.UUID = v
		}
		if p, ret := h.GetPciInfo(); ret == nvml.SUCCESS {
			dev.PCIBusID = busID(p)
		}
		if m, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
			dev.MemoryTotal = m.Total
		}
		if mw, ret := h.GetEnforcedPowerLimit(); ret == nvml.SUCCESS {
			dev.PowerLimit = float64(mw) / 1000
		} else if mw, ret := h.GetPowerManagementLimit(); ret == nvml.SUCCESS {
			dev.PowerLimit = float64(mw) / 1000
		}
		if cur, _, ret := safeMig(h); ret == nvml.SUCCESS {
			dev.MIG = cur == nvml.DEVICE_MIG_ENABLE
		}
		inv.Devices = append(inv.Devices, dev)
		s.devs = append(s.devs, &device{idx: idx, h: h, req: make(chan uint64, 1), gpm: newGPM(s.lib, h, false, 0)})
		s.byH[h] = idx
	}
	if len(s.devs) == 0 {
		return inv, collector.NoData("NVML not available: no usable GPU handle")
	}
	// MIG instances follow the physical GPUs, so those keep nvidia-smi's
	// indexes; each names its parent.
	for p := range len(s.devs) {
		if inv.Devices[p].MIG {
			s.discoverMIG(&inv, p)
		}
	}
	return inv, nil
}

// discoverMIG adds the MIG instances of physical device p as devices of
// their own: memory and processes come from the instance's handle, profiling
// activity from GPM's per-instance samples of the parent.
func (s *Source) discoverMIG(inv *collector.Inventory, p int) {
	parent := s.devs[p]
	var max int
	if !parent.try(fMigCount, func() nvml.Return {
		var ret nvml.Return
		max, ret = parent.h.GetMaxMigDeviceCount()
		return ret
	}) {
		return
	}
	found := 0
	for i := range max {
		if len(s.devs) >= maxDevices {
			s.o.Logger.Warn("nvml: too many devices; MIG instances left out", "gpu", p)
			return
		}
		var mh nvml.Device
		if safe(func() nvml.Return {
			var ret nvml.Return
			mh, ret = parent.h.GetMigDeviceHandleByIndex(i)
			return ret
		}) != nvml.SUCCESS || mh == nil {
			continue // an empty slot
		}
		idx := len(s.devs)
		dev := fleet.Device{Index: idx, Vendor: fleet.VendorNVIDIA, PCIBusID: inv.Devices[p].PCIBusID,
			PowerLimit: 0, Instance: fleet.MIGInstance{Parent: p}}
		var gi, ci int
		var name string
		safe(func() (ret nvml.Return) { gi, ret = mh.GetGpuInstanceId(); return })
		safe(func() (ret nvml.Return) { ci, ret = mh.GetComputeInstanceId(); return })
		safe(func() (ret nvml.Return) { name, ret = mh.GetName(); return })
		safe(func() (ret nvml.Return) { dev.UUID, ret = mh.GetUUID(); return })
		var m nvml.Memory
		if safe(func() (ret nvml.Return) { m, ret = mh.GetMemoryInfo(); return }) == nvml.SUCCESS {
			dev.MemoryTotal = m.Total
		}
		dev.Model = name
		if dev.Model == "" {
			dev.Model = inv.Devices[p].Model + " MIG"
		}
		dev.Instance.GPUInstanceID, dev.Instance.ComputeInstanceID = gi, ci
		dev.Instance.Profile = migProfile(name, gi)
		inv.Devices = append(inv.Devices, dev)
		s.devs = append(s.devs, &device{idx: idx, h: mh, req: make(chan uint64, 1), gpm: newGPM(s.lib, parent.h, true, gi)})
		found++
	}
	// The parent's process list repeats its instances' processes.
	parent.noProcs = found > 0
}

// maxDevices bounds the devices of one node (the wire's bound).
const maxDevices = 64

// migProfile takes the profile from a MIG device's name, "NVIDIA A100-SXM4-80GB
// MIG 3g.40gb" → "3g.40gb", as DCGM's GPU_I_PROFILE label shows it.
func migProfile(name string, gi int) string {
	if i := strings.LastIndex(name, "MIG "); i >= 0 {
		if p := strings.TrimSpace(name[i+4:]); p != "" {
			return p
		}
	}
	return fmt.Sprintf("gi%d", gi)
}

func safeMig(h nvml.Device) (cur, pending int, ret nvml.Return) {
	defer func() {
		if recover() != nil {
			ret = nvml.ERROR_FUNCTION_NOT_FOUND
		}
	}()
	return h.GetMigMode()
}

func busID(p nvml.PciInfo) string {
	b := make([]byte, 0, len(p.BusId))
	for _, c := range p.BusId {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	if len(b) > 0 {
		return string(b)
	}
	return fmt.Sprintf("%08x:%02x:%02x.0", p.Domain, p.Bus, p.Device)
}

// Collect triggers every idle device's worker and waits for them up to the
// deadline; busy devices are skipped and counted.
func (s *Source) Collect(ctx context.Context, out *fleet.Sample) error {
	if s.initErr != nil {
		return s.initErr
	}
	if !s.started {
		return errors.New("nvml: Collect before Start")
	}
	s.round++
	clear(s.got)
	want := 0
	for _, d := range s.devs {
		if !d.busy.CompareAndSwap(false, true) {
			s.skipped.Add(1)
			continue
		}
		d.req <- s.round
		want++
	}
	timer := time.NewTimer(s.o.Deadline)
	defer timer.Stop()
	for want > 0 {
		select {
		case m := <-s.done:
			if m.round != s.round {
				continue // a late answer from a device that hung earlier
			}
			want--
			s.got[m.dev] = true
		case <-timer.C:
			want = 0
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// In index order, so the record's device layout is the same every tick.
	for i, d := range s.devs {
		if s.got[i] {
			out.Devices = append(out.Devices, d.sample)
			out.Procs = append(out.Procs, d.procs...)
			s.got[i] = false
		}
	}
	s.evMu.Lock()
	out.Events = append(out.Events, s.events...)
	s.events = s.events[:0]
	s.evMu.Unlock()
	return nil
}

// Close stops the workers and the event reader and shuts NVML down, unless a
// device call is still hung (calling Shutdown under it is not safe).
func (s *Source) Close() error {
	if !s.started || s.initErr != nil {
		return nil
	}
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(s.o.EventWait + 2*time.Second):
		s.o.Logger.Warn("nvml: a device call is still hung at close; not shutting NVML down")
		return errors.New("nvml: close: device call hung")
	}
	if s.evSet != nil {
		safe(s.evSet.Free)
	}
	for _, d := range s.devs {
		if d.gpm != nil {
			d.gpm.free()
		}
	}
	if ret := safe(s.lib.Shutdown); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %s", retText(ret))
	}
	return nil
}

func (s *Source) startEvents() {
	set, ret := safeEventSet(s.lib)
	if ret != nvml.SUCCESS {
		s.o.Logger.Info("nvml: no event set, XID errors will not be reported", "error", retText(ret))
		return
	}
	registered := 0
	for _, d := range s.devs {
		var r nvml.Return
		func() {
			defer func() {
				if recover() != nil {
					r = nvml.ERROR_FUNCTION_NOT_FOUND
				}
			}()
			r = d.h.RegisterEvents(nvml.EventTypeXidCriticalError, set)
		}()
		if r == nvml.SUCCESS {
			registered++
		}
	}
	if registered == 0 {
		safe(set.Free)
		s.o.Logger.Info("nvml: XID events not supported on any device")
		return
	}
	s.evSet = set
	s.wg.Add(1)
	go s.readEvents(set)
}

func safeEventSet(lib nvml.Interface) (set nvml.EventSet, ret nvml.Return) {
	defer func() {
		if recover() != nil {
			set, ret = nil, nvml.ERROR_FUNCTION_NOT_FOUND
		}
	}()
	return lib.EventSetCreate()
}

func (s *Source) readEvents(set nvml.EventSet) {
	defer s.wg.Done()
	ms := uint32(s.o.EventWait / time.Millisecond)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		var data nvml.EventData
		ret := nvml.ERROR_FUNCTION_NOT_FOUND
		func() {
			defer func() { recover() }()
			data, ret = set.Wait(ms)
		}()
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_TIMEOUT:
			continue
		default:
			// A broken event set must not spin: wait like a timeout would.
			select {
			case <-s.stop:
				return
			case <-time.After(s.o.EventWait):
			}
			continue
		}
		if data.EventType&nvml.EventTypeXidCriticalError == 0 {
			continue
		}
		idx, ok := s.byH[data.Device]
		if !ok {
			idx = -1
		}
		ev := fleet.Event{
			Time: s.o.Clock(), Kind: fleet.EventXID, Severity: xidSeverity(data.EventData),
			Device: idx, Code: int64(data.EventData),
			Message: fleet.XIDText(int64(data.EventData)),
		}
		s.evMu.Lock()
		if len(s.events) < maxQueuedEvents {
			s.events = append(s.events, ev)
		} else {
			s.evDropped++
		}
		s.evMu.Unlock()
	}
}

// xidSeverity rates an XID: the ones NVIDIA documents as requiring a reset or
// meaning lost GPU/memory are critical.
func xidSeverity(code uint64) fleet.Severity {
	switch code {
	case 48, 63, 64, 74, 79, 92, 94, 95, 119, 120, 140:
		return fleet.SevCritical
	}
	return fleet.SevWarning
}

// initReason explains the common Init failures in words.
func initReason(r nvml.Return) string {
	switch r {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml.so.1 not found (no NVIDIA driver on this machine)"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "the NVIDIA kernel driver is not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission to open /dev/nvidia* (run as root or add the user to the video group)"
	}
	return retText(r)
}

func retText(r nvml.Return) string {
	// Return.Error does not call into the library after a failed Init.
	return r.Error()
}

// safe calls fn, turning a panic (a mock without that function) into
// ERROR_FUNCTION_NOT_FOUND.
func safe(fn func() nvml.Return) (ret nvml.Return) {
	defer func() {
		if recover() != nil {
			ret = nvml.ERROR_FUNCTION_NOT_FOUND
		}
	}()
	return fn()
}
