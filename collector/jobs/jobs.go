// Package jobs attributes GPU processes to jobs from their environment and
// cgroup, read under a configurable /proc root.
//
// In order of precedence: FLEETTOP_JOB in the environment (source "env"),
// SLURM_JOB_ID in the environment or a Slurm job in the cgroup path
// ("slurm"), a Kubernetes pod uid in the cgroup path ("k8s"). FLEETTOP_TEAM and
// FLEETTOP_DATA_CLASS label the job. A process matching none has an empty
// Job.ID. Answers are cached per pid and start time, so a process is read once
// in its life, and a reused pid is read afresh.
package jobs

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/fleettop/fleettop/fleet"
)

// Options tune the resolver.
type Options struct {
	ProcRoot string // "" = /proc
}

// Resolver attributes processes to jobs. Not safe for concurrent use (the
// agent calls it from its sampling loop).
type Resolver struct {
	proc  string
	cache map[uint32]entry
	gen   uint64
	buf   []byte
}

type entry struct {
	start uint64
	name  string
	job   fleet.Job
	gen   uint64
}

// New returns a resolver.
func New(o Options) *Resolver {
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	return &Resolver{proc: o.ProcRoot, cache: map[uint32]entry{}}
}

// Attribute fills Job and Name of every process, and forgets cached pids no
// longer present.
func (r *Resolver) Attribute(procs []fleet.Process) {
	r.gen++
	for i := range procs {
		p := &procs[i]
		e := r.lookup(p.PID)
		p.Job = e.job
		if p.Name == "" {
			p.Name = e.name
		}
	}
	if len(r.cache) > 2*len(procs)+16 {
		for pid, e := range r.cache {
			if e.gen != r.gen {
				delete(r.cache, pid)
			}
		}
	}
}

// Resolve returns the job of one process.
func (r *Resolver) Resolve(pid uint32) fleet.Job {
	r.gen++
	return r.lookup(pid).job
}

func (r *Resolver) lookup(pid uint32) entry {
	dir := filepath.Join(r.proc, strconv.FormatUint(uint64(pid), 10))
	start, ok := r.startTime(dir)
	if !ok {
		return entry{} // gone, or a pid from another pid namespace
	}
	if e, hit := r.cache[pid]; hit && e.start == start {
		e.gen = r.gen
		r.cache[pid] = e
		return e
	}
	e := entry{start: start, gen: r.gen, job: r.read(dir)}
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		e.name = strings.TrimSpace(string(b))
	}
	r.cache[pid] = e
	return e
}

// startTime is field 22 of /proc/PID/stat (after the parenthesised comm,
// which may itself hold spaces and parentheses).
func (r *Resolver) startTime(dir string) (uint64, bool) {
	f, err := os.Open(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if cap(r.buf) < 1024 {
		r.buf = make([]byte, 1024)
	}
	n, _ := f.Read(r.buf[:cap(r.buf)])
	b := r.buf[:n]
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	return v, err == nil
}

// The patterns compile on first use, not in every fleettop process's init.
var (
	// Kubernetes pod uid in systemd (underscores) or cgroupfs (dashes) form.
	podRe = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)
	})
	// Slurm: /slurm/uid_N/job_N/… (v1) or /slurmstepd.scope/job_N/… (v2).
	slurmRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`/job_([0-9]+)(/|$)`) })
)

func (r *Resolver) read(dir string) fleet.Job {
	var j fleet.Job
	env := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
		for kv := range bytes.SplitSeq(b, []byte{0}) {
			k, v, ok := bytes.Cut(kv, []byte{'='})
			if !ok {
				continue
			}
			switch string(k) {
			case "FLEETTOP_JOB", "SLURM_JOB_ID", "FLEETTOP_TEAM", "FLEETTOP_DATA_CLASS":
				env[string(k)] = string(v)
			}
		}
	}
	j.Team, j.DataClass = env["FLEETTOP_TEAM"], env["FLEETTOP_DATA_CLASS"]
	if v := env["FLEETTOP_JOB"]; v != "" {
		j.ID, j.Source = v, "env"
		return j
	}
	if v := env["SLURM_JOB_ID"]; v != "" {
		j.ID, j.Source = v, "slurm"
		return j
	}
	cg, _ := os.ReadFile(filepath.Join(dir, "cgroup"))
	if m := slurmRe().FindSubmatch(cg); m != nil && bytes.Contains(cg, []byte("slurm")) {
		j.ID, j.Source = string(m[1]), "slurm"
		return j
	}
	if m := podRe().FindSubmatch(cg); m != nil {
		j.ID, j.Source = strings.ReplaceAll(string(m[1]), "_", "-"), "k8s"
	}
	return j
}
