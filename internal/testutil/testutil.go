// Package testutil holds the helpers that fleettop's tests share: waiting
// for a condition, listening on an address a test server just released,
// writing owner-only secret files. Only _test.go files import it
// (TestOnlyTestsImport holds that), and it imports only the standard
// library, so any package's tests may use it without a cycle. deadcode,
// which looks from the binaries, lists its functions for that reason.
package testutil

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// WaitTimeout bounds WaitFor. Only a failing test waits this long; it is
// generous so that a loaded machine does not fail a correct test.
const WaitTimeout = 20 * time.Second

// WaitFor polls cond until it holds, or fails the test after WaitTimeout
// saying it timed out waiting for what.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, WaitTimeout, what, cond)
}

// WaitWithin is WaitFor with its own bound, for conditions that depend on
// a slow outside process.
func WaitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Listen listens on TCP addr ("127.0.0.1:0" for any port), retrying for
// about a second: the port of a server a test has just closed may take a
// moment to come free. The listener is closed when the test ends.
func Listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			t.Cleanup(func() { ln.Close() })
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("listen %s: %v", addr, err)
	return nil
}

// WriteSecret writes body to dir/name, readable by its owner only (0600),
// as fleettop requires of token files, and returns the path.
func WriteSecret(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
