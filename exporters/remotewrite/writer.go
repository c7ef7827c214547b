package remotewrite

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleettop/fleettop/internal/lifecycle"
)

// Source renders the series once, stamped ts, as uncompressed WriteRequests
// of at most maxSamples samples each, handed to emit (which must copy what
// it keeps); it returns the number of samples. The Prometheus exporter's
// WriteRequests is one (bound to the aggregator's own registry).
type Source func(ts time.Time, maxSamples int, emit func(req []byte, samples int)) int

// Writer sends the series to one endpoint: Start runs a loop that renders
// and buffers every Interval and a sender that delivers the buffer; Close
// stops both. What is buffered and not delivered stays on disk for the
// next start.
type Writer struct {
	cfg    Config
	src    Source
	log    *slog.Logger
	buf    *buffer
	client *http.Client
	m      *Metrics
	now    func() time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New opens the endpoint's buffer under dir (one folder per endpoint name)
// and prepares the client; nothing runs before Start. m may be shared by
// several writers (NewMetrics once per registry).
func New(cfg Config, src Source, dir string, m *Metrics, log *slog.Logger) (*Writer, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.Queue.MaxSamplesPerSend == 0 {
		cfg.Queue = DefaultQueue()
	}
	tr, err := transport(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("remote_write %s: %w", cfg.Name, err)
	}
	b, err := openBuffer(filepath.Join(dir, folderName(cfg.Name)), cfg.Queue.MaxBufferBytes)
	if err != nil {
		return nil, fmt.Errorf("remote_write %s: open buffer: %w", cfg.Name, err)
	}
	w := &Writer{cfg: cfg, src: src, log: log.With("remote_write", cfg.Name), buf: b,
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout}, m: m, now: time.Now}
	for _, reason := range []string{"rejected", "buffer_full", "too_old"} {
		m.dropped.WithLabelValues(cfg.Name, reason)
	}
	for _, res := range []string{"success", "retry", "rejected"} {
		m.requests.WithLabelValues(cfg.Name, res)
	}
	m.samples.WithLabelValues(cfg.Name)
	m.retried.WithLabelValues(cfg.Name)
	m.buffered.WithLabelValues(cfg.Name)
	m.sentBytes.WithLabelValues(cfg.Name)
	w.updateGauges()
	return w, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func folderName(name string) string { return unsafeName.ReplaceAllString(name, "_") }

func transport(t TLS) (http.RoundTripper, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	if t == (TLS{}) {
		return tr, nil
	}
	cfg := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = cfg
	return tr, nil
}

// Start runs the render loop and the sender until Close.
func (w *Writer) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(w.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if err := w.Tick(now); err != nil {
					w.log.Error("remote_write: buffer", "err", err)
				}
			}
		}
	}()
	go func() {
		defer w.wg.Done()
		w.send(ctx)
	}()
}

// Close stops the loops (a request in flight is abandoned and resent on
// the next start) and closes the buffer.
func (w *Writer) Close(ctx context.Context) error {
	if w.cancel != nil {
		w.cancel()
	}
	if err := lifecycle.Wait(ctx, &w.wg); err != nil {
		return err
	}
	return w.buf.close()
}

// Tick renders the series stamped now and appends them to the buffer.
// Start calls it every Interval; tests call it directly.
func (w *Writer) Tick(now time.Time) error {
	r := &record{ts: now.UnixMilli()}
	w.src(now, w.cfg.Queue.MaxSamplesPerSend, func(req []byte, samples int) {
		r.reqs = append(r.reqs, snappy.Encode(nil, req))
		r.samples = append(r.samples, samples)
	})
	dropped, err := w.buf.append(r)
	if dropped > 0 {
		w.m.dropped.WithLabelValues(w.cfg.Name, "buffer_full").Add(float64(dropped))
		w.log.Warn("remote_write: buffer full, dropped the oldest samples", "samples", dropped, "max_buffer_bytes", w.cfg.Queue.MaxBufferBytes)
	}
	if err == nil {
		w.m.buffered.WithLabelValues(w.cfg.Name).Add(float64(r.total()))
	}
	w.updateGauges()
	return err
}

func (w *Writer) updateGauges() {
	p, b := w.buf.stats()
	w.m.pending.WithLabelValues(w.cfg.Name).Set(float64(p))
	w.m.bufBytes.WithLabelValues(w.cfg.Name).Set(float64(b))
}

// send delivers the buffer in order until ctx ends.
func (w *Writer) send(ctx context.Context) {
	for {
		rec, next, ok := w.buf.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-w.buf.notify:
				continue
			}
		}
		if !w.deliver(ctx, rec) {
			return // cancelled: the record stays buffered
		}
		w.buf.commit(next)
		w.m.highest.WithLabelValues(w.cfg.Name).Set(float64(rec.ts) / 1000)
		w.updateGauges()
	}
}

// deliver sends one interval's requests over up to MaxShards connections
// and returns when each is delivered or dropped (true), or ctx ends (false).
func (w *Writer) deliver(ctx context.Context, r *record) bool {
	q := w.cfg.Queue
	if q.SampleAgeLimit > 0 && w.now().Sub(time.UnixMilli(r.ts)) > q.SampleAgeLimit {
		w.m.dropped.WithLabelValues(w.cfg.Name, "too_old").Add(float64(r.total()))
		return true
	}
	// Shards: as many as the interval needs at ~10 requests each when
	// caught up, all of them when behind.
	shards := max(q.MinShards, min(q.MaxShards, (len(r.reqs)+9)/10))
	if pending, _ := w.buf.stats(); pending > 1 {
		shards = q.MaxShards
	}
	shards = min(shards, max(len(r.reqs), 1))
	w.m.shards.WithLabelValues(w.cfg.Name).Set(float64(shards))
	var next atomic.Int64
	var wg sync.WaitGroup
	var cancelled atomic.Bool
	for range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(r.reqs) {
					return
				}
				if !w.sendOne(ctx, r.reqs[i], r.samples[i]) {
					cancelled.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	return !cancelled.Load()
}

// sendOne posts one request until it is delivered or rejected (true) or
// ctx ends (false).
func (w *Writer) sendOne(ctx context.Context, body []byte, samples int) bool {
	backoff := w.cfg.Queue.MinBackoff
	name := w.cfg.Name
	for {
		start := time.Now()
		code, retryAfter, err := w.post(ctx, body)
		w.m.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		switch {
		case ctx.Err() != nil:
			return false
		case err == nil && code/100 == 2:
			w.m.requests.WithLabelValues(name, "success").Inc()
			w.m.samples.WithLabelValues(name).Add(float64(samples))
			w.m.sentBytes.WithLabelValues(name).Add(float64(len(body)))
			return true
		case err != nil || code/100 == 5 || code == http.StatusTooManyRequests && w.cfg.Queue.RetryOn429:
			w.m.requests.WithLabelValues(name, "retry").Inc()
			w.m.retried.WithLabelValues(name).Add(float64(samples))
			if err == nil {
				err = fmt.Errorf("HTTP %d", code)
			}
			w.log.Debug("remote_write: retrying", "err", err, "backoff", backoff)
			wait := backoff
			if retryAfter > wait {
				wait = min(retryAfter, max(w.cfg.Queue.MaxBackoff, time.Minute))
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
			backoff = min(2*backoff, w.cfg.Queue.MaxBackoff)
		default:
			w.m.requests.WithLabelValues(name, "rejected").Inc()
			w.m.dropped.WithLabelValues(name, "rejected").Add(float64(samples))
			w.log.Warn("remote_write: receiver rejected a request; its samples are dropped", "status", code, "samples", samples)
			return true
		}
	}
}

func (w *Writer) post(ctx context.Context, body []byte) (code int, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	h := req.Header
	for k, v := range w.cfg.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Encoding", "snappy")
	h.Set("Content-Type", "application/x-protobuf")
	h.Set("User-Agent", "fleettop-remote-write")
	h.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if err := w.auth(req); err != nil {
		return 0, 0, err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		w.log.Debug("remote_write: receiver answered", "status", resp.StatusCode, "body", strings.TrimSpace(string(msg)))
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil {
			retryAfter = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			retryAfter = time.Until(t)
		}
	}
	return resp.StatusCode, retryAfter, nil
}

// auth sets the credentials, read from their files on every request so
// that rotated secrets apply without a restart.
func (w *Writer) auth(req *http.Request) error {
	if f := w.cfg.BearerTokenFile; f != "" {
		tok, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("bearer_token_file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	if ba := w.cfg.BasicAuth; ba != nil {
		pw := ba.Password
		if ba.PasswordFile != "" {
			p, err := os.ReadFile(ba.PasswordFile)
			if err != nil {
				return fmt.Errorf("basic_auth password_file: %w", err)
			}
			pw = strings.TrimSpace(string(p))
		}
		req.SetBasicAuth(ba.Username, pw)
	}
	return nil
}

// Metrics are the fleettop_remote_write_* series, labelled by endpoint.
type Metrics struct {
	samples, retried, buffered, sentBytes *prometheus.CounterVec
	dropped, requests                     *prometheus.CounterVec
	pending, bufBytes, shards, highest    *prometheus.GaugeVec
	duration                              *prometheus.HistogramVec
}

// NewMetrics creates the remote_write series and registers them with reg
// (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	r := []string{"remote"}
	m := &Metrics{
		samples:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleettop_remote_write_samples_total", Help: "Samples delivered to the remote_write receiver."}, r),
		retried:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleettop_remote_write_samples_retried_total", Help: "Samples in requests that failed recoverably (5xx, 429, network) and were retried."}, r),
		buffered:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleettop_remote_write_samples_buffered_total", Help: "Samples rendered and written to the on-disk buffer."}, r),
		sentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleettop_remote_write_sent_bytes_total", Help: "Compressed request bytes delivered."}, r),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleettop_remote_write_samples_dropped_total", Help: "Samples never delivered, by reason: rejected (a 4xx answer), buffer_full, too_old (sample_age_limit)."},
			[]string{"remote", "reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleettop_remote_write_requests_total", Help: "Requests sent, by result: success, retry, rejected."},
			[]string{"remote", "result"}),
		pending:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleettop_remote_write_pending_intervals", Help: "Intervals buffered on disk and not yet delivered."}, r),
		bufBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleettop_remote_write_buffer_bytes", Help: "Bytes of the on-disk buffer."}, r),
		shards:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleettop_remote_write_shards", Help: "Concurrent requests used for the last interval sent."}, r),
		highest:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleettop_remote_write_highest_sent_timestamp_seconds", Help: "Timestamp of the newest interval delivered (Unix seconds)."}, r),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fleettop_remote_write_request_duration_seconds", Help: "Time per request.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 8)}, r),
	}
	if reg != nil {
		reg.MustRegister(m.samples, m.retried, m.buffered, m.sentBytes, m.dropped, m.requests, m.pending, m.bufBytes, m.shards, m.highest, m.duration)
	}
	return m
}
