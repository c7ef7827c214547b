package aggregator

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// countingInsights counts Summarize calls.
type countingInsights struct {
	fakeInsights
	calls atomic.Int64
}

func (c *countingInsights) Summarize(now time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	c.calls.Add(1)
	return c.fakeInsights.Summarize(now)
}

// The watch cache ages on the server's clock, not the wall clock: with a
// simulated clock (fleettop demo, tests) a summary is recomputed once the
// simulated viewer interval has passed, however little real time did.
func TestSummaryCacheUsesInjectedClock(t *testing.T) {
	clk := newFakeClock()
	ins := &countingInsights{}
	ts := startServer(t, nil, func(c *Config) {
		c.Clock = clk.Now
		c.Insights = ins
		c.ViewerInterval = time.Hour // the wall clock never gets there in a test
	})
	ts.summarize(clk.Now())
	ts.summarize(clk.Now())
	if got := ins.calls.Load(); got != 1 {
		t.Fatalf("%d Summarize calls within one interval, want 1 (cached)", got)
	}
	clk.Advance(time.Hour)
	ts.summarize(clk.Now())
	if got := ins.calls.Load(); got != 2 {
		t.Fatalf("%d Summarize calls after the clock moved an interval, want 2", got)
	}
}
