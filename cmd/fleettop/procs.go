package main

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"time"
)

// The aggregator runs on one P (GOMAXPROCS=1) while it needs little CPU and
// on all of them once it needs more. Its load is many small wake-ups (a
// frame per collector a second); with two Ps each wake-up on one core also
// wakes a thread on the other that finds nothing to do, and those
// cross-core wake-ups and context switches cost more than the work: in the
// ingest check's scenario (10,000 GPUs, 10 viewers, 0.05 cores) the
// aggregator took 15 % less CPU at GOMAXPROCS=1 (docs/BENCHMARKS.md, "One
// P while the load is light"). The hysteresis keeps a fleet near a
// threshold from flapping; GOMAXPROCS in the environment turns it off.
const (
	procsEvery = 10 * time.Second // how often the load is looked at
	procsLow   = 0.25             // cores: below this, one P
	procsHigh  = 0.45             // cores: above this (on one P), all of them
)

// nextProcs is the GOMAXPROCS for load (cores used over the last period)
// when cur is in force and max is the machine's.
func nextProcs(cur, max int, load float64) int {
	switch {
	case cur > 1 && load < procsLow:
		return 1
	case cur == 1 && load > procsHigh:
		return max
	}
	return cur
}

// governProcs adjusts GOMAXPROCS to the process's CPU use every procsEvery
// until ctx ends. The count it returns to is the runtime's at start (its
// first change also stops the runtime's own updates from a cgroup's CPU
// limit, which are rare on a jump host).
func governProcs(ctx context.Context, log *slog.Logger) {
	max := runtime.GOMAXPROCS(0)
	if _, set := os.LookupEnv("GOMAXPROCS"); set || max <= 1 {
		return
	}
	prev, ok := cpuTime()
	if !ok {
		return
	}
	at, cur := time.Now(), max
	t := time.NewTicker(procsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c, ok := cpuTime()
			if !ok {
				continue // keep prev: the next reading spans both periods
			}
			load := (c - prev).Seconds() / now.Sub(at).Seconds()
			prev, at = c, now
			if next := nextProcs(cur, max, load); next != cur {
				runtime.GOMAXPROCS(next)
				log.Info("GOMAXPROCS follows the load", "procs", next, "cores_used", load)
				cur = next
			}
		}
	}
}
