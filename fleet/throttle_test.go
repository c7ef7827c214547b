package fleet

import (
	"slices"
	"testing"
)

func TestThrottleReasons(t *testing.T) {
	for _, tc := range []struct {
		mask uint64
		want []string
	}{
		{0, nil},
		{ThrottleGPUIdle, []string{"gpu_idle"}},
		{ThrottleSwThermal | ThrottleHwThermal, []string{"sw_thermal", "hw_thermal"}},
		{ThrottleSwPowerCap | 1<<12, []string{"sw_power_cap", "bit_12"}},
	} {
		if got := ThrottleReasons(tc.mask); !slices.Equal(got, tc.want) {
			t.Errorf("ThrottleReasons(%#x) = %v, want %v", tc.mask, got, tc.want)
		}
	}
}
