package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func onceOpts(t *testing.T) collectorOptions {
	return collectorOptions{
		once: true, json: true, interval: 1e9, config: filepath.Join(t.TempDir(), "absent.yaml"),
		procRoot: "../../collector/host/testdata/proc", npuSmi: filepath.Join(t.TempDir(), "no-npu-smi"),
		nvmlLib: filepath.Join(t.TempDir(), "no-libnvidia-ml.so"), machineID: "/nonexistent",
	}
}

func TestCollectorOnceWithoutGPU(t *testing.T) {
	var out, errb bytes.Buffer
	err := runCollector(context.Background(), &out, &errb, onceOpts(t), map[string]string{"node_id": "jump-1", "jurisdiction": "SG"}, false)
	if err != nil {
		t.Fatal(err, errb.String())
	}
	var got onceOutput
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err, out.String())
	}
	nv := got.Sources["nvml"]
	if nv.Available || !strings.HasPrefix(nv.Error, "NVML not available: ") {
		t.Fatalf("nvml status %+v", nv)
	}
	if got.Sources["ascend"].Available || !got.Sources["host"].Available || got.Host["mem_total"] == 0 {
		t.Fatalf("sources %+v host %v", got.Sources, got.Host)
	}
	if got.Node.ID != "jump-1" || got.Node.Jurisdiction != "SG" || len(got.Devices) != 0 {
		t.Fatalf("node %+v devices %d", got.Node, len(got.Devices))
	}
}

func TestCollectorUsageErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(*collectorOptions)
		set  map[string]string
		want string
	}{
		"json without once":       {func(o *collectorOptions) { o.once = false }, nil, "--json goes with --once"},
		"bad mock":                {func(o *collectorOptions) { o.mock = "amd" }, nil, "--mock \"amd\""},
		"no aggregator":           {func(o *collectorOptions) { o.once, o.json = false, false }, map[string]string{"node_id": "n"}, "--aggregator is required"},
		"bad flag value":          {func(o *collectorOptions) {}, map[string]string{"node_id": "n", "currency": "dollars"}, "--currency: currency \"dollars\""},
		"missing explicit config": {func(o *collectorOptions) {}, nil, "read config"},
		"negative gomaxprocs":     {func(o *collectorOptions) { o.gomaxprocs = -1 }, nil, "--gomaxprocs -1"},
	} {
		t.Run(name, func(t *testing.T) {
			o := onceOpts(t)
			tc.mod(&o)
			explicit := name == "missing explicit config"
			err := runCollector(context.Background(), &bytes.Buffer{}, &bytes.Buffer{}, o, tc.set, explicit)
			var u usageError
			if err == nil || !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want usage error containing %q", err, tc.want)
			}
		})
	}
}

// TestSetCollectorProcs: the default of one P yields to $GOMAXPROCS, an
// explicit --gomaxprocs does not, and 0 leaves the runtime alone.
func TestSetCollectorProcs(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(orig)
	for _, tc := range []struct {
		env      string
		n        int
		explicit bool
		want     int
	}{
		{"", 1, false, 1},
		{"3", 1, false, 3},
		{"3", 1, true, 1},
		{"", 2, true, 2},
		{"", 0, true, 3},
	} {
		runtime.GOMAXPROCS(3)
		t.Setenv("GOMAXPROCS", tc.env)
		setCollectorProcs(tc.n, tc.explicit)
		if got := runtime.GOMAXPROCS(0); got != tc.want {
			t.Errorf("env %q, --gomaxprocs %d (explicit %v): GOMAXPROCS %d, want %d", tc.env, tc.n, tc.explicit, got, tc.want)
		}
	}
}
