// Package packaging holds the release files (systemd units, example configs,
// package scripts); its tests check them with the system's own tools where
// those are installed.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitsVerify runs systemd-analyze verify on both units, with ExecStart
// pointed at an existing binary (verify checks that the executable exists).
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	for _, name := range []string{"fleettop-collector.service", "fleettop-aggregator.service"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("systemd", name))
			if err != nil {
				t.Fatal(err)
			}
			unit := string(b)
			for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "StateDirectory=fleettop", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"} {
				if !strings.Contains(unit, want) {
					t.Errorf("%s lacks %s", name, want)
				}
			}
			tmp := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(unit, "/usr/bin/fleettop", "/bin/true")), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sa, "verify", tmp).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
			}
		})
	}
}

// TestGoreleaserCheck validates .goreleaser.yaml where goreleaser is installed
// (go install github.com/goreleaser/goreleaser/v2@v2.15.1).
func TestGoreleaserCheck(t *testing.T) {
	gr, err := exec.LookPath("goreleaser")
	if err != nil {
		if gp, gerr := exec.Command("go", "env", "GOPATH").Output(); gerr == nil {
			cand := filepath.Join(strings.TrimSpace(string(gp)), "bin", "goreleaser")
			if _, serr := os.Stat(cand); serr == nil {
				gr, err = cand, nil
			}
		}
	}
	if err != nil {
		t.Skip("goreleaser not installed")
	}
	cmd := exec.Command(gr, "check")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("goreleaser check: %v\n%s", err, out)
	}
}
