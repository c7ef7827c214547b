package insight

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/policy"
)

func transition(id string, opened bool) policy.Transition {
	return policy.Transition{Opened: opened, Alert: fleet.Alert{ID: id, Kind: fleet.EventXID, Severity: fleet.SevCritical, Start: t0}}
}

func TestWebhookRetriesWithBackoff(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	var got []WebhookEvent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var ev WebhookEvent
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		got = append(got, ev)
	}))
	defer srv.Close()

	// A post the loaded machine slows past its timeout would be one more
	// attempt than the test counts: the timeout is the tests' wait bound.
	w := NewWebhook(WebhookConfig{URL: srv.URL, Timeout: testutil.WaitTimeout, Queue: 4, MaxRetries: 3}, nil)
	w.backoff = 5 * time.Millisecond
	if !w.Enqueue(transition("xid/n/0/79", true)) || !w.Enqueue(transition("xid/n/0/79", false)) {
		t.Fatal("enqueue refused")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.WaitTimeout)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sent, dropped, failed := w.Stats()
	if sent != 2 || dropped != 0 || failed != 0 {
		t.Fatalf("stats sent %d dropped %d failed %d", sent, dropped, failed)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 4 || len(got) != 2 || got[0].Event != "start" || got[1].Event != "end" || got[0].Alert.ID != "xid/n/0/79" {
		t.Fatalf("attempts %d, events %+v", len(times), got)
	}
	// Exponential: the second retry waited at least twice the first delay.
	if d1, d2 := times[1].Sub(times[0]), times[2].Sub(times[1]); d1 < 5*time.Millisecond || d2 < 10*time.Millisecond {
		t.Errorf("retry delays %v, %v: want ≥ 5ms then ≥ 10ms", d1, d2)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer srv.Close()
	w := NewWebhook(WebhookConfig{URL: srv.URL, MaxRetries: 2}, nil)
	w.backoff = time.Millisecond
	w.Enqueue(transition("a", true))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sent, _, failed := w.Stats(); sent != 0 || failed != 1 {
		t.Fatalf("sent %d failed %d", sent, failed)
	}
}

// TestWebhookNeverBlocks: with the receiver stuck, Enqueue keeps returning at
// once and counts what it drops; Close with a deadline aborts the stuck post.
func TestWebhookNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	w := NewWebhook(WebhookConfig{URL: srv.URL, Timeout: time.Minute, Queue: 2}, nil)
	accepted := 0
	for i := range 100 {
		if w.Enqueue(transition("a", i%2 == 0)) {
			accepted++
		}
	}
	_, dropped, _ := w.Stats()
	if accepted > 3 || dropped != uint64(100-accepted) {
		t.Fatalf("accepted %d dropped %d", accepted, dropped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); err == nil {
		t.Fatal("Close returned nil with a stuck receiver")
	}
}
