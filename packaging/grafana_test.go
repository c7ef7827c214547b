package packaging

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/goccy/go-yaml"
)

// TestGrafanaShipped: the deb and rpm install every dashboard under
// /usr/share/fleettop/grafana/. (That each dashboard queries only served
// series is tested in cmd/fleettop against a running aggregator.)
func TestGrafanaShipped(t *testing.T) {
	data, err := os.ReadFile("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var gr struct {
		NFPMs []struct {
			Formats  []string `yaml:"formats"`
			Contents []struct {
				Src string `yaml:"src"`
				Dst string `yaml:"dst"`
			} `yaml:"contents"`
		} `yaml:"nfpms"`
	}
	if err := yaml.Unmarshal(data, &gr); err != nil {
		t.Fatal(err)
	}
	dashboards, _ := filepath.Glob("grafana/*.json")
	if len(dashboards) < 4 {
		t.Fatalf("dashboards %v: want fleet, cost, placement and health", dashboards)
	}
	for _, n := range gr.NFPMs {
		shipped := false
		for _, c := range n.Contents {
			if c.Dst != "/usr/share/fleettop/grafana/" {
				continue
			}
			for _, d := range dashboards {
				if ok, _ := filepath.Match(c.Src, "packaging/"+d); !ok {
					t.Errorf("%s is not matched by %s", d, c.Src)
				}
			}
			shipped = true
		}
		if !shipped {
			t.Errorf("nfpm %v: no contents entry installs the dashboards in /usr/share/fleettop/grafana/", n.Formats)
		}
	}
}
