package aggregator

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// A node's full view goes to every viewer that has it open, each time it
// changes. Going through wire.NodeView costs a map per device and a sorted,
// reflective encoding of it, so nodes are written straight from live state
// here, in exactly wire.NodeView's JSON (TestNodeJSONMatchesView holds the
// two together).

// nodeHead is wire.NodeView without its devices, which are spliced in: its
// own Devices, always nil and omitted, hides the view's (encoding/json takes
// the shallower of two fields with one name), so a field added to NodeView
// needs no edit here.
type nodeHead struct {
	wire.NodeView
	Devices *struct{} `json:"devices,omitempty"`
}

// spliceObject appends JSON object obj without its closing brace, then a
// comma and key: ready for a value and "}".
func spliceObject(dst, obj []byte, key string) []byte {
	dst = append(dst, obj[:len(obj)-1]...)
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

// appendNodeJSON appends node n as wire.NodeView JSON. Caller holds n.mu.
func (s *Server) appendNodeJSON(dst []byte, n *nodeState, now time.Time) ([]byte, error) {
	head, err := json.Marshal(&nodeHead{NodeView: s.viewHead(n, now)})
	if err != nil {
		return dst, err
	}
	dst = spliceObject(dst, head, "devices")
	dst = appendDevicesJSON(dst, n)
	return append(dst, '}'), nil
}

func appendDevicesJSON(b []byte, n *nodeState) []byte {
	b = append(b, '[')
	for i := range n.devs {
		ds, dev := &n.devs[i], &n.node.Devices[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(dev.Index), 10)
		b = append(b, `,"uuid":`...)
		b = appendString(b, dev.UUID)
		b = append(b, `,"vendor":`...)
		b = appendString(b, string(dev.Vendor))
		b = append(b, `,"model":`...)
		b = appendString(b, dev.Model)
		b = append(b, `,"memory_total":`...)
		b = strconv.AppendUint(b, dev.MemoryTotal, 10)
		b = append(b, `,"power_limit":`...)
		b = appendFloat(b, dev.PowerLimit)
		if dev.PCIBusID != "" {
			b = append(b, `,"pci_bus_id":`...)
			b = appendString(b, dev.PCIBusID)
		}
		if in := &dev.Instance; dev.IsInstance() {
			b = append(b, `,"mig_instance":{"parent":`...)
			b = strconv.AppendInt(b, int64(in.Parent), 10)
			b = append(b, `,"gpu_instance_id":`...)
			b = strconv.AppendInt(b, int64(in.GPUInstanceID), 10)
			b = append(b, `,"compute_instance_id":`...)
			b = strconv.AppendInt(b, int64(in.ComputeInstanceID), 10)
			b = append(b, `,"profile":`...)
			b = appendString(b, in.Profile)
			b = append(b, '}')
		}
		if dev.State == fleet.DeviceLost {
			b = append(b, `,"state":"lost"`...)
		} else {
			b = append(b, `,"state":"ok"`...)
		}
		if ds.seen {
			if u, ok := ds.latest.Get(fleet.MetricUtil); ok && finite(u) {
				b = append(b, `,"util":`...)
				b = appendFloat(b, u)
			}
		}
		b = append(b, `,"metrics":{`...)
		first := true
		if ds.seen {
			// Sorted by name, as encoding/json writes maps.
			for _, m := range metricsByName {
				x, ok := ds.latest.Get(m)
				if !ok || !finite(x) {
					continue
				}
				if !first {
					b = append(b, ',')
				}
				first = false
				b = append(b, '"')
				b = append(b, m.String()...)
				b = append(b, `":`...)
				b = appendFloat(b, x)
			}
		}
		b = append(b, "}}"...)
	}
	return append(b, ']')
}

// metricsByName lists the device metrics in order of their names.
var metricsByName = func() []fleet.Metric {
	ms := make([]fleet.Metric, fleet.NumMetrics)
	for i := range ms {
		ms[i] = fleet.Metric(i)
	}
	for i := 1; i < len(ms); i++ { // insertion sort: 17 names, once
		for j := i; j > 0 && ms[j].String() < ms[j-1].String(); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
	return ms
}()

// appendFloat writes x as encoding/json would (x is finite).
func appendFloat(b []byte, x float64) []byte {
	abs := math.Abs(x)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(b, x, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, x, 'f', -1, 64)
}

// appendString writes s as a JSON string.
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		q, _ := json.Marshal(s) // replaces invalid bytes like the rest of the message
		return append(b, q...)
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
