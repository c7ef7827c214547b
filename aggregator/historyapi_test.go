package aggregator

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// fakeRollups answers History with fixed buckets and records the query.
type fakeRollups struct {
	rows []fleet.HistoryBucket
	got  chan fleet.HistoryQuery
}

var _ HistoryReader = (*fakeRollups)(nil)

func (f *fakeRollups) History(_ context.Context, q fleet.HistoryQuery) ([]fleet.HistoryBucket, error) {
	f.got <- q
	return f.rows, nil
}

func getHistory(t *testing.T, ts *testServer, query string, want int) *wire.HistoryResponse {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.httpURL("/api/v1/history?"+query), nil)
	req.Header.Set("Authorization", "Bearer "+secretViewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s: status %d, want %d", query, resp.StatusCode, want)
	}
	if want != http.StatusOK {
		return nil
	}
	var h wire.HistoryResponse
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return &h
}

func lastPoint(p []*float64) *float64 {
	if len(p) == 0 {
		return nil
	}
	return p[len(p)-1]
}

func TestHistoryAPI(t *testing.T) {
	clk := newFakeClock()
	roll := &fakeRollups{got: make(chan fleet.HistoryQuery, 8)}
	ts := startServer(t, nil, func(c *Config) { c.Clock = clk.Now; c.History = roll })
	a, b := testNode("a", 2), testNode("b", 1)
	b.Region = "Johor"
	for _, n := range []fleet.Node{a, b} {
		c := dialCollector(t, ts, secretAll)
		c.hello(n)
		c.samples(n, 1, 2, 3)
		c.waitAck(3)
	}

	// One node over a minute: its own series, then one per GPU, from the ring.
	h := getHistory(t, ts, "node=a&range=1m", http.StatusOK)
	if h.Scope != "node" || h.ID != "a" || h.StepS != 1 || len(h.Series) != 3 || h.Series[0].Name != "a" ||
		h.Series[2].Name != "gpu 1" || *h.Series[2].Device != 1 || len(h.Series[0].Util) != 60 {
		t.Fatalf("node history: %+v", h)
	}
	// The three samples are the last three seconds; seq 3 on GPU 1: util 0.04, 301 W.
	g1 := h.Series[2]
	if p := lastPoint(g1.Util); p == nil || *p != 0.04 || *lastPoint(g1.Power) != 301 || *lastPoint(g1.TempMax) != 60 {
		t.Fatalf("GPU 1's last point: util %v power %v", lastPoint(g1.Util), lastPoint(g1.Power))
	}
	if p := lastPoint(h.Series[0].Power); p == nil || *p != 601 {
		t.Fatalf("node power %v, want 601 (300 + 301)", p)
	}
	if h.Series[0].Util[56] != nil || h.Series[0].Util[57] == nil {
		t.Fatalf("points before the samples must be null")
	}
	if len(roll.got) != 0 {
		t.Fatalf("a range within the ring must not query the rollups")
	}

	// The fleet by region; a region alone.
	h = getHistory(t, ts, "by=region&range=15m", http.StatusOK)
	if h.Scope != "fleet" || len(h.Series) != 2 || h.Series[0].Name != "Johor" || h.Series[1].Name != "Singapore" ||
		*lastPoint(h.Series[1].Power) != 601 || len(h.Series[0].Util) != 180 {
		t.Fatalf("by region: %+v", h.Series)
	}
	h = getHistory(t, ts, "region=Johor", http.StatusOK)
	if h.Range != fleet.DefaultHistoryRange || len(h.Series) != 1 || h.Series[0].Name != "Johor" || *lastPoint(h.Series[0].Power) != 300 {
		t.Fatalf("region: %+v", h.Series)
	}

	// A day: the rollups for what the ring does not hold, the ring for the rest.
	now := clk.Now()
	old := now.Truncate(5 * time.Minute).Add(-2 * time.Hour).UnixMilli()
	recent := now.Truncate(5 * time.Minute).UnixMilli()
	roll.rows = []fleet.HistoryBucket{
		{Start: old, UtilN: 10, UtilSum: 5, Power: 123, PowerN: 1, Reported: 600_000},
		{Start: recent, UtilN: 10, UtilSum: 10, Power: 999, PowerN: 1, Reported: 600_000}, // the ring's
	}
	h = getHistory(t, ts, "range=24h", http.StatusOK)
	q := <-roll.got
	if q.Step != 5*time.Minute || q.By != "" || !q.To.Equal(time.UnixMilli(recent).Add(5*time.Minute)) {
		t.Fatalf("rollup query %+v", q)
	}
	s := h.Series[0]
	if len(s.Power) != 288 || *s.Power[287-24] != 123 || *s.Util[287-24] != 0.5 || *s.Power[287] != 901 {
		t.Fatalf("day: %d points, 2h ago %v, now %v", len(s.Power), s.Power[287-24], s.Power[287])
	}
	if len(h.Sources) != 2 || h.Sources[1] != "rollup_minute" {
		t.Fatalf("sources %v", h.Sources)
	}
	// Cached for a step: the same answer without another query.
	getHistory(t, ts, "range=24h", http.StatusOK)
	if len(roll.got) != 0 {
		t.Fatalf("the answer was not cached")
	}

	getHistory(t, ts, "range=2h", http.StatusBadRequest)
	getHistory(t, ts, "node=a&region=Johor", http.StatusBadRequest)
	getHistory(t, ts, "node=zz", http.StatusNotFound)
	req, _ := http.NewRequest("GET", ts.httpURL("/api/v1/history"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", resp.StatusCode)
	}
}

// The ring read newest first yields what points yields, reversed.
func TestHistoryNewestFirst(t *testing.T) {
	var h history
	for i := range fineLen + 3*coarseStep + 4 {
		var d fleet.DeviceSample
		d.Set(fleet.MetricPower, float64(i))
		h.push(&d)
	}
	pts := h.points()
	k := len(pts) - 1
	h.newestFirst(func(p point) bool {
		if p != pts[k] {
			t.Fatalf("point %d: %v, want %v", k, p, pts[k])
		}
		k--
		return true
	})
	if k != -1 {
		t.Fatalf("%d points not visited", k+1)
	}
}
