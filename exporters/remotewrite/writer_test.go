package remotewrite

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fleettop/fleettop/internal/testutil"
)

// fixedSource emits reqs requests of one sample each, the body naming the tick.
func fixedSource(reqs int) Source {
	return func(ts time.Time, _ int, emit func([]byte, int)) int {
		for i := range reqs {
			emit([]byte(ts.Format(time.RFC3339Nano)+"#"+string(rune('a'+i))), 1)
		}
		return reqs
	}
}

// receiver answers each request with the next status of script (200 after
// it runs out) and records the bodies it accepted.
type receiver struct {
	mu     sync.Mutex
	script []int
	got    []string
	hdr    http.Header
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	plain, err := snappy.Decode(nil, body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.hdr = r.Header.Clone()
	code := 200
	if len(rc.script) > 0 {
		code, rc.script = rc.script[0], rc.script[1:]
	}
	if err != nil {
		code = 400
	}
	if code == 429 {
		w.Header().Set("Retry-After", "0")
	}
	if code == 200 {
		rc.got = append(rc.got, string(plain))
	}
	w.WriteHeader(code)
}

func (rc *receiver) accepted() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.got...)
}

func testConfig(url string) Config {
	q := DefaultQueue()
	q.MinBackoff, q.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return Config{Name: "t", URL: url, Interval: time.Hour, Timeout: 5 * time.Second, Queue: q}
}

// TestRetryAndDrop: 5xx, 429 and network-level failures are retried until
// delivered; a 400 drops the request and is counted; the protocol headers
// and the bearer token go with every request.
func TestRetryAndDrop(t *testing.T) {
	rc := &receiver{script: []int{500, 503, 429, 200, 400}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	dir := t.TempDir()
	tok := dir + "/token"
	if err := writeFile(tok, "s3cret\n"); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(srv.URL)
	cfg.BearerTokenFile = tok
	cfg.Queue.MaxShards = 1 // one request at a time: the script applies in order
	m := NewMetrics(nil)
	w, err := New(cfg, fixedSource(2), dir+"/buf", m, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	defer w.Close(t.Context())
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 3 {
		if err := w.Tick(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitWithin(t, 10*time.Second, "buffer delivered", func() bool { return w.Pending() == 0 })
	got := rc.accepted()
	// request 1 (a) fails 500, 503, 429, then succeeds; request 2 (b) gets 400: dropped.
	if len(got) != 5 || !strings.HasSuffix(got[0], "#a") || !strings.HasSuffix(got[1], "#a") {
		t.Errorf("accepted %q", got)
	}
	if v := promtest.ToFloat64(m.dropped.WithLabelValues("t", "rejected")); v != 1 {
		t.Errorf("rejected samples = %v, want 1", v)
	}
	if v := promtest.ToFloat64(m.retried.WithLabelValues("t")); v != 3 {
		t.Errorf("retried samples = %v, want 3", v)
	}
	if v := promtest.ToFloat64(m.samples.WithLabelValues("t")); v != 5 {
		t.Errorf("delivered samples = %v, want 5", v)
	}
	for k, want := range map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0", "Authorization": "Bearer s3cret"} {
		if got := rc.hdr.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

// TestBufferSurvivesRestart: what was buffered while the receiver was
// unreachable is delivered, in order, by the next Writer on the same dir.
func TestBufferSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig("http://127.0.0.1:1/api/v1/write") // nothing listens
	w, err := New(cfg, fixedSource(3), dir, NewMetrics(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 4 {
		if err := w.Tick(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	w2, err := New(testConfig(srv.URL), fixedSource(3), dir, NewMetrics(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Pending() != 4 {
		t.Fatalf("reopened buffer: %d intervals pending, want 4", w2.Pending())
	}
	w2.Start()
	defer w2.Close(t.Context())
	testutil.WaitWithin(t, 10*time.Second, "buffer delivered", func() bool { return w2.Pending() == 0 })
	got := rc.accepted()
	if len(got) != 12 {
		t.Fatalf("delivered %d requests, want 12", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i][:20] < got[i-1][:20] {
			t.Fatalf("intervals out of order: %q after %q", got[i], got[i-1])
		}
	}
}

// TestBufferLimit: beyond max_buffer_bytes the oldest segment goes and its
// samples are counted as dropped.
func TestBufferLimit(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1/api/v1/write")
	cfg.Queue.MaxBufferBytes = 1 << 18 // 64 KiB segments
	m := NewMetrics(nil)
	big := func(ts time.Time, _ int, emit func([]byte, int)) int {
		b := make([]byte, 20<<10)
		_, _ = rand.NewChaCha8([32]byte{byte(ts.Unix())}).Read(b) // incompressible
		emit(b, 10)
		return 10
	}
	w, err := New(cfg, big, t.TempDir(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(t.Context())
	for i := range 40 {
		if err := w.Tick(time.Unix(int64(1_800_000_000+i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, b := w.buf.stats(); b > cfg.Queue.MaxBufferBytes {
		t.Errorf("buffer holds %d bytes, limit %d", b, cfg.Queue.MaxBufferBytes)
	}
	dropped := promtest.ToFloat64(m.dropped.WithLabelValues("t", "buffer_full"))
	if dropped == 0 || int(dropped)/10+w.Pending() != 40 {
		t.Errorf("dropped %v samples with %d intervals pending; want every interval either pending or counted", dropped, w.Pending())
	}
}

func TestParseConfig(t *testing.T) {
	cs, err := ParseConfig([]byte(`currency: USD
remote_write:
  - url: http://127.0.0.1:9090/api/v1/write
  - url: https://mimir.example/api/v1/push
    name: mimir
    interval: 30s
    basic_auth: {username: fleet, password_file: /etc/fleettop/mimir.pw}
    tls: {ca_file: /etc/ssl/ca.pem}
    queue: {max_samples_per_send: 5000, max_shards: 16, min_backoff: 50ms, max_backoff: 10s, max_buffer_bytes: 8GiB}
`), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Name != "127.0.0.1:9090" || cs[0].Interval != 15*time.Second || cs[0].Queue != DefaultQueue() {
		t.Errorf("first endpoint: %+v", cs[0])
	}
	if c := cs[1]; c.Name != "mimir" || c.Interval != 30*time.Second || c.BasicAuth.PasswordFile != "/etc/fleettop/mimir.pw" ||
		c.TLS.CAFile != "/etc/ssl/ca.pem" || c.Queue.MaxSamplesPerSend != 5000 || c.Queue.MaxShards != 16 ||
		c.Queue.MaxBufferBytes != 8<<30 || c.Queue.MaxBackoff != 10*time.Second {
		t.Errorf("second endpoint: %+v", c)
	}
	for _, bad := range []string{
		"remote_write:\n  - url: ftp://x\n",
		"remote_write:\n  - url: http://x/w\n    qeueu: {}\n",
		"remote_write:\n  - url: http://x/w\n    interval: soon\n",
		"remote_write:\n  - url: http://x/w\n  - url: http://x/w\n",
	} {
		if _, err := ParseConfig([]byte(bad), "b.yaml"); err == nil || !strings.Contains(err.Error(), "b.yaml") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if cs, err := ParseConfig([]byte("currency: USD\n"), "c.yaml"); err != nil || cs != nil {
		t.Errorf("no section: %v %v", cs, err)
	}
}
