#!/usr/bin/env bash
# ingest-long.sh: the ingest check's scenario (1,250 `fleettop mock` nodes at
# 1 Hz, 10 python viewers on /v1/watch) with a long window: after 27 s it
# measures the aggregator for WINDOW seconds (120 by default) and prints its
# mean CPU per GPU-sample, its RSS beyond the idle baseline per GPU, and its
# CPU in each 10 s (centiseconds), where the store's minute fold shows as a
# spike. The check's 20 s window reads ±20 % for one binary on a shared VM,
# depending on whether a fold falls inside it; compare binaries with
# alternating runs of this.
#
#   scripts/ingest-long.sh BIN [WINDOW]      BIN: a built fleettop
set -euo pipefail
bin=$(realpath "${1:?usage: scripts/ingest-long.sh BIN [WINDOW_S]}"); W=${2:-120}
cd "$(dirname "$0")/.."
. scripts/ingest-scenario.sh
cpu_cs() { awk '{print $14+$15}' "/proc/$1/stat"; }
start_scenario "$bin" "$d"
s0=$(get | metric fleettop_ingest_gpu_samples_total); u0=$(date +%s.%N); sleep 2
c0=$(cpu_cs $ap); t0=$(date +%s.%N); parts=""
for _ in $(seq $((W / 10))); do a=$(cpu_cs $ap); sleep 10; parts="$parts $(( $(cpu_cs $ap) - a ))"; done
c1=$(cpu_cs $ap); t1=$(date +%s.%N); rss=$(rss_kib $ap)
s1=$(get | metric fleettop_ingest_gpu_samples_total); u1=$(date +%s.%N)
"$PY" -c "
rate = ($s1 - $s0) / ($u1 - $u0)
print('%.2f us CPU/GPU-sample, %d GPU-samples/s, %.1f KiB/GPU RSS beyond baseline; CPU per 10 s (cs):%s'
      % (($c1 - $c0) * 1e4 / (rate * ($t1 - $t0)), rate, ($rss - $base) / rate, '$parts'))"
