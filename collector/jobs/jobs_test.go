package jobs

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/fleettop/fleettop/fleet"
)

func TestAttributeFixtures(t *testing.T) {
	r := New(Options{ProcRoot: "testdata/proc"})
	procs := []fleet.Process{{PID: 1001}, {PID: 1002}, {PID: 1003}, {PID: 1004}, {PID: 1005}, {PID: 1006}, {PID: 4040}}
	r.Attribute(procs)
	want := []struct {
		name string
		job  fleet.Job
	}{
		{"python", fleet.Job{ID: "train-llama", Source: "env", Team: "nlp", DataClass: "cn-customer"}},
		{"torchrun (rank 0)", fleet.Job{ID: "4242", Source: "slurm", Team: "vision"}},
		{"pt_main_thread", fleet.Job{ID: "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d", Source: "k8s"}},
		{"python3", fleet.Job{ID: "7a8b9c0d-1e2f-4a5b-8c6d-7e8f9a0b1c2d", Source: "k8s"}},
		{"jupyter", fleet.Job{Team: "research"}},
		{"srun", fleet.Job{ID: "99", Source: "slurm"}},
		{"", fleet.Job{}}, // no such process
	}
	for i, w := range want {
		if procs[i].Job != w.job || procs[i].Name != w.name {
			t.Errorf("pid %d: %q %+v, want %q %+v", procs[i].PID, procs[i].Name, procs[i].Job, w.name, w.job)
		}
	}
}

func writeProc(t *testing.T, root string, pid, start, job string) {
	t.Helper()
	dir := filepath.Join(root, pid)
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "stat"), []byte(pid+" (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 "+start+" 0 0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "environ"), []byte("FLEETTOP_JOB="+job+"\x00"), 0o644)
}

func TestCacheByPidAndStartTime(t *testing.T) {
	root := t.TempDir()
	writeProc(t, root, "50", "100", "first")
	r := New(Options{ProcRoot: root})
	if j := r.Resolve(50); j.ID != "first" {
		t.Fatalf("job %+v", j)
	}
	// Same process, environment changed on disk: the cached answer stands.
	os.WriteFile(filepath.Join(root, "50", "environ"), []byte("FLEETTOP_JOB=changed\x00"), 0o644)
	if j := r.Resolve(50); j.ID != "first" {
		t.Fatalf("re-read a cached process: %+v", j)
	}
	// The pid is reused by a new process (new start time): read afresh.
	writeProc(t, root, "50", "200", "second")
	if j := r.Resolve(50); j.ID != "second" {
		t.Fatalf("reused pid: %+v", j)
	}
}

func TestCachePrunesGonePids(t *testing.T) {
	root := t.TempDir()
	r := New(Options{ProcRoot: root})
	for pid := range 100 {
		writeProc(t, root, strconv.Itoa(pid+10), "1", "j")
		r.Attribute([]fleet.Process{{PID: uint32(pid + 10)}})
	}
	if len(r.cache) > 20 {
		t.Fatalf("cache holds %d entries for 1 live process", len(r.cache))
	}
}
