package insight

import (
	"testing"
	"time"

	"github.com/fleettop/fleettop/fleet"
)

// The lease decides what is billed: a node contracted for N GPUs costs N
// whatever its sources enumerate, and the GPUs it cannot see are paid but
// blind, idle and nobody's, so every breakdown still adds up.
func TestLeaseCountIsBilled(t *testing.T) {
	price := fleet.Money{Micros: 2_000_000, Currency: "USD"}
	dev := func(i int, st fleet.DeviceState) fleet.Device {
		return fleet.Device{Index: i, UUID: "GPU-" + string(rune('a'+i)), Vendor: fleet.VendorNVIDIA, Model: "H100", State: st}
	}
	for _, tc := range []struct {
		name              string
		gpus              int
		devs              []fleet.Device
		burn, blind, idle int64 // micro-units per hour
		online, lost      int
	}{
		{"contract, all visible", 2, []fleet.Device{dev(0, ""), dev(1, "")}, 4_000_000, 0, 2_000_000, 2, 0},
		{"NVML failed: zero devices, still billed", 8, nil, 16_000_000, 16_000_000, 16_000_000, 0, 0},
		{"one device lost to XID 79", 2, []fleet.Device{dev(0, ""), dev(1, fleet.DeviceLost)}, 4_000_000, 2_000_000, 2_000_000, 1, 1},
		{"no contract: the devices", 0, []fleet.Device{dev(0, ""), dev(1, "")}, 4_000_000, 0, 2_000_000, 2, 0},
		{"fewer contracted than seen", 1, []fleet.Device{dev(0, ""), dev(1, "")}, 2_000_000, 0, 0, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Config{}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			n := &fleet.Node{ID: "n1", Region: "Singapore", Provider: "acme",
				Lease: fleet.Lease{PricePerGPUHour: price, GPUs: tc.gpus}, Devices: tc.devs}
			for i := range 3 {
				s := &fleet.Sample{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second)}
				for _, d := range tc.devs {
					if d.State != fleet.DeviceLost {
						s.Devices = append(s.Devices, util(d.Index, 0.9-0.9*float64(d.Index))) // device 0 busy, 1 idle
					}
				}
				e.Observe(n, 0, s)
			}
			if got := e.NodeBurn(n); got.Micros != tc.burn {
				t.Errorf("NodeBurn = %d, want %d", got.Micros, tc.burn)
			}
			sum, _, _ := e.Summarize(t0.Add(2 * time.Second))
			if sum.BurnPerHour.Micros != tc.burn || sum.BlindBurnPerHour.Micros != tc.blind || sum.IdleBurn.Micros != tc.idle {
				t.Errorf("burn %d blind %d idle %d, want %d %d %d", sum.BurnPerHour.Micros, sum.BlindBurnPerHour.Micros,
					sum.IdleBurn.Micros, tc.burn, tc.blind, tc.idle)
			}
			if sum.GPUsOnline != tc.online || sum.GPUsLost != tc.lost {
				t.Errorf("online %d lost %d, want %d %d", sum.GPUsOnline, sum.GPUsLost, tc.online, tc.lost)
			}
			by := map[string][2]int64{}
			for _, c := range sum.Costs {
				v := by[c.By]
				by[c.By] = [2]int64{v[0] + c.BurnPerHour.Micros, v[1] + c.IdleBurn.Micros}
			}
			for _, k := range []string{"region", "provider", "model", "team"} {
				if by[k] != [2]int64{sum.BurnPerHour.Micros, sum.IdleBurn.Micros} {
					t.Errorf("burn, idle by %s = %v, fleet %d %d", k, by[k], sum.BurnPerHour.Micros, sum.IdleBurn.Micros)
				}
			}
		})
	}
}
