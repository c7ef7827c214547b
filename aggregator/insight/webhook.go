package insight

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/policy"
)

// WebhookEvent is the JSON body POSTed for each alert start or end.
type WebhookEvent struct {
	Event string      `json:"event"` // "start" or "end"
	Alert fleet.Alert `json:"alert"`
}

// Webhook delivers alert transitions to a URL from its own goroutine: a
// bounded queue that never blocks the caller (when full, the transition is
// dropped and counted), and retries with exponential backoff.
type Webhook struct {
	url        string
	client     *http.Client
	maxRetries int
	log        *slog.Logger
	queue      chan WebhookEvent
	stop       chan struct{}
	ctx        context.Context // cancelled when Close gives up waiting
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	// Backoff is the first retry delay (doubled each retry, capped at 1 min).
	backoff time.Duration

	sent, dropped, failed atomic.Uint64
}

// NewWebhook starts the sender; Close stops it.
func NewWebhook(c WebhookConfig, log *slog.Logger) *Webhook {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.Queue < 1 {
		c.Queue = 1024
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	w := &Webhook{
		url:        c.URL,
		client:     &http.Client{Timeout: c.Timeout},
		maxRetries: c.MaxRetries,
		log:        log,
		queue:      make(chan WebhookEvent, c.Queue),
		stop:       make(chan struct{}),
		backoff:    500 * time.Millisecond,
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.wg.Add(1)
	go w.run()
	return w
}

// Enqueue queues a transition without blocking; it reports false (and counts
// a drop) when the queue is full or the webhook is closed.
func (w *Webhook) Enqueue(tr policy.Transition) bool {
	ev := WebhookEvent{Event: "end", Alert: tr.Alert}
	if tr.Opened {
		ev.Event = "start"
	}
	select {
	case <-w.stop:
		w.dropped.Add(1)
		return false
	default:
	}
	select {
	case w.queue <- ev:
		return true
	default:
		w.dropped.Add(1)
		return false
	}
}

// Stats returns how many events were delivered, dropped on a full queue, and
// given up after all retries.
func (w *Webhook) Stats() (sent, dropped, failed uint64) {
	return w.sent.Load(), w.dropped.Load(), w.failed.Load()
}

// Close stops the sender after it has delivered (or given up on) what is
// queued; when ctx ends first, the request in flight is aborted and what is
// left fails at once.
func (w *Webhook) Close(ctx context.Context) error {
	w.closeOnce.Do(func() { close(w.stop) })
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		w.cancel() // abort the request in flight; the rest fails fast
		<-done
		return fmt.Errorf("close webhook: %w", ctx.Err())
	}
}

func (w *Webhook) run() {
	defer w.wg.Done()
	defer w.cancel()
	ctx := w.ctx
	for {
		select {
		case ev := <-w.queue:
			w.deliver(ctx, ev)
		case <-w.stop:
			for {
				select {
				case ev := <-w.queue:
					w.deliver(ctx, ev)
				default:
					return
				}
			}
		}
	}
}

func (w *Webhook) deliver(ctx context.Context, ev WebhookEvent) {
	body, err := json.Marshal(ev)
	if err != nil {
		w.failed.Add(1)
		return
	}
	delay := w.backoff
	for attempt := 0; ; attempt++ {
		err := w.post(ctx, body)
		if err == nil {
			w.sent.Add(1)
			return
		}
		if attempt >= w.maxRetries {
			w.failed.Add(1)
			w.log.Warn("alert webhook gave up", "alert", ev.Alert.ID, "attempts", attempt+1, "err", err)
			return
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done(): // Close gave up waiting
			t.Stop()
			w.failed.Add(1)
			return
		}
		delay = min(delay*2, time.Minute)
	}
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fleettop-aggregator")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post webhook: status %s", resp.Status)
	}
	return nil
}
