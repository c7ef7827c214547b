package tui

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
)

// updateGolden rewrites testdata/*.golden from what the views draw now:
// go test ./tui -run Golden -golden
var updateGolden = flag.Bool("golden", false, "rewrite the golden screens in testdata")

func TestMain(m *testing.M) {
	time.Local = time.UTC
	os.Exit(m.Run())
}

// newTestApp is an App with plain styles, a fixed clock and the fixture.
func newTestApp(w, h int) *App {
	a := NewApp(Options{plain: true, Clock: func() time.Time { return fixedNow.Add(1500 * time.Millisecond) }}, nil)
	a.Update(tea.WindowSizeMsg{Width: w, Height: h})
	a.SetSnapshot(fixtureSnapshot())
	return withHistory(a)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./tui -run Golden -golden)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file:\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func TestGoldenScreens(t *testing.T) {
	views := []struct {
		name string
		keys string
	}{
		{"fleet", ""}, {"nodes", "2"}, {"node", "3"}, {"jobs", "4"}, {"cost", "5"}, {"alerts", "6"}, {"job", "7"}, {"help", "?"},
		{"region", ""}, // Nodes narrowed to a region, with its graphs (enter on the Fleet view)
	}
	for _, size := range [][2]int{{80, 24}, {120, 40}, {200, 50}} {
		for _, v := range views {
			name := fmt.Sprintf("%s_%dx%d", v.name, size[0], size[1])
			t.Run(name, func(t *testing.T) {
				a := newTestApp(size[0], size[1])
				for _, k := range v.keys {
					a.Update(tea.KeyPressMsg{Code: k, Text: string(k)})
				}
				if v.name == "region" {
					a.Update(navMsg{page: pageNodes, filter: "singapore"})
				}
				got := a.Render()
				lines := strings.Split(got, "\n")
				if len(lines) != size[1] {
					t.Errorf("%d lines, want %d", len(lines), size[1])
				}
				for i, l := range lines {
					if w := cellWidth(l); w != size[0] {
						t.Errorf("line %d is %d cells wide, want %d: %q", i, w, size[0], l)
					}
				}
				golden(t, name, got)
			})
		}
	}
}

// TestDisconnectedShowsNoMoney: with every aggregator down, the header shows
// "—" for money rather than the last figures (or 0.00) as if current.
func TestDisconnectedShowsNoMoney(t *testing.T) {
	f := NewMerger([]Endpoint{{URL: "http://asia:8443"}, {URL: "http://gulf:8443"}}, "", 0.05)
	for i, m := range fixtureMsgs() {
		f.SetConn(i, ConnLive, nil, fixedNow)
		f.Apply(i, m, fixedNow)
		f.SetConn(i, ConnDown, fmt.Errorf("connection refused"), fixedNow)
	}
	a := newTestApp(200, 50)
	a.SetSnapshot(f.Snapshot(fixedNow))
	got := a.Render()
	if !strings.Contains(got, "Burn —/h") || strings.Contains(got, "Burn USD") {
		t.Errorf("disconnected header shows money:\n%s", got)
	}
	if !strings.Contains(got, "disconnected") {
		t.Errorf("no disconnected link state:\n%s", got)
	}
}
