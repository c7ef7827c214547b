package collector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

var noDefaults = NodeDefaults{MachineIDPath: "/nonexistent", Hostname: func() (string, error) { return "h", nil }}

func TestConfigFile(t *testing.T) {
	c, err := LoadConfig("testdata/collector.yaml", true)
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Node(noDefaults)
	if err != nil {
		t.Fatal(err)
	}
	want := fleet.Money{Micros: 2_350_000, Currency: "USD"}
	if n.ID != "sg-h100-07" || n.Jurisdiction != "SG" || n.Lease.PricePerGPUHour != want || n.Lease.Billing != fleet.BillPerStartedHour ||
		!n.Lease.Start.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || n.Labels["rack"] != "r12" || n.Hostname != "gpu07.sg.example" ||
		n.Lease.GPUs != 8 {
		t.Fatalf("node %+v", n)
	}
	// A flag overrides the file.
	c.Set("jurisdiction", "MY", "--jurisdiction")
	if n, _ := c.Node(noDefaults); n.Jurisdiction != "MY" {
		t.Fatalf("override: %q", n.Jurisdiction)
	}
}

func TestConfigErrorsNameFileLineAndFix(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"node_id: a\nregoin: x\n", "c.yaml:2: unknown key \"regoin\"; known keys:"},
		{"node_id: a\njurisdiction: sg\n", "c.yaml:2: jurisdiction \"sg\": write an upper-case ISO 3166-1 alpha-2"},
		{"node_id: a\ncurrency: USD\nprice_per_gpu_hour: 2.3456789\n", "c.yaml:3: price \"2.3456789\": write a plain decimal"},
		{"node_id: a\nprice_per_gpu_hour: \"1\"\n", "c.yaml:2: a price needs a currency"},
		{"node_id: a\n\n\nlease_end: next week\n", "c.yaml:4: lease_end \"next week\": write an RFC 3339 time"},
		{"node_id: a\nbilling: monthly\n", "c.yaml:2: billing \"monthly\": write second or hour"},
		{"node_id: a\nregion: [1, 2]\n", "c.yaml:2: this value has the wrong shape"},
		{"node_id: a\ncurrency: usd\n", "c.yaml:2: currency \"usd\": write an upper-case ISO 4217"},
		{"node_id: a\ngpus: eight\n", "c.yaml:2: gpus \"eight\": write the number of GPUs the lease pays for, 1 to 64"},
		{"node_id: a\ngpus: 0\n", "c.yaml:2: gpus \"0\": write the number"},
	} {
		c, err := ParseConfig([]byte(tc.yaml), "c.yaml")
		if err == nil {
			_, err = c.Node(noDefaults)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestConfigFlagErrorNamesFlag(t *testing.T) {
	var c Config
	c.Set("node_id", "n", "--node-id")
	c.Set("jurisdiction", "Singapore", "--jurisdiction")
	if _, err := c.Node(noDefaults); err == nil || !strings.HasPrefix(err.Error(), "--jurisdiction: ") {
		t.Fatalf("error %v", err)
	}
}

func TestConfigMissing(t *testing.T) {
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "none.yaml"), false); err != nil {
		t.Fatalf("missing default config: %v", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "none.yaml"), true); err == nil {
		t.Fatal("missing explicit config accepted")
	}
}

func TestNodeIDFromMachineID(t *testing.T) {
	p := filepath.Join(t.TempDir(), "machine-id")
	os.WriteFile(p, []byte("0123456789abcdef\n"), 0o644)
	var c Config
	n, err := c.Node(NodeDefaults{MachineIDPath: p})
	if err != nil || n.ID != "0123456789abcdef" {
		t.Fatalf("%+v %v", n, err)
	}
	if _, err := c.Node(noDefaults); err == nil {
		t.Fatal("no node id accepted")
	}
}

func FuzzParseConfig(f *testing.F) {
	b, _ := os.ReadFile("testdata/collector.yaml")
	f.Add(b)
	f.Add([]byte("node_id: a\njurisdiction: sg\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b, "f.yaml")
		if err != nil {
			return
		}
		c.Node(noDefaults)
	})
}

// A node the aggregator would refuse at the edge does not start: the
// operator gets the reason at once instead of a reconnect loop.
func TestNodeRefusedLikeTheAggregator(t *testing.T) {
	for _, c := range []Config{
		{NodeID: "n1", Hostname: "bad host"},
		{NodeID: "n/1"},
		{NodeID: "n1", Region: "a\x1b[2J"},
		{NodeID: "n1", Labels: map[string]string{"a b": "x"}},
	} {
		if _, err := c.Node(noDefaults); err == nil || !strings.Contains(err.Error(), "the aggregator would refuse") {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if _, err := (&Config{NodeID: "n1", Hostname: "gpu-01.example", Region: "Singapore", Labels: map[string]string{"k8s.io/zone": "a b"}}).Node(noDefaults); err != nil {
		t.Fatalf("good node refused: %v", err)
	}
}
