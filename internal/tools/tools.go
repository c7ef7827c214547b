//go:build tools

// Package tools pins the modules fleettop's packages are being built on, so
// that go.mod keeps them while those packages land. Removed once all are used.
package tools

import (
	_ "charm.land/bubbles/v2/key"
	_ "charm.land/bubbletea/v2"
	_ "charm.land/lipgloss/v2"
	_ "github.com/NVIDIA/go-nvml/pkg/nvml"
	_ "github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	_ "github.com/charmbracelet/x/exp/teatest/v2"
	_ "github.com/coder/websocket"
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/goccy/go-yaml"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "github.com/shirou/gopsutil/v4/cpu"
	_ "modernc.org/sqlite"
)
