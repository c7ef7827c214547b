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

// Now returns the simulated time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	real := c.now().Sub(c.realStart)
	if c.speed == 1 {
		return c.start.Add(real)
	}
	return c.start.Add(time.Duration(float64(real) * c.speed))
}

// Speed returns how many simulated seconds pass per wall-clock second.
func (c *Clock) Speed() float64 { return c.speed }

// Real converts a simulated duration into wall-clock time.
func (c *Clock) Real(d time.Duration) time.Duration { return time.Duration(float64(d) / c.speed) }
