package host

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleettop/fleettop/fleet"
)

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHostFromFixture(t *testing.T) {
	proc := t.TempDir()
	copyTree(t, "testdata/proc", proc)
	s := New(Options{ProcRoot: proc})
	if _, err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	next, _ := os.ReadFile(filepath.Join(proc, "stat.next"))
	os.WriteFile(filepath.Join(proc, "stat"), next, 0o644)
	var smp fleet.Sample
	if err := s.Collect(context.Background(), &smp); err != nil {
		t.Fatal(err)
	}
	h := smp.Host
	if h == nil {
		t.Fatal("no host sample")
	}
	// busy: (1300+600)-(1000+500) = 400 jiffies of 400+500 = 900.
	for m, want := range map[fleet.HostMetric]float64{
		fleet.HostCPUUtil: 400.0 / 900, fleet.HostLoad1: 0.5, fleet.HostLoad5: 1.25, fleet.HostLoad15: 2,
		fleet.HostMemTotal: 16000000 * 1024, fleet.HostMemUsed: (16000000 - 6000000) * 1024,
		fleet.HostNetRx: 4000000, fleet.HostNetTx: 1200000, fleet.HostUptime: 12345.67,
	} {
		got, ok := h.Get(m)
		if !ok || math.Abs(got-want) > 1e-9*math.Max(1, want) {
			t.Errorf("%s = %v (present %v), want %v", m, got, ok, want)
		}
	}
	if id := s.BootID(); id != "6f1c1e3a-5b1d-4a6e-9b7c-0d1e2f3a4b5c" {
		t.Errorf("boot id %q", id)
	}
}

func TestFirstCollectHasNoCPU(t *testing.T) {
	s := New(Options{ProcRoot: "testdata/proc"})
	var smp fleet.Sample
	// Without Start there is no previous reading: CPU utilisation is absent, not 0.
	if err := s.Collect(context.Background(), &smp); err != nil {
		t.Fatal(err)
	}
	if _, ok := smp.Host.Get(fleet.HostCPUUtil); ok {
		t.Fatal("cpu utilisation present without a delta")
	}
}

func TestNoProc(t *testing.T) {
	s := New(Options{ProcRoot: t.TempDir()})
	if _, err := s.Start(context.Background()); err == nil {
		t.Fatal("started without a proc filesystem")
	}
}
