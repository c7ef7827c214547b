package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen points a notifier with a 2 s watchdog at a socket of the test's
// own; read returns the next message sent there, and now is the notifier's
// clock.
func listen(t *testing.T) (s *Notifier, now *time.Time, read func() string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Skip("no unixgram sockets:", err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", "")
	s = New(nil, time.Second)
	now = new(time.Time)
	*now = time.Unix(100, 0)
	s.clock = func() time.Time { return *now }
	read = func() string {
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 512)
		n, err := conn.Read(b)
		if err != nil {
			t.Fatal(err)
		}
		return string(b[:n])
	}
	return s, now, read
}

func TestSystemdNotify(t *testing.T) {
	s, now, read := listen(t)
	s.Notify("8 GPUs, connected, spool 0 B")
	if m := read(); !strings.Contains(m, "READY=1") || !strings.Contains(m, "STATUS=8 GPUs, connected, spool 0 B") || !strings.Contains(m, "WATCHDOG=1") {
		t.Fatalf("first message %q", m)
	}
	*now = (*now).Add(500 * time.Millisecond)
	s.Notify("8 GPUs, disconnected, spool 1 KiB")
	if m := read(); strings.Contains(m, "READY") || strings.Contains(m, "WATCHDOG") || !strings.Contains(m, "STATUS=8 GPUs, disconnected") {
		t.Fatalf("second message %q", m)
	}
	*now = (*now).Add(time.Second) // half of the 2 s watchdog
	s.Notify("8 GPUs, disconnected, spool 1 KiB")
	if m := read(); m != "WATCHDOG=1\n" {
		t.Fatalf("third message %q", m)
	}
}

// Status never feeds the watchdog; Watchdog does, at most every half period.
func TestStatusAndWatchdogSeparate(t *testing.T) {
	s, now, read := listen(t)
	s.Status("0 collectors")
	if m := read(); !strings.Contains(m, "READY=1") || strings.Contains(m, "WATCHDOG") {
		t.Fatalf("first message %q", m)
	}
	*now = (*now).Add(5 * time.Second)
	s.Status("1 collectors")
	if m := read(); strings.Contains(m, "WATCHDOG") {
		t.Fatalf("Status fed the watchdog: %q", m)
	}
	s.Watchdog()
	if m := read(); m != "WATCHDOG=1\n" {
		t.Fatalf("Watchdog sent %q", m)
	}
}
