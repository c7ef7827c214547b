package insight

import (
	"testing"
	"time"
)

// TestCalendarDayMatchesTime checks the kept calendar day against
// time.Time's own fields, forwards across midnights, a month's end and a
// daylight-saving change, and for samples older than the day kept.
func TestCalendarDayMatchesTime(t *testing.T) {
	for _, zone := range []string{"UTC", "Asia/Singapore", "America/New_York"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Skipf("no zone data for %s: %v", zone, err)
		}
		cfg := DefaultConfig()
		cfg.Location = loc
		e, err := New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 10, 30, 20, 0, 0, 0, time.UTC) // New York leaves DST on Nov 1
		var times []time.Time
		for h := 0; h < 24*4; h++ {
			at := start.Add(time.Duration(h)*time.Hour + 59*time.Minute)
			times = append(times, at, at.Add(-36*time.Hour)) // a replayed sample between live ones
		}
		for _, at := range times {
			lt := at.In(loc)
			c := e.day(at)
			if got, want := c.dk, lt.Year()*10000+int(lt.Month())*100+lt.Day(); got != want {
				t.Fatalf("%s %v: day key %d, want %d", zone, at, got, want)
			}
			if got, want := c.mk, lt.Year()*100+int(lt.Month()); got != want {
				t.Fatalf("%s %v: month key %d, want %d", zone, at, got, want)
			}
			if got, want := c.start, time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc); !got.Equal(want) || !c.end.Equal(time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, loc)) {
				t.Fatalf("%s %v: day [%v, %v), want from %v", zone, at, got, c.end, want)
			}
			if got, want := c.monthStart, time.Date(lt.Year(), lt.Month(), 1, 0, 0, 0, 0, loc); !got.Equal(want) {
				t.Fatalf("%s %v: month start %v, want %v", zone, at, got, want)
			}
		}
	}
}
