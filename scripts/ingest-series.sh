#!/usr/bin/env bash
# ingest-series.sh: the ingest check's scenario by hand, with the aggregator's
# exact CPU time each second (the sum of /proc/PID/task/*/schedstat, ns) over
# SECS (90) seconds, and its mean in µs per GPU-sample: with and without the
# seconds of the minute's fold (the top 1/30), the median and the top four
# seconds; "stat" is the same window from /proc/PID/stat (10 ms ticks), as
# the check reads it, and the RSS beyond the idle baseline at the end, per
# GPU-sample/s (the check's KiB/GPU). Extra VAR=VALUE arguments go to the aggregator's
# environment (e.g. GOMAXPROCS=1). Needs python3 with websockets.
#
#   scripts/ingest-series.sh BIN [VAR=VALUE ...]      per-second values in $LOGDIR/vals
set -euo pipefail
bin=${1:?usage: scripts/ingest-series.sh BIN [VAR=VALUE ...]}; shift
cd "$(dirname "$0")/.."
. scripts/ingest-scenario.sh
logs=${LOGDIR:-$(mktemp -d)}
start_scenario "$bin" "$logs" "$@"
ns() { cat /proc/"$ap"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END{printf "%.0f\n", s}'; }
s0=$(get | metric fleettop_ingest_gpu_samples_total); v0=$(date +%s.%N)
prev=$(ns); : >"$logs/vals"; st0=$(cpu_s "$ap")
for _ in $(seq "${SECS:-90}"); do sleep 1; cur=$(ns); echo $(( (cur - prev) / 1000 )) >>"$logs/vals"; prev=$cur; done
st1=$(cpu_s "$ap"); rss=$(rss_kib "$ap"); s1=$(get | metric fleettop_ingest_gpu_samples_total); v1=$(date +%s.%N)
"$PY" - "$logs/vals" <<PY
import sys
v = sorted(int(x) for x in open(sys.argv[1]))
rate = ($s1 - $s0) / ($v1 - $v0); n = len(v); body = v[:n - n // 30 - 1]
print(f"{rate:.0f} GPU-samples/s; stat {($st1 - $st0) * 1e3 / n:.1f} ms/s; schedstat mean {sum(v) / n / 1e3:.1f} ms/s "
      f"({sum(v) / n / rate:.2f} us per GPU-sample), without the top {n - len(body)} s {sum(body) / len(body) / 1e3:.1f} ms/s "
      f"({sum(body) / len(body) / rate:.2f} us), median {v[n // 2] / 1e3:.1f}, top {[round(x / 1e3) for x in v[-4:]]}; "
      f"RSS beyond the idle baseline {($rss - $base) / rate:.1f} KiB per GPU-sample/s")
PY
