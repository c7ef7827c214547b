#!/usr/bin/env bash
# gpu-smoke.sh: build fleettop with cgo and read this machine's real NVML once.
# Prints, per GPU, every metric the driver returned (present) or did not
# (absent: NOT_SUPPORTED or unavailable), plus the NVML source's status.
# Exits non-zero when NVML cannot be initialised or reports no GPU.
#
#   scripts/gpu-smoke.sh [extra flags for `fleettop collector`]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${TMPDIR:-/tmp}/fleettop-gpu-smoke
mkdir -p "$out"
echo "building fleettop (cgo) ..." >&2
CGO_ENABLED=1 go build -o "$out/fleettop" ./cmd/fleettop
# --node-id: the one-shot needs no /etc/machine-id on a scratch box.
"$out/fleettop" collector --once --json --node-id gpu-smoke "$@" >"$out/once.json" 2>"$out/once.log" || {
  echo "fleettop collector --once --json failed:" >&2; cat "$out/once.log" >&2; exit 1; }
python3 - "$out/once.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
src = d.get("sources", {})
nv = src.get("nvml", {})
print("sources:")
for name, st in sorted(src.items()):
    state = "available" if st.get("available") else "UNAVAILABLE"
    extra = (" - " + st["error"]) if st.get("error") else ""
    print(f"  {name:8s} {state}{extra}")
    for k, v in sorted((st.get("counters") or {}).items()):
        print(f"           {k} = {v}")
node = d.get("node", {})
print(f"driver {node.get('driver') or '?'}, CUDA {node.get('cuda') or '?'}")
inv = {x["index"]: x for x in node.get("devices") or []}
for dev in d.get("devices", []):
    i = dev["index"]; info = inv.get(i, {})
    print(f"\nGPU {i}: {dev.get('model')} {dev.get('uuid')} bus {info.get('pci_bus_id', '?')} "
          f"mem {info.get('memory_total', 0) / 2**30:.1f} GiB, power limit {info.get('power_limit', 0):.0f} W, MIG {info.get('mig', False)}")
    for k, v in sorted(dev.get("metrics", {}).items()):
        print(f"  present  {k:16s} {v:g}")
    for k in dev.get("absent", []):
        print(f"  absent   {k}")
# Issue 15's fields: report each as present or absent (absent is legitimate
# where the GPU lacks the feature: GPM needs Hopper or newer, ECC and row
# remapping data-centre boards, MIG instances MIG mode), and fail on a value
# outside its range, which would be a conversion bug.
ratios = ["gr_engine_active", "sm_active", "sm_occupancy", "tensor_active", "dram_active"]
rates = ["pcie_tx", "pcie_rx", "nvlink_tx", "nvlink_rx"]
counts = ["throttle", "ecc_corrected", "ecc_uncorrected", "ecc_corrected_aggregate",
          "ecc_uncorrected_aggregate", "remap_pending", "remap_failure"]
bad = []
print("\nissue 15 fields:")
for dev in d.get("devices", []):
    m = dev.get("metrics", {})
    tag = f"GPU {dev['index']}" + (f" (MIG {dev['mig_instance']['profile']} of GPU {dev['mig_instance']['parent']})" if dev.get("mig_instance") else "")
    have = [k for k in ratios + rates + counts if k in m]
    print(f"  {tag}: {len(have)}/{len(ratios + rates + counts)} present; absent: {', '.join(k for k in ratios + rates + counts if k not in m) or 'none'}")
    if "throttle" in m:
        print(f"    throttle reasons: {', '.join(dev.get('throttle_reasons') or []) or 'none'}")
    for k in ratios:
        if k in m and not 0 <= m[k] <= 1: bad.append(f"{tag} {k}={m[k]} outside 0..1")
    for k in rates:
        if k in m and not 0 <= m[k] < 1e13: bad.append(f"{tag} {k}={m[k]} B/s out of range")
    for k in ("remap_pending", "remap_failure"):
        if k in m and m[k] not in (0, 1): bad.append(f"{tag} {k}={m[k]} not 0/1")
    if "sm_active" in m and "util" in m and m["sm_active"] > m["util"] + 0.05:
        print(f"    note: sm_active {m['sm_active']:.2f} above util {m['util']:.2f} (different sample windows)")
procs = d.get("procs", [])
print(f"\n{len(procs)} compute process(es)")
for p in procs:
    u = p.get("util")
    if u is not None and not 0 <= u <= 1: bad.append(f"process {p['pid']} util {u} outside 0..1")
    print(f"  GPU {p['device']} pid {p['pid']} {p.get('name', '')} {p.get('used_memory', 0) / 2**20:.0f} MiB "
          f"SM {'-' if u is None else f'{u:.0%}'} job={p['job'].get('id') or '-'}")
if bad:
    print("\nFAIL: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
for e in d.get("events", []):
    print(f"event: {e}")
if not nv.get("available") or not d.get("devices"):
    print("\nFAIL: NVML did not initialise or reported no GPU", file=sys.stderr)
    sys.exit(1)
print("\nOK: NVML read", len(d["devices"]), "GPU(s)")
PY
