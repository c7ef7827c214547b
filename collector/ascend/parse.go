// Package ascend is the Huawei Ascend source: it runs npu-smi and parses its
// text output (the `npu-smi info` table, and the per-chip `npu-smi info -t
// TYPE -i NPU -c CHIP` key/value listings where the table says NA).
package ascend

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Chip is one row pair of the `npu-smi info` table.
type Chip struct {
	NPU, Chip int
	Name      string // e.g. "910B3", "310P3"
	Health    string // OK, Warning, Alarm, Critical, …
	BusID     string

	Power, Temp, AICore float64 // W, °C, percent
	HasPower, HasTemp   bool
	HasAICore           bool

	MemUsedMB, MemTotalMB uint64 // DDR ("Memory-Usage")
	HasMem                bool
	HBMUsedMB, HBMTotalMB uint64
	HasHBM                bool
}

// Proc is one row of the process table.
type Proc struct {
	NPU, Chip int
	PID       uint32
	Name      string
	MemMB     uint64
	HasMem    bool
}

// Info is a parsed `npu-smi info`.
type Info struct {
	Version string
	Chips   []Chip
	Procs   []Proc
}

// usedTotalRe compiles on first use, not in every fleettop process's init.
var usedTotalRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(\d+)\s*/\s*(\d+)`) })

// ParseInfo parses the output of `npu-smi info` (910, 910B, 310P layouts).
// Unparseable cells leave their field absent; it never fails on odd input,
// it just finds fewer chips.
func ParseInfo(b []byte) Info {
	var info Info
	const (
		modeNone = iota
		modeChips
		modeProcs
	)
	mode := modeNone
	hbm := false
	var pending *Chip
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "+") {
			continue // borders; a row pair never spans one
		}
		if !strings.HasPrefix(line, "|") {
			continue
		}
		if strings.Contains(line, "npu-smi") && strings.Contains(line, "Version:") {
			_, v, _ := strings.Cut(line, "Version:")
			if f := strings.Fields(strings.Trim(v, "| ")); len(f) > 0 {
				info.Version = f[0]
			}
			continue
		}
		cells := splitCells(line)
		if len(cells) < 3 {
			continue
		}
		switch {
		case strings.Contains(line, "Process id"):
			mode, pending = modeProcs, nil
			continue
		case strings.Contains(cells[0], "NPU") && strings.Contains(cells[0], "Name"):
			mode, pending, hbm = modeChips, nil, false
			continue
		case strings.Contains(line, "Bus-Id"):
			hbm = strings.Contains(line, "HBM")
			continue
		}
		switch mode {
		case modeChips:
			f0 := strings.Fields(cells[0])
			if len(f0) == 0 {
				continue
			}
			id, err := strconv.Atoi(f0[0])
			if err != nil || id < 0 {
				continue
			}
			if pending == nil {
				c := Chip{NPU: id, Name: strings.Join(f0[1:], " "), Health: strings.TrimSpace(cells[1])}
				f := strings.Fields(cells[2])
				if len(f) > 0 {
					c.Power, c.HasPower = num(f[0])
				}
				if len(f) > 1 {
					c.Temp, c.HasTemp = num(f[1])
				}
				pending = &c
				continue
			}
			c := *pending
			pending = nil
			c.Chip = id
			c.BusID = strings.TrimSpace(cells[1])
			rest := strings.TrimSpace(cells[2])
			if f := strings.Fields(rest); len(f) > 0 {
				c.AICore, c.HasAICore = num(f[0])
				rest = strings.TrimSpace(rest[len(f[0]):])
			}
			pairs := usedTotalRe().FindAllStringSubmatch(rest, 2)
			if len(pairs) > 0 {
				c.MemUsedMB, c.MemTotalMB, c.HasMem = pair(pairs[0])
			}
			if hbm && len(pairs) > 1 {
				c.HBMUsedMB, c.HBMTotalMB, c.HasHBM = pair(pairs[1])
			}
			info.Chips = append(info.Chips, c)
		case modeProcs:
			if len(cells) < 4 {
				continue
			}
			f0 := strings.Fields(cells[0])
			if len(f0) < 2 {
				continue
			}
			npu, err1 := strconv.Atoi(f0[0])
			chip, err2 := strconv.Atoi(f0[1])
			pid, err3 := strconv.ParseUint(strings.TrimSpace(cells[1]), 10, 32)
			if err1 != nil || err2 != nil || err3 != nil {
				continue
			}
			p := Proc{NPU: npu, Chip: chip, PID: uint32(pid), Name: strings.TrimSpace(cells[2])}
			if v, err := strconv.ParseUint(strings.TrimSpace(cells[3]), 10, 64); err == nil {
				p.MemMB, p.HasMem = v, true
			}
			info.Procs = append(info.Procs, p)
		}
	}
	return info
}

func splitCells(line string) []string {
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	return strings.Split(line, "|")
}

func pair(m []string) (used, total uint64, ok bool) {
	u, err1 := strconv.ParseUint(m[1], 10, 64)
	t, err2 := strconv.ParseUint(m[2], 10, 64)
	return u, t, err1 == nil && err2 == nil
}

// num parses a table number; "NA", "-" and garbage are absent.
func num(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != v || v < 0 || v > 1e12 {
		return 0, false
	}
	return v, true
}

// ParseKV parses the "\tKey(unit)   : value" listing of `npu-smi info -t TYPE`.
func ParseKV(b []byte) map[string]string {
	m := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, " : ")
		if !ok {
			k, v, ok = strings.Cut(line, ":")
		}
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k != "" {
			m[k] = v
		}
	}
	return m
}

// KVValue finds the first of keys in m and returns its value in base units:
// the unit in the key's parentheses scales it ("(0.1W)" → ×0.1, "(mW)" →
// ×0.001, "(MB)" → ×2^20, "(%)" → ×0.01; "(W)" and "(C)" as they are).
func KVValue(m map[string]string, keys ...string) (float64, bool) {
	for want := range m {
		for _, k := range keys {
			if normKey(want) != normKey(k) {
				continue
			}
			v, ok := num(m[want])
			if !ok {
				return 0, false
			}
			return v * unitScale(want), true
		}
	}
	return 0, false
}

// normKey drops the unit and spaces: "NPU Temperature (C)" and
// "NPU Temperature(C)" are the same key, as are "(W)" and "(0.1W)".
func normKey(k string) string {
	if i := strings.IndexByte(k, '('); i >= 0 {
		k = k[:i]
	}
	return strings.ToLower(strings.ReplaceAll(k, " ", ""))
}

func unitScale(key string) float64 {
	i, j := strings.LastIndexByte(key, '('), strings.LastIndexByte(key, ')')
	if i < 0 || j < i {
		return 1
	}
	switch strings.ToLower(strings.ReplaceAll(key[i+1:j], " ", "")) {
	case "0.1w":
		return 0.1
	case "mw":
		return 0.001
	case "kb":
		return 1 << 10
	case "mb":
		return 1 << 20
	case "gb":
		return 1 << 30
	case "%":
		return 0.01
	}
	return 1
}
