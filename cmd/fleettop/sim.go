package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/fleettop/fleettop/mock"
)

// simCatchUp is how long a --speed run takes to replay its past and reach
// the wall clock.
const simCatchUp = 10 * time.Minute

// simOptions are the simulated fleet's settings, which `fleettop demo` and
// `fleettop mock` share: its size and seed, how fast its clock replays the
// recent past, and how often its collectors sample.
type simOptions struct {
	Nodes    int
	Seed     int64
	Speed    float64
	Interval time.Duration
}

// addFlags declares --nodes (default nodes), --seed, --speed and --interval
// on c.
func (o *simOptions) addFlags(c *cobra.Command, nodes int) {
	f := c.Flags()
	f.IntVar(&o.Nodes, "nodes", nodes, "number of simulated nodes")
	f.Int64Var(&o.Seed, "seed", 1, "scenario seed: the same seed gives the same fleet and values")
	f.Float64Var(&o.Speed, "speed", 1, "replay: simulated time starts (speed-1)×10 minutes ago and runs this many times faster until it reaches now, so cost and history build up fast")
	f.DurationVar(&o.Interval, "interval", time.Second, "sampling interval of the simulated collectors")
}

// check reports the first setting out of range as a usage error.
func (o simOptions) check() error {
	if o.Nodes <= 0 {
		return usagef("give --nodes N, the number of simulated nodes (at least 1)")
	}
	if o.Speed <= 0 {
		return usagef("--speed must be positive")
	}
	if o.Interval < 10*time.Millisecond {
		return usagef("--interval %v is too short (at least 10ms)", o.Interval)
	}
	return nil
}

// scenario builds the simulated fleet on its clock. With --speed X,
// simulated time starts × simCatchUp in the past and runs X times
// faster until it meets the wall clock, then keeps to it, so history and
// cost build up fast and no sample is ever stamped in the future of the
// aggregator.
func (o simOptions) scenario() (*mock.Scenario, *mock.Clock, error) {
	clock := mock.NewCatchUpClock(o.Speed, simCatchUp)
	sc, err := mock.New(mock.Config{Nodes: o.Nodes, Seed: o.Seed, Start: clock.Start()})
	return sc, clock, err
}
