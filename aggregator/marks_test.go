package aggregator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// alertInsights serves fixed alerts.
type alertInsights struct {
	fakeInsights
	alerts []fleet.Alert
}

func (a *alertInsights) Summarize(time.Time) (wire.Summary, []wire.JobView, []fleet.Alert) {
	return wire.Summary{Currency: "USD", AlertsOpen: len(a.alerts)}, nil, a.alerts
}

// memMarker is an AlertMarker in memory, shared across server restarts.
type memMarker struct {
	mu sync.Mutex
	m  map[string]fleet.AlertMark
}

func (m *memMarker) PutAlertMark(_ context.Context, id string, mk fleet.AlertMark) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[id] = mk
	return nil
}

func (m *memMarker) DeleteAlertMark(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, id)
	return nil
}

func (m *memMarker) AlertMarks(context.Context) (map[string]fleet.AlertMark, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]fleet.AlertMark{}
	for k, v := range m.m {
		out[k] = v
	}
	return out, nil
}

func postMark(t *testing.T, ts *testServer, token string, req markRequest) (int, fleet.Alert) {
	t.Helper()
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, ts.httpURL("/api/v1/alerts/mark"), bytes.NewReader(b))
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var a fleet.Alert
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("mark answer %q: %v", body, err)
		}
	}
	return resp.StatusCode, a
}

// viewerAlerts are the alerts every viewer surface gets (watch, API).
func viewerAlerts(ts *testServer) []fleet.Alert {
	_, _, a := ts.Server.summarize(ts.Server.clock())
	return a
}

// Operators acknowledge and silence alerts; viewers cannot; marks survive a
// restart of the aggregator and apply to the occurrence acknowledged.
func TestAlertMarks(t *testing.T) {
	start := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	ins := &alertInsights{alerts: []fleet.Alert{
		{ID: "xid/n1/5/79", Kind: fleet.EventXID, Severity: fleet.SevCritical, Node: "n1", Device: 5, Message: "GPU 5: XID 79", Start: start},
		{ID: "thermal/n2", Kind: fleet.EventThermal, Severity: fleet.SevWarning, Node: "n2", Device: -1, Message: "thermal", Start: start},
	}}
	store := &memMarker{m: map[string]fleet.AlertMark{}}
	clock := newFakeClock()
	mod := func(c *Config) {
		c.Insights, c.Marks, c.Clock, c.ViewerInterval = ins, store, clock.Now, time.Nanosecond
	}
	ts := startServer(t, nil, mod)

	if code, _ := postMark(t, ts, secretViewer, markRequest{ID: "xid/n1/5/79", Action: "ack"}); code != http.StatusForbidden {
		t.Errorf("viewer ack: %d, want 403", code)
	}
	for _, c := range []struct {
		req  markRequest
		code int
	}{
		{markRequest{ID: "nope", Action: "ack"}, http.StatusNotFound},
		{markRequest{ID: "thermal/n2", Action: "frob"}, http.StatusBadRequest},
		{markRequest{ID: "thermal/n2", Action: "silence", For: "1y"}, http.StatusBadRequest},
		{markRequest{ID: "thermal/n2", Action: "silence", For: "720h"}, http.StatusBadRequest},
	} {
		if code, _ := postMark(t, ts, secretOper, c.req); code != c.code {
			t.Errorf("%+v: %d, want %d", c.req, code, c.code)
		}
	}
	code, a := postMark(t, ts, secretOper, markRequest{ID: "xid/n1/5/79", Action: "ack"})
	if code != http.StatusOK || !a.Acked || a.AckedBy != "oncall" {
		t.Fatalf("operator ack: %d %+v", code, a)
	}
	code, a = postMark(t, ts, secretOper, markRequest{ID: "thermal/n2", Action: "silence", For: "1h"})
	if code != http.StatusOK || !a.SilencedUntil.Equal(clock.Now().Add(time.Hour)) {
		t.Fatalf("operator silence: %d %+v", code, a)
	}

	// A restarted aggregator shows the same marks.
	ts.Server.Close(context.Background())
	ts = startServer(t, nil, mod)
	got := viewerAlerts(ts)
	if len(got) != 2 || !got[0].Acked || got[1].SilencedUntil.IsZero() {
		t.Fatalf("after restart: %+v", got)
	}

	// The silence ends on time; a new occurrence of the alert is not acked.
	clock.Advance(time.Hour + time.Second)
	ins.alerts[0].Start = start.Add(2 * time.Hour)
	got = viewerAlerts(ts)
	if got[0].Acked || !got[1].SilencedUntil.IsZero() {
		t.Errorf("after the silence and a new occurrence: %+v", got)
	}
}
