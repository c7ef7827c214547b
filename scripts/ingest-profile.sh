#!/usr/bin/env bash
# ingest-profile.sh: the ingest check's scenario by hand, with profiles.
# Starts an aggregator (a `-tags pprof` build, so /debug/pprof answers on
# FLEETTOP_PPROF), 1,250 `fleettop mock` nodes at 1 Hz and 10 python viewers
# on /v1/watch; after 25 s takes a 20 s (PROF_S) CPU profile and a heap profile of the
# aggregator into OUT and prints its CPU per GPU-sample, RSS beyond its idle
# baseline, read/write syscalls and context switches over the window, and
# the mock's own CPU; OUT/smaps.txt and OUT/memstats.txt (MemStats at the end of
# heap?debug=1) say where the RSS is. Needs a python3 with websockets
# (python3-websockets; PY=/usr/bin/python3 by default, as the ingest check uses).
#
#   scripts/ingest-profile.sh OUT            NODES=1250 VIEWERS=10 by default
#   go tool pprof -top BIN OUT/cpu.prof      BIN: OUT/fleettop
#   go tool pprof -sample_index=alloc_space -base OUT/heap0.prof -top BIN OUT/heap.prof
#                                            what was allocated during the CPU profile
set -euo pipefail
out=${1:?usage: scripts/ingest-profile.sh OUTDIR}
cd "$(dirname "$0")/.."
. scripts/ingest-scenario.sh
mkdir -p "$out"
go build -tags pprof -o "$out/fleettop" ./cmd/fleettop
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}'; }
syscalls() { awk '/syscr|syscw/{printf "%s ", $2}' "/proc/$1/io"; }
pp=$(free_port)
start_scenario "$out/fleettop" "$out" FLEETTOP_PPROF=127.0.0.1:$pp
get >/dev/null; sleep 2
s0=$(get | metric fleettop_ingest_gpu_samples_total); u0=$(date +%s.%N)
io0=$(syscalls $ap); cs0=$(switches $ap); c0=$(cpu_s $ap); mc0=$(cpu_s $mp); t0=$(date +%s.%N)
curl -fsS -o "$out/heap0.prof" "http://127.0.0.1:$pp/debug/pprof/heap"
curl -fsS -o "$out/cpu.prof" "http://127.0.0.1:$pp/debug/pprof/profile?seconds=${PROF_S:-20}"
c1=$(cpu_s $ap); mc1=$(cpu_s $mp); t1=$(date +%s.%N); io1=$(syscalls $ap); cs1=$(switches $ap)
m1=$(get); u1=$(date +%s.%N); rss=$(rss_kib $ap)
s1=$(metric fleettop_ingest_gpu_samples_total <<<"$m1"); viewers=$(metric fleettop_viewers_connected <<<"$m1")
curl -fsS -o "$out/heap.prof" "http://127.0.0.1:$pp/debug/pprof/heap"
# where the RSS is: mappings (Go arenas, SQLite's 1 MiB slabs, the binary) and the runtime's MemStats
cp "/proc/$ap/smaps" "$out/smaps.txt"; cp "/proc/$ap/smaps_rollup" "$out/smaps_rollup.txt"
curl -fsS -o "$out/memstats.txt" "http://127.0.0.1:$pp/debug/pprof/heap?debug=1"
"$PY" - <<PY | tee "$out/figures.txt"
rate = ($s1 - $s0) / ($u1 - $u0); w = $t1 - $t0
r0, w0 = map(int, "$io0".split()); r1, w1 = map(int, "$io1".split())
print(f"aggregator: {($c1 - $c0) / w:.3f} cores, {($c1 - $c0) * 1e6 / max(rate * w, 1):.2f} us per GPU-sample at {rate:.0f} GPU-samples/s")
print(f"aggregator RSS beyond its idle baseline: {($rss - $base) / max(rate, 1):.1f} KiB per GPU-sample/s ({($rss - $base) / 1024:.0f} MiB)")
print(f"aggregator syscalls: {(r1 - r0) / w:.0f} reads/s, {(w1 - w0) / w:.0f} writes/s; context switches {($cs1 - $cs0) / w:.0f}/s")
print(f"mock: {($mc1 - $mc0) / w:.3f} cores; viewers connected at the end: $viewers of ${VIEWERS:-10}")
PY
