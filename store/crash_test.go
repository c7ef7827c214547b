package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The kill -9 test: a child process (this test binary, re-executed) records
// and commits as fast as it can, and after each Commit writes the committed
// sequences to its stdout; the parent SIGKILLs it at a random moment and
// reopens the database. It must open cleanly, pass integrity_check, and hold
// every sequence the child reported committed together with its rollups
// (a journal left by the kill is replayed by Open):
// each sequence is one sample per GPU, so a GPU's stored sample count equals
// the node's durable sequence — nothing lost, nothing applied twice.

const crashEnv = "FLEETTOP_STORE_CRASH_CHILD"

var crashBase = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("run by TestKill9 as its child")
	}
	var now atomic.Int64
	now.Store(crashBase.UnixMilli())
	st, err := Open(path, Options{Clock: func() time.Time { return time.UnixMilli(now.Load()) }, LedgerEvery: time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	ctx := context.Background()
	seqs, err := st.LastSeqs(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	nodes := []string{"n1", "n2"}
	out := bufio.NewWriter(os.Stdout)
	for {
		for range 7 {
			for _, id := range nodes {
				seqs[id]++
				ts := crashBase.Add(time.Duration(seqs[id]) * time.Second)
				now.Store(max(now.Load(), ts.UnixMilli()))
				st.Record(testNode(id, 2), 0, testSample(seqs[id], ts, 2, float64(seqs[id]%10)/10))
			}
		}
		if err := st.Commit(ctx, seqs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Fprintf(out, "committed %d %d\n", seqs["n1"], seqs["n2"])
		out.Flush()
	}
}

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "fleettop.db")
	// The kill moments are random; FLEETTOP_KILL9_SEED replays a logged run's.
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("FLEETTOP_KILL9_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("FLEETTOP_KILL9_SEED: %v", err)
		}
	}
	t.Logf("seed %d (FLEETTOP_KILL9_SEED=%[1]d replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 9))
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{}
		lines := 3 + rng.IntN(40)
		sc := bufio.NewScanner(stdout)
		for i := 0; i < lines && sc.Scan(); i++ {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "committed" {
				t.Fatalf("child said %q", sc.Text())
			}
			n1, _ := strconv.ParseUint(f[1], 10, 64)
			n2, _ := strconv.ParseUint(f[2], 10, 64)
			want["n1"], want["n2"] = n1, n2
		}
		// kill at a random moment, most likely in the middle of a Commit
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if len(want) == 0 {
			t.Fatalf("round %d: child committed nothing; stderr: %s", round, stderr.String())
		}
		checkAfterCrash(t, path, want)
		t.Logf("round %d: killed after %d reported commits (n1 at %d)", round, lines, want["n1"])
	}
}

func checkAfterCrash(t *testing.T, path string, want map[string]uint64) {
	t.Helper()
	ctx := context.Background()
	// Open as the restarted aggregator would: it replays the journal.
	st, err := Open(path, Options{Clock: func() time.Time { return crashBase }})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer st.Close()
	if r, err := st.IntegrityCheck(ctx); err != nil || r != "ok" {
		t.Fatalf("integrity_check after kill -9 = %q, %v", r, err)
	}
	got, err := st.LastSeqs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for id, w := range want {
		if got[id] < w {
			t.Fatalf("%s: durable seq %d, but the child reported %d committed", id, got[id], w)
		}
		for idx := range 2 {
			var samples, minutes int64
			if err := st.DB().QueryRow(`SELECT COALESCE(SUM(samples), 0), COUNT(*) FROM rollup_minute WHERE node_id = ? AND idx = ?`,
				id, idx).Scan(&samples, &minutes); err != nil {
				t.Fatal(err)
			}
			if uint64(samples) != got[id] {
				t.Fatalf("%s gpu %d: %d samples in the rollups, durable seq %d", id, idx, samples, got[id])
			}
			if wantMin := int64(crashBase.Add(time.Duration(got[id])*time.Second).Sub(crashBase)/time.Minute) + 1; minutes != wantMin {
				t.Fatalf("%s gpu %d: %d minute rollups, want %d", id, idx, minutes, wantMin)
			}
		}
	}
}
