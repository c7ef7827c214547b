package mock

import (
	"sync"
	"time"
)

// Clock is simulated time: it starts at Start and runs Speed times faster
// than the wall clock. The zero Speed means 1.
type Clock struct {
	mu        sync.Mutex
	start     time.Time // simulated time at realStart
	realStart time.Time
	speed     float64
	now       func() time.Time
	capped    bool // never ahead of the wall clock
}

// NewClock returns a clock that reads start now and then runs speed times
// faster than the wall clock (speed ≤ 0 means 1).
func NewClock(start time.Time, speed float64) *Clock {
	return newClock(start, speed, time.Now)
}

func newClock(start time.Time, speed float64, now func() time.Time) *Clock {
	if speed <= 0 {
		speed = 1
	}
	return &Clock{start: start, realStart: now(), speed: speed, now: now}
}

// NewCatchUpClock returns a clock that starts behind the wall clock by
// (speed-1) × catchUp, runs speed times faster until it has caught up (after
// catchUp of wall time), and then keeps to the wall clock. So a fleet's
// history builds up fast, yet no sample is ever stamped in the future of the
// aggregator, the store and the cost engine, which all read the wall clock.
func NewCatchUpClock(speed float64, catchUp time.Duration) *Clock {
	return newCatchUpClock(speed, catchUp, time.Now)
}

func newCatchUpClock(speed float64, catchUp time.Duration, now func() time.Time) *Clock {
	if speed <= 1 {
		return newClock(now().Round(0), 1, now)
	}
	wall := now().Round(0)
	start := wall.Add(-time.Duration(float64(catchUp) * (speed - 1)))
	c := newClock(start, speed, now)
	c.realStart, c.capped = wall, true
	return c
}

// Now returns the simulated time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := c.now()
	real := wall.Sub(c.realStart)
	var t time.Time
	if c.speed == 1 {
		t = c.start.Add(real)
	} else {
		t = c.start.Add(time.Duration(float64(real) * c.speed))
	}
	if c.capped && t.After(wall) {
		return wall.Round(0)
	}
	return t
}

// Start returns the simulated time at which the clock started.
func (c *Clock) Start() time.Time { return c.start }

// CatchUpIn returns how much wall time is left until a catch-up clock has
// caught up with the wall clock (0 once it has, or for other clocks).
func (c *Clock) CatchUpIn() time.Duration {
	if !c.capped {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	behind := c.realStart.Sub(c.start) // simulated lag at the start
	total := time.Duration(float64(behind) / (c.speed - 1))
	return max(total-c.now().Sub(c.realStart), 0)
}

// Real converts a simulated duration into wall-clock time.
func (c *Clock) Real(d time.Duration) time.Duration { return time.Duration(float64(d) / c.speed) }
