package ascend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// slowNpuSmi writes an npu-smi that prints the 910B fixture, except while
// the file DIR/hang exists: then it records its pid and that of a child
// that never returns, and waits for it (as a hung driver call would).
func slowNpuSmi(t *testing.T) (bin, dir string) {
	t.Helper()
	dir = t.TempDir()
	fixture, _ := filepath.Abs("testdata/910b/info.txt")
	script := "#!/bin/sh\n" +
		"if [ -e " + dir + "/hang ]; then sleep 600 & echo $! >" + dir + "/child.tmp; mv " + dir + "/child.tmp " + dir + "/child; wait; fi\n" +
		"if [ \"$*\" = info ]; then exec cat " + fixture + "; fi\n" +
		"exit 1\n"
	bin = filepath.Join(dir, "npu-smi")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// waitFor waits for cond, checking whenever the source finished a poll (or
// every 10 ms for outside state); the bound only keeps a broken source from
// hanging the test.
func waitFor(t *testing.T, polled <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for !cond() {
		select {
		case <-polled:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func TestHungNpuSmiIsKilledAndNeverStallsCollect(t *testing.T) {
	bin, dir := slowNpuSmi(t)
	s := New(Options{Path: bin, Interval: time.Millisecond, Timeout: 50 * time.Millisecond, MaxTimeout: 100 * time.Millisecond,
		StaleAfter: time.Hour, MaxAge: time.Hour})
	polled := make(chan struct{}, 1)
	s.polled = func() {
		select {
		case polled <- struct{}{}:
		default:
		}
	}
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.WriteFile(filepath.Join(dir, "hang"), nil, 0o644)
	var child int
	waitFor(t, polled, "a hung npu-smi run", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "child"))
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && child > 0
	})
	// While npu-smi hangs, Collect answers from the last good reading.
	done := make(chan error, 1)
	var smp fleet.Sample
	go func() { done <- s.Collect(context.Background(), &smp) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Collect during a hung npu-smi: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Collect waited for npu-smi")
	}
	if len(smp.Devices) != 4 {
		t.Fatalf("Collect during a hung npu-smi gave %d devices, want the last reading's 4", len(smp.Devices))
	}
	if v, ok := smp.Devices[0].Get(fleet.MetricTemp); !ok || v != 35 {
		t.Errorf("temperature %v %v", v, ok)
	}
	waitFor(t, polled, "the hung run to be killed", func() bool { return s.Counters()["npu_smi_killed"] > 0 })
	// The kill took the hung child too (its process group).
	waitFor(t, polled, "the hung child to die", func() bool {
		return errors.Is(syscall.Kill(child, 0), syscall.ESRCH) || zombie(child)
	})
	if to := s.Counters()["npu_smi_timeout_ms"]; to != 100 {
		t.Errorf("timeout after kills %d ms, want it doubled up to MaxTimeout (100 ms)", to)
	}
	// npu-smi answers again: fresh readings, and the timeout follows them.
	os.Remove(filepath.Join(dir, "hang"))
	runs := s.Counters()["npu_smi_runs"]
	waitFor(t, polled, "a good run after the hang", func() bool {
		c := s.Counters()
		return c["npu_smi_runs"] > runs+1 && c["npu_smi_failures"] < c["npu_smi_runs"]
	})
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestStaleReadingIsMarkedThenDropped(t *testing.T) {
	bin, _ := slowNpuSmi(t)
	clk := &fakeClock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	s := New(Options{Path: bin, Interval: time.Hour, StaleAfter: 15 * time.Second, MaxAge: time.Minute, Clock: clk.now})
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		advance time.Duration
		stale   bool
		devices int
	}{
		{time.Second, false, 4},
		{20 * time.Second, true, 4}, // 21 s old: used, marked stale
		{time.Minute, true, 0},      // 81 s old: no values at all
	} {
		clk.add(tc.advance)
		var smp fleet.Sample
		err := s.Collect(context.Background(), &smp)
		if errors.Is(err, ErrStale) != tc.stale || len(smp.Devices) != tc.devices {
			t.Errorf("after +%s: err %v, %d devices; want stale %v, %d devices", tc.advance, err, len(smp.Devices), tc.stale, tc.devices)
		}
	}
	if age := s.Counters()["reading_age_ms"]; age != 81_000 {
		t.Errorf("reading age %d ms, want 81000", age)
	}
	s.pollOnce(context.Background())
	var smp fleet.Sample
	if err := s.Collect(context.Background(), &smp); err != nil || len(smp.Devices) != 4 {
		t.Errorf("after a fresh reading: err %v, %d devices", err, len(smp.Devices))
	}
}

func TestTimeoutFollowsRunTimes(t *testing.T) {
	s := New(Options{Timeout: 3 * time.Second, MaxTimeout: 60 * time.Second})
	for _, tc := range []struct {
		took time.Duration
		err  error
		want time.Duration
	}{
		{100 * time.Millisecond, nil, 3 * time.Second}, // fast: the floor
		{4 * time.Second, nil, 16 * time.Second},       // a busy 8×910B: 4× the slowest recent run
		{5400 * time.Millisecond, nil, 21600 * time.Millisecond},
		{21600 * time.Millisecond, errKilled, 43200 * time.Millisecond}, // killed: twice the time next
		{43200 * time.Millisecond, errKilled, 60 * time.Second},         // up to the ceiling
		{time.Second, errors.New("exit status 1"), 60 * time.Second},    // other failures change nothing
	} {
		s.observe(tc.took, tc.err)
		if got := s.currentTimeout(); got != tc.want {
			t.Errorf("after a %s run (err %v): timeout %s, want %s", tc.took, tc.err, got, tc.want)
		}
	}
}
