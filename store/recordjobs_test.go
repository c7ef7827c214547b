package store

import (
	"path/filepath"
	"testing"

	"github.com/fleettop/fleettop/fleet"
)

// TestRecordAttributesJobs pins which job a device's bucket is booked to:
// the first process on it that runs a job, kept while samples carry no
// process list, and the node's team label where the job names none.
func TestRecordAttributesJobs(t *testing.T) {
	clk := newClock()
	st := openT(t, filepath.Join(t.TempDir(), "fleettop.db"), Options{Clock: clk.Now})
	defer st.Close()
	n := testNode("n1", 3)
	proc := func(dev int, job, team string) fleet.Process {
		return fleet.Process{Device: dev, PID: uint32(100 + dev), Job: fleet.Job{ID: job, Team: team}}
	}
	want := func(step string, jobs ...jobRef) {
		t.Helper()
		a := st.acc("n1")
		for i, w := range jobs {
			b := a.bucketFor(i, a.cur[i].minute)
			if got := (jobRef{b.job, b.team}); got != w {
				t.Errorf("%s: device %d booked to %+v, want %+v", step, i, got, w)
			}
		}
	}

	s := testSample(1, clk.t, 3, 0.5)
	s.ProcsSet = true
	s.Procs = []fleet.Process{
		proc(0, "", "nobody"), // no job: passed over
		proc(0, "train", "ml"),
		proc(0, "eval", "ml"), // a second job on device 0: the first wins
		proc(2, "serve", ""),  // no team: the node's label
	}
	st.Record(n, 0, s)
	want("first sample", jobRef{"train", "ml"}, jobRef{"", "vision"}, jobRef{"serve", "vision"})

	clk.t = clk.t.Add(1e9)
	st.Record(n, 0, testSample(2, clk.t, 3, 0.5)) // no process list: unchanged
	want("without a process list", jobRef{"train", "ml"}, jobRef{"", "vision"}, jobRef{"serve", "vision"})

	clk.t = clk.t.Add(1e9)
	s = testSample(3, clk.t, 3, 0.5)
	s.ProcsSet = true
	s.Procs = []fleet.Process{proc(1, "eval", "qa")}
	st.Record(n, 0, s)
	want("a new process list", jobRef{"", "vision"}, jobRef{"eval", "qa"}, jobRef{"", "vision"})
}
