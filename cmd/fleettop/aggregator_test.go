package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/wire"
)

const (
	aggCollectorSecret = "collector-secret-test"
	aggViewerSecret    = "viewer-secret-test"
)

func writeTokens(t *testing.T, dir string) string {
	t.Helper()
	return testutil.WriteSecret(t, dir, "tokens", "collector fleet "+aggCollectorSecret+" *\nviewer ops "+aggViewerSecret+"\n")
}

// runAggregator starts the aggregator command's server on ln. The stop it
// returns (idempotent; it also runs when the test ends) fails the test if
// the server does not stop cleanly within 20 s.
func runAggregator(t *testing.T, ctx context.Context, o aggregatorOptions, ln net.Listener) (stop func()) {
	t.Helper()
	_, stopSrv, err := startAggregator(ctx, o, ln)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := stopSrv(sctx); err != nil {
				t.Errorf("stop aggregator: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func loopback(t *testing.T) net.Listener {
	t.Helper()
	return testutil.Listen(t, "127.0.0.1:0")
}

func TestStartAggregatorUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tokens := writeTokens(t, dir)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("admin a secret123\n"), 0o600)
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o600)
	cases := []struct {
		name string
		o    aggregatorOptions
		ln   func(*testing.T) net.Listener
		want string
	}{
		{"no data dir", aggregatorOptions{TokensFile: tokens}, loopback, "--data-dir"},
		{"no tokens", aggregatorOptions{DataDir: dir}, loopback, "--tokens"},
		{"missing token file", aggregatorOptions{DataDir: dir, TokensFile: filepath.Join(dir, "nope")}, loopback, "no such file"},
		{"bad token file", aggregatorOptions{DataDir: dir, TokensFile: bad}, loopback, "bad:1: unknown role"},
		{"data dir is a file", aggregatorOptions{DataDir: notDir, TokensFile: tokens}, loopback, notDir},
		{"commit interval", aggregatorOptions{DataDir: dir, TokensFile: tokens, CommitInterval: 20 * time.Second}, loopback, "--commit-interval"},
		{"half tls", aggregatorOptions{DataDir: dir, TokensFile: tokens, TLSCert: "x"}, loopback, "--tls-key"},
		{"public plain", aggregatorOptions{DataDir: dir, TokensFile: tokens}, func(t *testing.T) net.Listener {
			return fakeAddrListener{loopback(t), &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 7070}}
		}, "--insecure"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Logger = slog.New(slog.DiscardHandler)
			_, stop, err := startAggregator(context.Background(), tc.o, tc.ln(t))
			if err == nil {
				stop(context.Background())
				t.Fatal("started")
			}
			var u usageError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v (usage %v), want a usage error mentioning %q", err, errors.As(err, &u), tc.want)
			}
			if strings.Contains(err.Error(), "secret123") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

// fakeAddrListener reports a public address for a loopback listener.
type fakeAddrListener struct {
	net.Listener
	addr net.Addr
}

func (f fakeAddrListener) Addr() net.Addr { return f.addr }

// TestAggregatorResumesFromStore runs the real aggregator on the real store,
// restarts it on the same data directory and checks the resume point.
func TestAggregatorResumesFromStore(t *testing.T) {
	dir := t.TempDir()
	o := aggregatorOptions{DataDir: filepath.Join(dir, "data"), TokensFile: writeTokens(t, dir), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	node := fleet.Node{ID: "n1", Region: "Singapore", Jurisdiction: "SG", Devices: []fleet.Device{{Index: 0, UUID: "GPU-1", Vendor: fleet.VendorNVIDIA, Model: "H100"}}}

	run := func(first, last uint64) (resume uint64) {
		ln := loopback(t)
		stop := runAggregator(t, context.Background(), o, ln)
		defer stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/v1/collect",
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + aggCollectorSecret}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		enc, dec := wire.NewEncoder(), wire.NewDecoder()
		send := func(f wire.Frame) {
			b, err := enc.AppendFrame(nil, f)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Write(ctx, websocket.MessageBinary, b); err != nil {
				t.Fatal(err)
			}
		}
		recv := func() wire.Frame {
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			f, err := dec.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		send(&wire.Hello{Proto: wire.Version, Node: node})
		resume = recv().(*wire.Welcome).ResumeFrom
		var recs []fleet.Sample
		for q := first; q <= last; q++ {
			s := fleet.Sample{Seq: q, Time: time.Now(), Devices: []fleet.DeviceSample{{Index: 0}}}
			s.Devices[0].Set(fleet.MetricUtil, 0.5)
			recs = append(recs, s)
		}
		send(&wire.Samples{Samples: recs})
		for {
			if a, ok := recv().(*wire.Ack); ok && a.Seq == last {
				return resume
			}
		}
	}
	if got := run(1, 5); got != 1 {
		t.Fatalf("first start resumes from %d, want 1", got)
	}
	if got := run(6, 7); got != 6 {
		t.Fatalf("after restart resumes from %d, want 6", got)
	}
	if got := run(8, 8); got != 8 {
		t.Fatalf("after second restart resumes from %d, want 8", got)
	}
}
