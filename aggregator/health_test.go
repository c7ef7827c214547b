package aggregator

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleettop/fleettop/internal/testutil"
)

func healthz(t *testing.T, ts *testServer) (int, string) {
	t.Helper()
	resp, err := http.Get(ts.httpURL("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A failing commit (disk full, corrupt page) makes /healthz answer 503 with
// the reason, and 200 again once a commit succeeds.
func TestHealthzNotReadyWhileCommitsFail(t *testing.T) {
	rec := newFakeRecorder()
	rec.fail = true
	ts := startServer(t, rec, nil)
	node, c := helloN1(t, ts, 1)
	c.samples(node, 1, 2)
	testutil.WaitFor(t, "a failed commit", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.tries >= 1 })
	code, body := healthz(t, ts)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "disk full") {
		t.Fatalf("/healthz while commits fail = %d %q, want 503 naming the error", code, body)
	}
	rec.mu.Lock()
	rec.fail = false
	rec.mu.Unlock()
	c.waitAck(2)
	if code, body := healthz(t, ts); code != http.StatusOK {
		t.Fatalf("/healthz after a good commit = %d %q", code, body)
	}
}

// blockingRecorder's Commit blocks until released: a wedged database.
type blockingRecorder struct {
	*fakeRecorder
	entered chan struct{}
	release chan struct{}
	once    atomic.Bool
}

func (b *blockingRecorder) Commit(ctx context.Context, seqs map[string]uint64) error {
	if b.once.CompareAndSwap(false, true) {
		close(b.entered)
	}
	<-b.release
	return b.fakeRecorder.Commit(ctx, seqs)
}

// The watchdog is fed from the commit loop: while a commit is wedged there
// is no heartbeat (systemd restarts the process), and /healthz says why.
func TestHeartbeatStopsWhileCommitWedged(t *testing.T) {
	rec := &blockingRecorder{fakeRecorder: newFakeRecorder(), entered: make(chan struct{}), release: make(chan struct{})}
	var beats atomic.Int64
	ts := startServerWith(t, rec, func(c *Config) {
		c.Heartbeat = func() { beats.Add(1) }
		c.CommitStuckAfter = time.Nanosecond
	})
	testutil.WaitFor(t, "a heartbeat while idle", func() bool { return beats.Load() > 0 })
	node, c := helloN1(t, ts, 1)
	c.samples(node, 1)
	<-rec.entered
	before := beats.Load()
	// The commit loop is inside Commit: no heartbeat can come until it
	// returns, however long we look.
	for range 3 {
		if code, body := healthz(t, ts); code != http.StatusServiceUnavailable || !strings.Contains(body, "stuck") {
			t.Fatalf("/healthz while the commit is wedged = %d %q", code, body)
		}
	}
	if got := beats.Load(); got != before {
		t.Fatalf("heartbeats went on while the commit was wedged: %d → %d", before, got)
	}
	close(rec.release)
	testutil.WaitFor(t, "heartbeats again", func() bool { return beats.Load() > before })
}

// isolatingRecorder reports nodes a commit left out.
type isolatingRecorder struct {
	*fakeRecorder
}

func (isolatingRecorder) IsolatedRows() uint64 { return 3 }

// Nodes the store left out of a commit are counted on /metrics.
func TestIsolatedNodesCounted(t *testing.T) {
	ts := startServerWith(t, isolatingRecorder{newFakeRecorder()}, nil)
	mfs, err := ts.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "fleettop_commit_isolated_nodes_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 3 {
				t.Fatalf("fleettop_commit_isolated_nodes_total = %v, want 3", v)
			}
			return
		}
	}
	t.Fatal("fleettop_commit_isolated_nodes_total not served")
}
