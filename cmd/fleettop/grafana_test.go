package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/internal/testutil"
	"github.com/fleettop/fleettop/wire"
)

// TestGrafanaDashboardsQueryServedSeries runs the aggregator with
// remote_write configured, feeds it an NVIDIA and an Ascend node, and checks
// that every metric any shipped dashboard expression names is on /metrics.
func TestGrafanaDashboardsQueryServedSeries(t *testing.T) {
	dir := t.TempDir()
	cfg := testutil.WriteSecret(t, dir, "aggregator.yaml", "remote_write:\n  - url: http://127.0.0.1:1/api/v1/write\n    interval: 1h\n")
	o := aggregatorOptions{DataDir: filepath.Join(dir, "data"), TokensFile: writeTokens(t, dir), ConfigFile: cfg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ln := loopback(t)
	_, stop, err := startAggregator(context.Background(), o, ln)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = stop(ctx)
	}()
	base := "http://" + ln.Addr().String()
	usd := fleet.Money{Micros: 2_000_000, Currency: "USD"}
	for _, node := range []fleet.Node{
		{ID: "sg-1", Region: "Singapore", Jurisdiction: "SG", Provider: "acme", Lease: fleet.Lease{ID: "L1", PricePerGPUHour: usd},
			Devices: []fleet.Device{{Index: 0, UUID: "GPU-1", Vendor: fleet.VendorNVIDIA, Model: "H100"}}},
		{ID: "jb-1", Region: "Johor", Jurisdiction: "MY", Provider: "tiger", Lease: fleet.Lease{ID: "L2", PricePerGPUHour: usd},
			Devices: []fleet.Device{{Index: 0, UUID: "NPU-1", Vendor: fleet.VendorAscend, Model: "Ascend 910B"}}},
	} {
		feed(t, base, node)
	}
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(body, "npu_chip_info_health_status{") || !strings.Contains(body, "DCGM_FI_DEV_XID_ERRORS{") {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed both nodes:\n%s", body)
		}
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+aggViewerSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		time.Sleep(50 * time.Millisecond)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(l, "{")
		name, _, _ = strings.Cut(name, " ")
		have[name] = true
		have[regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(name, "")] = true
	}
	files, _ := filepath.Glob("../../packaging/grafana/*.json")
	if len(files) < 4 {
		t.Fatalf("dashboards: %v, want fleet, cost, placement and health", files)
	}
	metric := regexp.MustCompile(`\b((?:DCGM_FI|fleettop|npu_chip_info)_[A-Za-z0-9_]+)`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		n := 0
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				n++
				for _, m := range metric.FindAllString(tg.Expr, -1) {
					if !have[m] {
						t.Errorf("%s: panel %q queries %s, which /metrics does not serve", filepath.Base(f), p.Title, m)
					}
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no expressions", f)
		}
	}
}

// feed connects as node's collector and sends its Hello and one sample of
// every device (an XID on NVIDIA devices).
func feed(t *testing.T, base string, node fleet.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/v1/collect",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + aggCollectorSecret}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	enc := wire.NewEncoder()
	send := func(f wire.Frame) {
		b, err := enc.AppendFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
	}
	send(&wire.Hello{Proto: wire.Version, Node: node})
	if _, _, err := c.Read(ctx); err != nil { // Welcome
		t.Fatal(err)
	}
	s := fleet.Sample{Seq: 1, Time: time.Now()}
	for _, d := range node.Devices {
		ds := fleet.DeviceSample{Index: d.Index}
		for m := fleet.Metric(0); m < fleet.NumMetrics; m++ {
			ds.Set(m, 1)
		}
		ds.Set(fleet.MetricHealth, float64(fleet.HealthOK))
		s.Devices = append(s.Devices, ds)
		s.ProcsSet = true
		s.Procs = append(s.Procs, fleet.Process{Device: d.Index, PID: uint32(100 + d.Index), Name: "python",
			Job: fleet.Job{ID: "train-" + node.ID, Team: "research", DataClass: "internal"}})
		if d.Vendor == fleet.VendorNVIDIA {
			s.Events = append(s.Events, fleet.Event{Time: time.Now(), Kind: fleet.EventXID, Severity: fleet.SevCritical, Device: d.Index, Code: 79})
		}
	}
	send(&wire.Samples{Samples: []fleet.Sample{s}})
}
