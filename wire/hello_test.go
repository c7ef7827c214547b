package wire_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
	"github.com/fleettop/fleettop/wire"
)

// fullNode sets every field a Hello carries, a MIG instance included.
func fullNode() fleet.Node {
	n := fleet.Node{
		ID: "node-1", Hostname: "gpu-01.example", Region: "Singapore", Site: "sg-1", Provider: "acme",
		Jurisdiction: "SG", BootID: "0b1c2d3e-aaaa", AgentVersion: "v1.2.3 (abc)",
		Lease: fleet.Lease{ID: "lease 7", PricePerGPUHour: fleet.Money{Micros: 2_500_000, Currency: "USD"},
			Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		Labels:  map[string]string{"team": "Recherche et développement", "k8s.io/zone": "a"},
		Devices: []fleet.Device{{Index: 0, UUID: "GPU-1234-abcd", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", PCIBusID: "00000000:17:00.0", MemoryTotal: 80 << 30, PowerLimit: 700}},
	}
	n.Driver, n.CUDA = "550.54.15", "12.4"
	n.Lease.Reserved, n.Lease.GPUs = true, 8
	n.Lease.Billing = fleet.BillPerStartedHour
	n.Devices = append(n.Devices,
		fleet.Device{Index: 1, UUID: "GPU-5678", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 80GB HBM3", MemoryTotal: 80 << 30, PowerLimit: 699.5, MIG: true},
		fleet.Device{Index: 9, UUID: "MIG-9", Vendor: fleet.VendorNVIDIA, Model: "NVIDIA H100 MIG 3g.40gb", MemoryTotal: 40 << 30,
			Instance: fleet.MIGInstance{Parent: 1, GPUInstanceID: 2, ComputeInstanceID: 0, Profile: "3g.40gb"}},
		fleet.Device{Index: 3, UUID: "NPU-3", Vendor: fleet.VendorAscend, Model: "Ascend 910B", MemoryTotal: 64 << 30, PowerLimit: 350})
	n.Sources = []fleet.SourceStatus{{Name: "nvml", Up: true}, {Name: "host", Reason: "gopsutil: no /proc"}}
	return n
}

// TestHelloGolden holds the Hello encoding to its bytes in both protocols,
// so that a change to the field tables cannot change what collectors
// already in the field send or expect.
func TestHelloGolden(t *testing.T) {
	for _, v := range []uint8{1, 2} {
		name := filepath.Join("testdata", "hello-v"+string('0'+v)+".hex")
		h := &wire.Hello{Proto: uint16(v), Node: fullNode()}
		enc, err := wire.NewEncoderVersion(uint16(v))
		if err != nil {
			t.Fatal(err)
		}
		b, err := enc.AppendFrame(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		got := hex.EncodeToString(b)
		if *update {
			if err := os.WriteFile(name, []byte(got+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got != strings.TrimSpace(string(want)) {
			t.Fatalf("protocol %d Hello encodes as\n%s\nwant (%s)\n%s", v, got, name, want)
		}
		f, err := wire.NewDecoder().Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		wantNode := fullNode()
		wantNode.Lease.Start, wantNode.Lease.End = wantNode.Lease.Start.UTC(), wantNode.Lease.End.UTC()
		if v < 2 {
			wantNode.Lease.GPUs, wantNode.Sources = 0, nil
		}
		if got := f.(*wire.Hello).Node; !reflect.DeepEqual(got, wantNode) {
			t.Fatalf("protocol %d: decoded %+v\nwant %+v", v, got, wantNode)
		}
	}
}
