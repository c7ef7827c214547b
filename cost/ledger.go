package cost

import (
	"cmp"
	"slices"
	"time"
)

// GPUMinute is what the ledger needs of one GPU's minute: how long it
// reported, how much of that was idle (the minute's mean utilisation was
// under the idle threshold: all of it or none), and the job using it.
type GPUMinute struct {
	Device     int
	Minute     time.Time // start of the minute
	ReportedMs int64
	IdleMs     int64
	Job, Team  string
}

// Line is one ledger line: one node's GPU-time and money over an interval
// in one currency, for one job (and team). Job "" is the node's remainder:
// leased time no job reported on, including all dark time and, for leases
// billed per started hour, the difference between the charge and the
// per-second value.
type Line struct {
	Currency      string
	Job, Team     string
	LeasedGPUms   int64
	ReportedGPUms int64 // reported within the lease
	IdleGPUms     int64 // reported idle within the lease
	DarkGPUms     int64 // leased, not reported
	Spend         Exact
	Idle          Exact // idle spend: price × idle GPU-time
	Dark          Exact // paid but dark: price × dark GPU-time
	// BlindGPUms and Blind: the part of the dark time on GPUs no sensor
	// sees (paid but blind); on the remainder line only.
	BlindGPUms int64
	Blind      Exact
}

// Ledger splits what the lease vs costs over [from, to) (see Accrue) among
// the jobs that reported on its GPUs, from the node's GPU-minutes. Each
// minute is priced by the version in effect at its start (versions change
// on whole minutes), and counts only the part of it that was leased. team
// is the node's own team, given to the remainder line.
func Ledger(vs []Version, origin, from, to time.Time, mins []GPUMinute, team string) []Line {
	accr := Accrue(vs, origin, from, to)
	if len(accr) == 0 {
		return nil
	}
	type key struct{ cur, job, team string }
	type priced struct {
		k     key
		price int64
	}
	used := map[priced]*[2]int64{} // reported, idle GPU-ms within the lease
	om, fm, tm := ms(origin), ms(from), ms(to)
	for _, m := range mins {
		start := ms(m.Minute)
		vi := 0
		for i := 1; i < len(vs); i++ {
			if ms(vs[i].From) <= start {
				vi = i
			}
		}
		a, b := LeaseSpan(vs, vi, om)
		lo, hi := max(a, start, fm), min(b, start+60_000, tm)
		if hi <= lo {
			continue
		}
		r := min(m.ReportedMs, hi-lo)
		if r <= 0 {
			continue
		}
		idle := min(m.IdleMs, r)
		mt := m.Team
		if m.Job == "" && mt == "" {
			mt = team // job-less GPU-time without a team is the node's
		}
		p := priced{key{vs[vi].Price.Currency, m.Job, mt}, vs[vi].Price.Micros}
		u := used[p]
		if u == nil {
			u = new([2]int64)
			used[p] = u
		}
		u[0] += r
		u[1] += idle
	}
	lines := map[key]*Line{}
	line := func(k key) *Line {
		l := lines[k]
		if l == nil {
			l = &Line{Currency: k.cur, Job: k.job, Team: k.team}
			lines[k] = l
		}
		return l
	}
	value := map[key]Exact{} // price × reported GPU-time per line
	for p, u := range used {
		l := line(p.k)
		l.ReportedGPUms += u[0]
		l.IdleGPUms += u[1]
		l.Idle = l.Idle.Add(PriceTimes(p.price, u[1]))
		value[p.k] = value[p.k].Add(PriceTimes(p.price, u[0]))
	}
	for _, ac := range accr {
		rk := key{ac.Currency, "", team}
		rem := line(rk)
		var jobMs, allMs int64
		var jobValue, allValue Exact
		for k, l := range lines {
			if k.cur != ac.Currency {
				continue
			}
			allMs += l.ReportedGPUms
			allValue = allValue.Add(value[k])
			if k != rk {
				jobMs += l.ReportedGPUms
				jobValue = jobValue.Add(value[k])
				l.LeasedGPUms = l.ReportedGPUms
				l.Spend = value[k]
			}
		}
		rem.LeasedGPUms = ac.LeasedGPUms - jobMs
		rem.Spend = ac.Charge.Sub(jobValue)
		rem.DarkGPUms = ac.LeasedGPUms - allMs
		rem.Dark = ac.Basis.Sub(allValue)
		rem.BlindGPUms, rem.Blind = ac.BlindGPUms, ac.Blind
	}
	out := make([]Line, 0, len(lines))
	for _, l := range lines {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b Line) int {
		return cmp.Or(cmp.Compare(a.Currency, b.Currency), cmp.Compare(a.Job, b.Job), cmp.Compare(a.Team, b.Team))
	})
	return out
}
