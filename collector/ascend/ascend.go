package ascend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
)

// Options tune the source. The zero value is usable.
type Options struct {
	// Path is the npu-smi binary (default "npu-smi" from PATH).
	Path string
	// Timeout bounds each npu-smi run (default 3 s).
	Timeout time.Duration
	Logger  *slog.Logger
	Clock   func() time.Time
}

type key struct{ npu, chip int }

type chipState struct {
	index  int
	health fleet.Health
	seen   bool
	// per-chip queries that failed once are not run again
	noPower, noTemp, noUsage bool
}

// Source reads Ascend NPUs through npu-smi. Collect is not safe for
// concurrent use (the agent never does that).
type Source struct {
	o     Options
	chips map[key]*chipState
	inv   collector.Inventory
}

var _ collector.Source = (*Source)(nil)

// New returns an Ascend source.
func New(o Options) *Source {
	if o.Path == "" {
		o.Path = "npu-smi"
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Source{o: o}
}

// Name implements collector.Source.
func (s *Source) Name() string { return "ascend" }

func (s *Source) run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.o.Path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return out, fmt.Errorf("npu-smi %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// Start runs `npu-smi info` once and builds the inventory; no npu-smi or no
// chips means no Ascend hardware.
func (s *Source) Start(ctx context.Context) (collector.Inventory, error) {
	out, err := s.run(ctx, "info")
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return collector.Inventory{}, collector.NoData("Ascend not available: %s not found", s.o.Path)
		}
		return collector.Inventory{}, collector.NoData("Ascend not available: %v", err)
	}
	info := ParseInfo(out)
	if len(info.Chips) == 0 {
		return collector.Inventory{}, collector.NoData("Ascend not available: npu-smi lists no chips")
	}
	s.chips = make(map[key]*chipState, len(info.Chips))
	inv := collector.Inventory{Driver: info.Version}
	for _, c := range info.Chips {
		k := key{c.NPU, c.Chip}
		if _, dup := s.chips[k]; dup {
			continue
		}
		idx := len(inv.Devices)
		s.chips[k] = &chipState{index: idx}
		model := c.Name
		if !strings.HasPrefix(strings.ToLower(model), "ascend") {
			model = "Ascend " + model
		}
		d := fleet.Device{
			Index: idx, Vendor: fleet.VendorAscend, Model: model, PCIBusID: c.BusID,
			UUID: fmt.Sprintf("ascend-npu%d-chip%d", c.NPU, c.Chip),
		}
		if c.HasHBM && c.HBMTotalMB > 0 {
			d.MemoryTotal = c.HBMTotalMB << 20
		} else if c.HasMem {
			d.MemoryTotal = c.MemTotalMB << 20
		}
		if b, err := s.run(ctx, "info", "-t", "board", "-i", strconv.Itoa(c.NPU), "-c", strconv.Itoa(c.Chip)); err == nil {
			if v := strings.ReplaceAll(ParseKV(b)["VDie ID"], " ", ""); v != "" && v != "NA" {
				d.UUID = "ascend-" + v
			}
		}
		inv.Devices = append(inv.Devices, d)
	}
	s.inv = inv
	return inv, nil
}

// Collect runs `npu-smi info` and, for chips whose table cells say NA, the
// per-chip queries (once each, remembered when unsupported).
func (s *Source) Collect(ctx context.Context, out *fleet.Sample) error {
	if s.chips == nil {
		return collector.NoData("Ascend not available")
	}
	b, err := s.run(ctx, "info")
	if err != nil {
		return err
	}
	info := ParseInfo(b)
	now := s.o.Clock()
	for _, c := range info.Chips {
		st := s.chips[key{c.NPU, c.Chip}]
		if st == nil {
			continue // appeared after Start: inventory is fixed per session
		}
		d := fleet.DeviceSample{Index: st.index}
		if c.HasAICore {
			d.Set(fleet.MetricUtil, c.AICore/100)
		}
		switch {
		case c.HasHBM && c.HBMTotalMB > 0:
			setMem(&d, c.HBMUsedMB, c.HBMTotalMB)
		case c.HasMem && c.MemTotalMB > 0:
			setMem(&d, c.MemUsedMB, c.MemTotalMB)
		}
		if c.HasPower {
			d.Set(fleet.MetricPower, c.Power)
		}
		if c.HasTemp {
			d.Set(fleet.MetricTemp, c.Temp)
		}
		s.fillMissing(ctx, c, st, &d)
		if h, ok := parseHealth(c.Health); ok {
			d.Set(fleet.MetricHealth, float64(h))
			if st.seen && h != st.health {
				sev := fleet.SevInfo
				switch h {
				case fleet.HealthWarning:
					sev = fleet.SevWarning
				case fleet.HealthCritical:
					sev = fleet.SevCritical
				}
				out.Events = append(out.Events, fleet.Event{
					Time: now, Kind: fleet.EventHealth, Severity: sev, Device: st.index,
					Message: fmt.Sprintf("NPU %d chip %d health %s", c.NPU, c.Chip, c.Health),
				})
			}
			st.health, st.seen = h, true
		}
		out.Devices = append(out.Devices, d)
	}
	for _, p := range info.Procs {
		st := s.chips[key{p.NPU, p.Chip}]
		if st == nil {
			continue
		}
		out.Procs = append(out.Procs, fleet.Process{Device: st.index, PID: p.PID, Name: p.Name, UsedMemory: p.MemMB << 20})
	}
	return nil
}

func setMem(d *fleet.DeviceSample, usedMB, totalMB uint64) {
	used := min(usedMB, totalMB)
	d.Set(fleet.MetricMemUsed, float64(used<<20))
	d.Set(fleet.MetricMemTotal, float64(totalMB<<20))
	d.Set(fleet.MetricMemFree, float64((totalMB-used)<<20))
}

// fillMissing asks the per-chip queries for what the table left as NA.
func (s *Source) fillMissing(ctx context.Context, c Chip, st *chipState, d *fleet.DeviceSample) {
	ids := []string{"-i", strconv.Itoa(c.NPU), "-c", strconv.Itoa(c.Chip)}
	query := func(kind string, off *bool) map[string]string {
		if *off {
			return nil
		}
		b, err := s.run(ctx, append([]string{"info", "-t", kind}, ids...)...)
		if err != nil {
			*off = true
			s.o.Logger.Info("ascend: per-chip query not available", "type", kind, "npu", c.NPU, "chip", c.Chip, "error", err)
			return nil
		}
		return ParseKV(b)
	}
	if !c.HasPower {
		if kv := query("power", &st.noPower); kv != nil {
			if v, ok := KVValue(kv, "NPU Real-time Power(W)", "Power Dissipation(W)", "Power(W)"); ok {
				d.Set(fleet.MetricPower, v)
			}
		}
	}
	if !c.HasTemp {
		if kv := query("temp", &st.noTemp); kv != nil {
			if v, ok := KVValue(kv, "NPU Temperature(C)", "Temperature(C)", "Chip Temperature(C)"); ok {
				d.Set(fleet.MetricTemp, v)
			}
		}
	}
	if !c.HasAICore {
		if kv := query("usages", &st.noUsage); kv != nil {
			if v, ok := KVValue(kv, "Aicore Usage Rate(%)"); ok {
				d.Set(fleet.MetricUtil, v)
			}
		}
	}
}

// parseHealth maps npu-smi's health words: OK; Warning (minor alarm);
// Alarm (major) and Critical are both critical to us.
func parseHealth(s string) (fleet.Health, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ok":
		return fleet.HealthOK, true
	case "warning":
		return fleet.HealthWarning, true
	case "alarm", "critical":
		return fleet.HealthCritical, true
	}
	return 0, false
}

// Close does nothing: the source has no goroutines.
func (s *Source) Close() error { return nil }
