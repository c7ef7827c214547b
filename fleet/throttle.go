package fleet

// Clock-event (throttle) reasons: the bits of MetricThrottle, as NVML's
// nvmlDeviceGetCurrentClocksEventReasons and DCGM_FI_DEV_CLOCK_THROTTLE_REASONS
// report them.
const (
	ThrottleGPUIdle            uint64 = 1 << iota // 0x1
	ThrottleApplicationsClocks                    // 0x2
	ThrottleSwPowerCap                            // 0x4
	ThrottleHwSlowdown                            // 0x8
	ThrottleSyncBoost                             // 0x10
	ThrottleSwThermal                             // 0x20
	ThrottleHwThermal                             // 0x40
	ThrottleHwPowerBrake                          // 0x80
	ThrottleDisplayClocks                         // 0x100
)

var throttleNames = [...]struct {
	bit  uint64
	name string
}{
	{ThrottleGPUIdle, "gpu_idle"},
	{ThrottleApplicationsClocks, "applications_clocks"},
	{ThrottleSwPowerCap, "sw_power_cap"},
	{ThrottleHwSlowdown, "hw_slowdown"},
	{ThrottleSyncBoost, "sync_boost"},
	{ThrottleSwThermal, "sw_thermal"},
	{ThrottleHwThermal, "hw_thermal"},
	{ThrottleHwPowerBrake, "hw_power_brake"},
	{ThrottleDisplayClocks, "display_clocks"},
}

// ThrottleReasons names the bits set in a clock-event mask, lowest bit first;
// bits NVML may add later are named "bit_N".
func ThrottleReasons(mask uint64) []string {
	var out []string
	known := uint64(0)
	for _, t := range throttleNames {
		known |= t.bit
		if mask&t.bit != 0 {
			out = append(out, t.name)
		}
	}
	for b := 0; b < 64; b++ {
		if rest := mask &^ known; rest&(1<<b) != 0 {
			out = append(out, "bit_"+itoa(b))
		}
	}
	return out
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}
