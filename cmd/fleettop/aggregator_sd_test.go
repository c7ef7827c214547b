package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/internal/sdnotify"
)

// TestAggregatorNotifiesSystemd runs the aggregator's sd_notify loop against
// a unixgram socket standing in for systemd: READY with a STATUS line first,
// watchdog pings after, STOPPING at shutdown.
func TestAggregatorNotifiesSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "2000000") // ping every second

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sd := sdnotify.New(log, time.Second)
	o := aggregatorOptions{DataDir: filepath.Join(dir, "data"), TokensFile: writeTokens(t, dir), Logger: log, Heartbeat: sd.Watchdog}
	srv, stop, err := startAggregator(context.Background(), o, loopback(t))
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); notifySystemd(ctx, sd, srv) }()

	read := func() string {
		t.Helper()
		buf := make([]byte, 512)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification from the aggregator: %v", err)
		}
		return string(buf[:n])
	}
	if first := read(); !strings.Contains(first, "READY=1") || !strings.Contains(first, "STATUS=0 collectors, 0 viewers") {
		t.Errorf("first notification = %q, want READY=1 and a STATUS line", first)
	}
	if next := read(); !strings.Contains(next, "WATCHDOG=1") {
		t.Errorf("second notification = %q, want a watchdog ping", next)
	}
	cancel()
	<-done
	for {
		if m := read(); strings.Contains(m, "STOPPING=1") {
			break
		}
	}
}
