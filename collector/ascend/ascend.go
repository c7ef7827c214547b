package ascend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/opt"
)

// npu-smi is slow: a full `npu-smi info` takes seconds on a busy 8×910B host
// (5.4 s was reported on 8×910B3). So it never runs on the collector's tick:
// a poller owned by the source runs it on a cadence of its own, one run at a
// time, and Collect hands the agent the last good reading at once. Each run's
// timeout follows what runs have taken (four times the slowest recent run,
// within Timeout..MaxTimeout); a run past it is killed, with its process
// group, and the next one gets twice the time. A reading older than
// StaleAfter is still sent but Collect reports it stale; one older than
// MaxAge is no longer sent (the values are absent, not old).

// Options tune the source. The zero value is usable.
type Options struct {
	// Path is the npu-smi binary (default "npu-smi" from PATH).
	Path string
	// Interval is the cadence of npu-smi runs (default 5 s); a run that takes
	// longer delays the next, runs never overlap.
	Interval time.Duration
	// Timeout is the smallest per-run timeout (default 3 s); the timeout in
	// force adapts to observed run times, up to MaxTimeout (default 60 s).
	Timeout    time.Duration
	MaxTimeout time.Duration
	// StartTimeout bounds the first `npu-smi info` at Start, which nothing
	// has been observed for yet (default 20 s).
	StartTimeout time.Duration
	// StaleAfter is the age from which Collect reports the reading stale
	// (default 3 × Interval); MaxAge the age after which it sends no values
	// (default 12 × Interval).
	StaleAfter time.Duration
	MaxAge     time.Duration
	Logger     *slog.Logger
	Clock      func() time.Time
}

type key struct{ npu, chip int }

type chipState struct {
	index  int
	health fleet.Health
	seen   bool
	// per-chip queries that failed once are not run again
	noPower, noTemp, noUsage bool
}

// reading is one good `npu-smi info` (and its per-chip queries).
type reading struct {
	at    time.Time // when the run finished
	devs  []fleet.DeviceSample
	procs []fleet.Process
}

// Source reads Ascend NPUs through npu-smi.
type Source struct {
	o     Options
	chips map[key]*chipState // owned by Start, then by the poller
	inv   collector.Inventory

	mu       sync.Mutex
	last     *reading
	events   []fleet.Event
	lastErr  string
	recent   []time.Duration // durations of the last good runs, newest last
	timeout  time.Duration   // in force for the next run
	runs     uint64
	failures uint64
	killed   uint64
	lastDur  time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// polled, when set (tests), is called after every poll.
	polled func()
}

var _ collector.Source = (*Source)(nil)

// ErrStale reports that the last good reading is older than StaleAfter; the
// reading was still used.
var ErrStale = errors.New("stale npu-smi reading")

// New returns an Ascend source.
func New(o Options) *Source {
	if o.Path == "" {
		o.Path = "npu-smi"
	}
	opt.Positive(&o.Interval, 5*time.Second)
	opt.Positive(&o.Timeout, 3*time.Second)
	if o.MaxTimeout < o.Timeout {
		o.MaxTimeout = max(60*time.Second, o.Timeout)
	}
	opt.Positive(&o.StartTimeout, 20*time.Second)
	opt.Positive(&o.StaleAfter, 3*o.Interval)
	if o.MaxAge < o.StaleAfter {
		o.MaxAge = max(12*o.Interval, o.StaleAfter)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Source{o: o, timeout: o.Timeout}
}

// Name implements collector.Source.
func (s *Source) Name() string { return "ascend" }

// errKilled marks a run killed at its timeout.
var errKilled = errors.New("killed at its timeout")

// run runs npu-smi with args under timeout; a run past it is killed with its
// process group.
func (s *Source) run(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.o.Path, args...)
	killGroup(cmd)
	cmd.WaitDelay = time.Second // children holding the pipes must not hold us
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("%w (%s)", errKilled, timeout.Round(time.Millisecond))
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg != "" {
			msg = ": " + msg
		}
		return out, fmt.Errorf("npu-smi %s: %w%s", strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// currentTimeout is the timeout for the next run.
func (s *Source) currentTimeout() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timeout
}

// observe adapts the timeout to a run that took d (err: how it failed).
func (s *Source) observe(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs++
	s.lastDur = d
	switch {
	case errors.Is(err, errKilled):
		s.killed++
		s.failures++
		s.timeout = min(2*s.timeout, s.o.MaxTimeout)
		return
	case err != nil:
		s.failures++
		return
	}
	s.recent = append(s.recent, d)
	if len(s.recent) > 8 {
		s.recent = s.recent[1:]
	}
	s.timeout = min(max(4*slices.Max(s.recent), s.o.Timeout), s.o.MaxTimeout)
}

// Start runs `npu-smi info` once and builds the inventory; no npu-smi or no
// chips means no Ascend hardware. It then starts the poller.
func (s *Source) Start(ctx context.Context) (collector.Inventory, error) {
	t0 := time.Now()
	out, err := s.run(ctx, s.o.StartTimeout, "info")
	s.observe(time.Since(t0), err)
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
		inv.Devices = append(inv.Devices, d)
	}
	s.boardIDs(ctx, info, inv.Devices)
	s.inv = inv
	// The inventory's own run is the first reading (table values only: the
	// per-chip queries for NA cells wait for the poller).
	r := s.reading(nil, info, s.o.Clock())
	s.mu.Lock()
	s.last = r
	s.mu.Unlock()

	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(1)
	go s.poll(pctx)
	return inv, nil
}

// boardIDs names each chip by its VDie ID where `npu-smi info -t board`
// gives one. The queries run side by side, so a slow npu-smi costs one run
// time, not one per chip.
func (s *Source) boardIDs(ctx context.Context, info Info, devs []fleet.Device) {
	timeout := s.currentTimeout()
	var wg sync.WaitGroup
	for _, c := range info.Chips {
		st := s.chips[key{c.NPU, c.Chip}]
		if st == nil {
			continue
		}
		d := &devs[st.index]
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := s.run(ctx, timeout, "info", "-t", "board", "-i", strconv.Itoa(c.NPU), "-c", strconv.Itoa(c.Chip))
			if err != nil {
				return
			}
			if v := strings.ReplaceAll(ParseKV(b)["VDie ID"], " ", ""); v != "" && v != "NA" {
				d.UUID = "ascend-" + v
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range devs { // two chips must never share a UUID
		if seen[devs[i].UUID] {
			devs[i].UUID = fmt.Sprintf("ascend-npu%d-%d", i, i)
		}
		seen[devs[i].UUID] = true
	}
}

// poll runs npu-smi every Interval (from the start of one run to the next)
// until ctx ends.
func (s *Source) poll(ctx context.Context) {
	defer s.wg.Done()
	next := time.Now().Add(s.o.Interval)
	for {
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		next = time.Now().Add(s.o.Interval)
		s.pollOnce(ctx)
		if s.polled != nil {
			s.polled()
		}
	}
}

// pollOnce takes one reading: `npu-smi info`, then the per-chip queries
// where the table says NA.
func (s *Source) pollOnce(ctx context.Context) {
	t0 := time.Now()
	b, err := s.run(ctx, s.currentTimeout(), "info")
	s.observe(time.Since(t0), err)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.mu.Lock()
		if msg := err.Error(); msg != s.lastErr {
			s.o.Logger.Warn("ascend: npu-smi failed; keeping the last good reading", "error", msg)
			s.lastErr = msg
		}
		s.mu.Unlock()
		return
	}
	info := ParseInfo(b)
	var evs []fleet.Event
	r := s.reading(&evs, info, time.Time{})
	for _, c := range info.Chips {
		if st := s.chips[key{c.NPU, c.Chip}]; st != nil {
			s.fillMissing(ctx, c, st, &r.devs[slices.IndexFunc(r.devs, func(d fleet.DeviceSample) bool { return d.Index == st.index })])
		}
	}
	r.at = s.o.Clock()
	s.mu.Lock()
	s.last = r
	s.lastErr = ""
	s.events = append(s.events, evs...)
	if over := len(s.events) - 256; over > 0 { // nobody collecting: keep the newest
		s.events = s.events[over:]
	}
	s.mu.Unlock()
}

// reading builds a reading from a parsed table; health changes since the
// previous reading are appended to evs (nil: not tracked).
func (s *Source) reading(evs *[]fleet.Event, info Info, at time.Time) *reading {
	r := &reading{at: at}
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
		if h, ok := parseHealth(c.Health); ok {
			d.Set(fleet.MetricHealth, float64(h))
			if evs != nil && st.seen && h != st.health {
				sev := fleet.SevInfo
				switch h {
				case fleet.HealthWarning:
					sev = fleet.SevWarning
				case fleet.HealthCritical:
					sev = fleet.SevCritical
				}
				*evs = append(*evs, fleet.Event{
					Time: now, Kind: fleet.EventHealth, Severity: sev, Device: st.index,
					Message: fmt.Sprintf("NPU %d chip %d health %s", c.NPU, c.Chip, c.Health),
				})
			}
			st.health, st.seen = h, true
		}
		r.devs = append(r.devs, d)
	}
	for _, p := range info.Procs {
		st := s.chips[key{p.NPU, p.Chip}]
		if st == nil {
			continue
		}
		r.procs = append(r.procs, fleet.Process{Device: st.index, PID: p.PID, Name: p.Name, UsedMemory: p.MemMB << 20})
	}
	return r
}

// Collect adds the last good reading, at once: it never waits for npu-smi.
func (s *Source) Collect(_ context.Context, out *fleet.Sample) error {
	if s.chips == nil {
		return collector.NoData("Ascend not available")
	}
	s.mu.Lock()
	r, lastErr := s.last, s.lastErr
	out.Events = append(out.Events, s.events...)
	s.events = s.events[:0]
	s.mu.Unlock()
	age := s.o.Clock().Sub(r.at)
	why := ""
	if lastErr != "" {
		why = "; last run: " + lastErr
	}
	if age > s.o.MaxAge {
		return fmt.Errorf("ascend: %w: no good npu-smi reading for over %s, values left out%s", ErrStale, s.o.MaxAge, why)
	}
	out.Devices = append(out.Devices, r.devs...)
	out.Procs = append(out.Procs, r.procs...)
	if age > s.o.StaleAfter {
		return fmt.Errorf("ascend: %w: the reading in use is over %s old%s", ErrStale, s.o.StaleAfter, why)
	}
	return nil
}

// Counters reports the poller's figures for status output.
func (s *Source) Counters() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]uint64{
		"npu_smi_runs": s.runs, "npu_smi_failures": s.failures, "npu_smi_killed": s.killed,
		"npu_smi_last_ms": uint64(s.lastDur.Milliseconds()), "npu_smi_timeout_ms": uint64(s.timeout.Milliseconds()),
	}
	if s.last != nil {
		c["reading_age_ms"] = uint64(max(0, s.o.Clock().Sub(s.last.at).Milliseconds()))
	}
	return c
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
		b, err := s.run(ctx, s.currentTimeout(), append([]string{"info", "-t", kind}, ids...)...)
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
				d.Set(fleet.MetricUtil, v/100)
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

// Close stops the poller, killing a run in progress, and waits for it.
func (s *Source) Close() error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
		s.cancel = nil
	}
	return nil
}
