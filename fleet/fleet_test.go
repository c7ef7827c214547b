package fleet

import "testing"

func TestMoneyString(t *testing.T) {
	for _, c := range []struct {
		m    Money
		want string
	}{
		{Money{0, "USD"}, "0.00 USD"},
		{Money{1_234_560_000, "SGD"}, "1234.56 SGD"},
		{Money{4_999, "USD"}, "0.00 USD"},
		{Money{5_000, "USD"}, "0.01 USD"},   // half a cent rounds away from zero
		{Money{-5_000, "USD"}, "-0.01 USD"}, // on both sides
		{Money{-1_994_999, "CNY"}, "-1.99 CNY"},
	} {
		if got := c.m.String(); got != c.want {
			t.Errorf("Money{%d, %s}.String() = %q, want %q", c.m.Micros, c.m.Currency, got, c.want)
		}
	}
}

// An absent metric is absent, not zero: Set, Has, Get and Clear keep the
// Present mask and the value in step.
func TestDeviceSamplePresence(t *testing.T) {
	var d DeviceSample
	if _, ok := d.Get(MetricPower); ok {
		t.Fatal("zero DeviceSample reports power present")
	}
	d.Set(MetricPower, 0) // a real zero is present
	if v, ok := d.Get(MetricPower); !ok || v != 0 {
		t.Fatalf("Get(power) after Set(0) = %v, %v", v, ok)
	}
	d.Set(MetricTemp, 61.5)
	d.Clear(MetricPower)
	if d.Has(MetricPower) || !d.Has(MetricTemp) {
		t.Fatalf("after Clear(power): present mask %b", d.Present)
	}
	var h HostSample
	h.Set(HostLoad1, 3.25)
	if v, ok := h.Get(HostLoad1); !ok || v != 3.25 {
		t.Fatalf("host load1 = %v, %v", v, ok)
	}
	if _, ok := h.Get(HostNetRx); ok {
		t.Fatal("unset host metric reported present")
	}
}

func TestMetricNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for m := Metric(0); m < NumMetrics; m++ {
		if name := m.String(); seen[name] {
			t.Errorf("metric name %q used twice", name)
		} else {
			seen[name] = true
		}
	}
	seen = map[string]bool{} // host metrics are a namespace of their own
	for m := HostMetric(0); m < NumHostMetrics; m++ {
		if name := m.String(); seen[name] {
			t.Errorf("host metric name %q used twice", name)
		} else {
			seen[name] = true
		}
	}
	if Metric(200).String() != "metric(200)" {
		t.Errorf("out-of-range metric prints %q", Metric(200).String())
	}
}

func TestLeaseGPUCounts(t *testing.T) {
	devs := func(states ...DeviceState) []Device {
		out := make([]Device, len(states))
		for i, s := range states {
			out[i] = Device{Index: i, State: s}
		}
		return out
	}
	for _, tc := range []struct {
		name                   string
		node                   Node
		billed, visible, blind int
	}{
		{"no contract: bill the devices", Node{Devices: devs("", "")}, 2, 2, 0},
		{"contract and all visible", Node{Lease: Lease{GPUs: 2}, Devices: devs(DeviceOK, "")}, 2, 2, 0},
		{"NVML failed: paid but blind", Node{Lease: Lease{GPUs: 8}}, 8, 0, 8},
		{"one lost to XID 79", Node{Lease: Lease{GPUs: 2}, Devices: devs("", DeviceLost)}, 2, 1, 1},
		{"lost without a contract is still paid for", Node{Devices: devs(DeviceLost, "")}, 2, 1, 1},
		{"more seen than contracted", Node{Lease: Lease{GPUs: 1}, Devices: devs("", "")}, 1, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.node.BilledGPUs(); got != tc.billed {
				t.Errorf("BilledGPUs = %d, want %d", got, tc.billed)
			}
			if got := tc.node.VisibleGPUs(); got != tc.visible {
				t.Errorf("VisibleGPUs = %d, want %d", got, tc.visible)
			}
			if got := tc.node.BlindGPUs(); got != tc.blind {
				t.Errorf("BlindGPUs = %d, want %d", got, tc.blind)
			}
		})
	}
}

func TestXIDText(t *testing.T) {
	for code, want := range map[int64]string{
		79:   "XID 79 (GPU has fallen off the bus)",
		48:   "XID 48 (double-bit ECC error)",
		9999: "XID 9999",
	} {
		if got := XIDText(code); got != want {
			t.Errorf("XIDText(%d) = %q, want %q", code, got, want)
		}
	}
}
