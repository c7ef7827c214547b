// Package host is the node's own telemetry source (gopsutil): CPU
// utilisation, load, memory, network bytes, uptime and boot id.
package host

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
)

// Options tune the source.
type Options struct {
	// ProcRoot is the proc filesystem to read ("" = /proc); tests point it
	// at a fixture tree.
	ProcRoot string
}

// Source reads the host. Collect must not be called concurrently.
type Source struct {
	proc string
	ctx  context.Context // carries gopsutil's HOST_PROC
	prev cpu.TimesStat
	have bool
	smp  fleet.HostSample
}

var _ collector.Source = (*Source)(nil)

// New returns a host source.
func New(o Options) *Source {
	proc := o.ProcRoot
	if proc == "" {
		proc = "/proc"
	}
	ctx := context.WithValue(context.Background(), common.EnvKey, common.EnvMap{common.HostProcEnvKey: proc})
	return &Source{proc: proc, ctx: ctx}
}

// Name implements collector.Source.
func (s *Source) Name() string { return "host" }

// Start takes the first CPU reading, so the first Collect has a delta.
func (s *Source) Start(context.Context) (collector.Inventory, error) {
	if _, err := os.Stat(filepath.Join(s.proc, "stat")); err != nil {
		return collector.Inventory{}, collector.NoData("host: no proc filesystem at %s", s.proc)
	}
	if t, err := cpu.TimesWithContext(s.ctx, false); err == nil && len(t) > 0 {
		s.prev, s.have = t[0], true
	}
	return collector.Inventory{}, nil
}

// BootID returns the kernel's boot id ("" when unreadable).
func (s *Source) BootID() string {
	b, err := os.ReadFile(filepath.Join(s.proc, "sys/kernel/random/boot_id"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Collect sets s.Host. Readings that fail are absent; the rest still count.
func (s *Source) Collect(_ context.Context, out *fleet.Sample) error {
	h := &s.smp
	*h = fleet.HostSample{}
	if t, err := cpu.TimesWithContext(s.ctx, false); err == nil && len(t) > 0 {
		cur := t[0]
		if s.have {
			busy := busyOf(cur) - busyOf(s.prev)
			total := busy + (idleOf(cur) - idleOf(s.prev))
			if total > 0 {
				h.Set(fleet.HostCPUUtil, min(max(busy/total, 0), 1))
			}
		}
		s.prev, s.have = cur, true
	}
	if a, err := load.AvgWithContext(s.ctx); err == nil {
		h.Set(fleet.HostLoad1, a.Load1)
		h.Set(fleet.HostLoad5, a.Load5)
		h.Set(fleet.HostLoad15, a.Load15)
	}
	if m, err := mem.VirtualMemoryWithContext(s.ctx); err == nil {
		h.Set(fleet.HostMemUsed, float64(m.Total-m.Available))
		h.Set(fleet.HostMemTotal, float64(m.Total))
	}
	if ifs, err := net.IOCountersWithContext(s.ctx, true); err == nil {
		var rx, tx uint64
		for _, i := range ifs {
			if i.Name == "lo" {
				continue
			}
			rx += i.BytesRecv
			tx += i.BytesSent
		}
		h.Set(fleet.HostNetRx, float64(rx))
		h.Set(fleet.HostNetTx, float64(tx))
	}
	if up, ok := s.uptime(); ok {
		h.Set(fleet.HostUptime, up)
	}
	out.Host = h
	return nil
}

func (s *Source) uptime() (float64, bool) {
	b, err := os.ReadFile(filepath.Join(s.proc, "uptime"))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v, err == nil
}

func busyOf(t cpu.TimesStat) float64 {
	// Guest time is already counted in user time by the kernel.
	return t.User + t.Nice + t.System + t.Irq + t.Softirq + t.Steal
}

func idleOf(t cpu.TimesStat) float64 { return t.Idle + t.Iowait }

// Close does nothing: the source has no goroutines.
func (s *Source) Close() error { return nil }
