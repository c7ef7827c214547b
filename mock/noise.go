package mock

import "math"

// The simulation's values are pure functions of (seed, node, device, time):
// every random-looking quantity comes from hashing its coordinates, so a
// reading costs a few multiplications, needs no shared generator, and does not
// depend on the order in which nodes or devices are read.

// mix is the splitmix64 finaliser: a fast bijective scrambler of 64 bits.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hash2 combines two coordinates into one well-mixed key.
func hash2(a, b uint64) uint64 { return mix(a ^ mix(b+0x632be59bd9b4e019)) }

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// at returns a uniform value in [0, 1) for integer step i of key.
func at(key uint64, i int64) float64 { return unit(hash2(key, uint64(i))) }

// smooth is value noise in [0, 1): uniform values at multiples of period,
// joined by a smoothstep, so a metric drifts instead of jumping.
func smooth(key uint64, t, period float64) float64 {
	x := t / period
	fl := math.Floor(x)
	f := x - fl
	i := int64(fl)
	a, b := at(key, i), at(key, i+1)
	return a + (b-a)*f*f*(3-2*f)
}

func clamp(x, lo, hi float64) float64 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}
