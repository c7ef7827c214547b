package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/aggregator/insight"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/mock"
	"github.com/fleettop/fleettop/wire"
)

// fetchFleet reads /api/v1/fleet with a viewer token.
func fetchFleet(t *testing.T, base, token string) []wire.NodeView {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/fleet", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var body struct {
		Nodes []wire.NodeView `json:"nodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode fleet: %v", err)
	}
	return body.Nodes
}

// waitFleet polls until ok accepts the fleet or the deadline passes.
func waitFleet(t *testing.T, base, token string, within time.Duration, ok func([]wire.NodeView) string) []wire.NodeView {
	t.Helper()
	deadline := time.Now().Add(within)
	var why string
	for {
		nodes := fetchFleet(t, base, token)
		if why = ok(nodes); why == "" {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet never became right: %s", why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDemoHeadless runs `fleettop demo --headless` in-process and reads the
// fleet through the aggregator's API with the printed viewer token.
func TestDemoHeadless(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, demoOptions{simOptions: simOptions{Nodes: 40, Seed: 1, Speed: 1, Interval: 500 * time.Millisecond},
			Headless: true, Listen: "127.0.0.1:0", DataDir: t.TempDir()}, pw, io.Discard)
		pw.Close()
	}()
	var base, token, attach string
	sc := bufio.NewScanner(pr)
	for (base == "" || token == "" || attach == "") && sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "watch it from another terminal: "); ok {
			attach = v
		}
		if v, ok := strings.CutPrefix(line, "aggregator: "); ok {
			base = v
		}
		if v, ok := strings.CutPrefix(line, "viewer token: "); ok {
			token = v
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" || token == "" || attach == "" {
		t.Fatalf("demo printed no URL, token or attach command (err %v)", <-done)
	}
	// The printed command line is ready to run: its token file holds the
	// viewer secret, owner-only.
	_, tokFile, _ := strings.Cut(attach, "--token-file ")
	if b, err := os.ReadFile(tokFile); err != nil || strings.TrimSpace(string(b)) != token {
		t.Errorf("attach line %q: token file holds %q, %v; want the viewer token", attach, b, err)
	} else if fi, _ := os.Stat(tokFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("viewer token file mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(attach, "--aggregator "+base+" ") {
		t.Errorf("attach line %q does not name %s", attach, base)
	}
	nodes := waitFleet(t, base, token, 30*time.Second, func(ns []wire.NodeView) string {
		regions, jur, vendors, devs, online := map[string]bool{}, map[string]bool{}, map[string]bool{}, 0, 0
		for _, n := range ns {
			regions[n.Region] = true
			jur[n.Jurisdiction] = true
			if n.State == wire.StateOnline {
				online++
			}
			for _, d := range n.Devices {
				vendors[string(d.Vendor)] = true
				devs++
			}
		}
		if len(regions) < 5 || !jur["SG"] || !jur["MY"] || !jur["CN"] || !vendors["nvidia"] || !vendors["ascend"] || devs < 200 || online < 40 {
			return fmt.Sprintf("%d nodes (%d online), %d regions, jurisdictions %v, vendors %v, %d devices", len(ns), online, len(regions), jur, vendors, devs)
		}
		return ""
	})
	for _, n := range nodes {
		if n.Lease.PricePerGPUHour.Micros == 0 || n.Provider == "" {
			t.Errorf("node %s lacks a lease price or provider", n.ID)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop after cancel")
	}
}

// TestDemoTokensFile: with --tokens the demo uses the file's tokens.
func TestDemoTokensFile(t *testing.T) {
	dir := t.TempDir()
	f := testutil.WriteSecret(t, dir, "tokens", "# t\ncollector fleet c0llector-secret *\nviewer ops v1ewer-secret\n")
	d, err := loadDemoTokens(f)
	if err != nil || d.collector != "c0llector-secret" || d.viewer != "v1ewer-secret" || d.generated {
		t.Fatalf("loadDemoTokens = %+v, %v", d, err)
	}
	testutil.WriteSecret(t, dir, "tokens", "viewer ops v1ewer-secret\n")
	if _, err := loadDemoTokens(f); err == nil {
		t.Fatal("a token file without a collector token was accepted")
	}
}

// TestMockAgainstAggregator runs `fleettop mock` with a few hundred nodes
// against a real aggregator: all online, no sequence gaps.
func TestMockAgainstAggregator(t *testing.T) {
	const nodes = 300
	dir := t.TempDir()
	tokFile := testutil.WriteSecret(t, dir, "tokens", "collector fleet c0llector-secret *\nviewer ops v1ewer-secret\n")
	testutil.WriteSecret(t, dir, "tokens.collector", "c0llector-secret\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln := testutil.Listen(t, "127.0.0.1:0")
	stop := runAggregator(t, ctx, aggregatorOptions{DataDir: filepath.Join(dir, "agg"), TokensFile: tokFile,
		Logger: slog.New(slog.DiscardHandler)}, ln)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- runMock(ctx, mockOptions{URL: "ws://" + ln.Addr().String(), TokenFile: tokFile + ".collector",
			simOptions: simOptions{Nodes: nodes, Seed: 1, Interval: 500 * time.Millisecond, Speed: 1}}, io.Discard)
	}()
	base := "http://" + ln.Addr().String()
	all := func(ns []wire.NodeView) string {
		online, gaps := 0, uint64(0)
		for _, n := range ns {
			if n.State == wire.StateOnline {
				online++
			}
			gaps += n.Gaps
		}
		if len(ns) < nodes || online < nodes || gaps != 0 {
			return fmt.Sprintf("%d nodes, %d online, %d gaps", len(ns), online, gaps)
		}
		return ""
	}
	// Bounds for a loaded CI machine: the test takes some 20 s alone under
	// -race here (12 s to the first all-online fleet), and about twice that
	// beside other work; a passing run never waits them out.
	waitFleet(t, base, "v1ewer-secret", 3*time.Minute, all)
	// Then every node's sequence advances, all still online, no gaps.
	seqs := map[string]uint64{}
	for _, n := range fetchFleet(t, base, "v1ewer-secret") {
		seqs[n.ID] = n.Seq
	}
	waitFleet(t, base, "v1ewer-secret", time.Minute, func(ns []wire.NodeView) string {
		if why := all(ns); why != "" {
			return why
		}
		for _, n := range ns {
			if n.Seq <= seqs[n.ID] {
				return fmt.Sprintf("node %s stuck at seq %d", n.ID, n.Seq)
			}
		}
		return ""
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("mock: %v", err)
	}
}

// TestDemoConfig: the generated config loads and covers every lease currency.
func TestDemoConfig(t *testing.T) {
	sc, err := mock.New(mock.Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "agg.yaml")
	os.WriteFile(f, demoConfig(sc), 0o600)
	cfg, err := insight.LoadConfig(f)
	if err != nil {
		t.Fatalf("demo config does not load: %v\n%s", err, demoConfig(sc))
	}
	for _, n := range sc.Nodes {
		c := n.Info.Lease.PricePerGPUHour.Currency
		if _, ok := cfg.RateTable[c]; !ok && c != cfg.Currency {
			t.Errorf("no rate for %s", c)
		}
	}
	if cfg.Rules.Allowed("cn-customer", "SG") || !cfg.Rules.Allowed("cn-customer", "CN") {
		t.Error("cn-customer residency rule missing")
	}
	if len(cfg.RegionBudgets) != 6 {
		t.Errorf("budgets for %d regions; want 6", len(cfg.RegionBudgets))
	}
}
