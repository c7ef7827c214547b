package fleet

import "strconv"

// xidMeanings are the XIDs an operator of leased data-centre GPUs meets,
// with their meaning in NVIDIA's XID catalogue ("XID Errors", NVIDIA GPU
// deployment and management documentation, r570).
var xidMeanings = map[int64]string{
	13:  "graphics engine exception",
	31:  "GPU memory page fault",
	32:  "invalid or corrupted push buffer stream",
	43:  "GPU stopped processing",
	45:  "preemptive cleanup, due to previous errors",
	48:  "double-bit ECC error",
	61:  "internal micro-controller breakpoint/warning",
	62:  "internal micro-controller halt",
	63:  "ECC page retirement or row remapping recorded",
	64:  "ECC page retirement or row remapping failed",
	68:  "NVDEC0 exception",
	69:  "graphics engine class error",
	74:  "NVLink error",
	79:  "GPU has fallen off the bus",
	92:  "high single-bit ECC error rate",
	94:  "contained ECC error",
	95:  "uncontained ECC error",
	109: "context switch timeout",
	119: "GSP RPC timeout",
	120: "GSP error",
	121: "C2C link error",
	140: "unrecovered ECC error",
	154: "GPU recovery action changed",
}

// XIDText is "XID 79 (GPU has fallen off the bus)", or "XID n" for an XID
// outside the catalogue.
func XIDText(code int64) string {
	s := "XID " + strconv.FormatInt(code, 10)
	if m, ok := xidMeanings[code]; ok {
		s += " (" + m + ")"
	}
	return s
}
