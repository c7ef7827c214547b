package collector_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/wire"
)

// An aggregator that speaks only protocol 1 refuses the collector's newer
// Hello the way an old build does; the collector retries in protocol 1 and
// its samples flow.
func TestFallsBackToOlderAggregatorProtocol(t *testing.T) {
	var refused, samples atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		old, _ := wire.NewEncoderVersion(1)
		ctx := r.Context()
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		if b[0] != 0xF1 {
			refused.Add(1)
			out, _ := old.AppendFrame(nil, &wire.Close{Code: wire.CloseProtocol, Reason: "unsupported protocol version: frame has protocol version 2, this build speaks 1"})
			_ = c.Write(ctx, websocket.MessageBinary, out)
			c.Close(websocket.StatusCode(wire.CloseProtocol), "")
			return
		}
		out, _ := old.AppendFrame(nil, &wire.Welcome{Proto: 1, ResumeFrom: 1})
		if err := c.Write(ctx, websocket.MessageBinary, out); err != nil {
			return
		}
		dec := wire.NewDecoder()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if b[0] != 0xF1 {
				t.Errorf("frame in protocol %d after falling back", b[0]&0x0F)
				return
			}
			if _, err := dec.Decode(b); err != nil {
				t.Errorf("decode: %v", err)
				return
			}
			samples.Add(1)
		}
	}))
	defer srv.Close()
	agent, err := collector.NewAgent(collector.AgentConfig{
		Node:     fleet.Node{ID: "node-1", Hostname: "node-1", Region: "SG"},
		Sources:  []collector.Source{&fakeGPUs{name: "a", n: 2}},
		Interval: 10 * time.Millisecond, SpoolDir: t.TempDir(), URL: "ws" + strings.TrimPrefix(srv.URL, "http"),
		Logger: slog.New(slog.DiscardHandler), MaxBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx) }()
	testutil.WaitFor(t, "samples in protocol 1", func() bool { return samples.Load() >= 5 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if refused.Load() != 1 {
		t.Fatalf("refused %d hellos, want 1", refused.Load())
	}
}
