package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/fleettop/fleettop/collector"
	"github.com/fleettop/fleettop/internal/dirlock"
	"github.com/fleettop/fleettop/internal/testutil"
)

func writeSecret(t *testing.T, mode os.FileMode) string {
	t.Helper()
	p := testutil.WriteSecret(t, t.TempDir(), "token", "c0llector-secret\n")
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// Token files are treated like ssh keys: readable by others means refused,
// with the chmod that fixes it; owner-only is read.
func TestTokenFilesMustBeOwnerOnly(t *testing.T) {
	readers := map[string]func(string) (string, error){
		"collector": readToken, "mock": collectorToken, "tui": viewerToken,
	}
	for name, read := range readers {
		if _, err := read(writeSecret(t, 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("%s: world-readable token file: err = %v, want a refusal with the chmod 600 hint", name, err)
		}
		if tok, err := read(writeSecret(t, 0o600)); err != nil || tok != "c0llector-secret" {
			t.Errorf("%s: owner-only token file: %q, %v", name, tok, err)
		}
	}
}

func streamOpts(t *testing.T, url string) collectorOptions {
	o := onceOpts(t)
	o.once, o.json = false, false
	o.mock = "nvidia"
	o.aggregator = url
	o.tokenFile = writeSecret(t, 0o600)
	o.dataDir = t.TempDir()
	return o
}

// The collector never sends its token over plain ws:// to another host by
// accident.
func TestCollectorRefusesPlainWSToRemoteHost(t *testing.T) {
	var out, errb bytes.Buffer
	err := runCollector(context.Background(), &out, &errb, streamOpts(t, "ws://10.20.30.40:7070"), nil, false)
	if err == nil || !strings.Contains(err.Error(), collector.ErrInsecureURL.Error()) || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("ws:// to a remote host: err = %v, want a refusal naming --insecure", err)
	}
}

// Two collectors cannot share one --data-dir.
func TestCollectorLocksDataDir(t *testing.T) {
	o := streamOpts(t, "ws://127.0.0.1:1")
	held, err := dirlock.Acquire(o.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	var out, errb bytes.Buffer
	err = runCollector(context.Background(), &out, &errb, o, nil, false)
	if err == nil || !strings.Contains(err.Error(), dirlock.ErrLocked.Error()) {
		t.Fatalf("second collector on one data dir: err = %v, want ErrLocked", err)
	}
}
