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
PY=${PY:-/usr/bin/python3}
"$PY" -c 'import websockets' || { echo "$PY has no websockets module: apt-get install python3-websockets, or set PY" >&2; exit 1; }
d=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$d"' EXIT
free_port() { "$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cpu_cs() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
metric() { awk -v n="$1" '$1==n {s+=$NF} END{printf "%.0f\n", s+0}'; }
vsecret=viewer-$RANDOM$RANDOM; csecret=collector-$RANDOM$RANDOM
printf 'collector fleet %s *\nviewer ops %s\n' "$csecret" "$vsecret" >"$d/tokens"
printf '%s\n' "$csecret" >"$d/tokens.collector"
chmod 600 "$d/tokens" "$d/tokens.collector"
port=$(free_port)
"$bin" aggregator --listen 127.0.0.1:$port --data-dir "$d/agg" --tokens "$d/tokens" >"$d/alog" 2>&1 & ap=$!; pids+=($ap)
for _ in $(seq 150); do curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.2; done
sleep 2; base=$(rss_kib $ap)
"$bin" mock --aggregator ws://127.0.0.1:$port --nodes 1250 --token-file "$d/tokens.collector" --interval 1s >"$d/mlog" 2>&1 & pids+=($!)
"$PY" - "$port" "$vsecret" 10 >"$d/vlog" 2>&1 <<'PYV' & pids+=($!)
import asyncio, sys, websockets
port, tok, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
async def view():
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/watch", extra_headers={"Authorization": "Bearer " + tok}, max_size=None) as ws:
        async for _ in ws: pass
async def main():
    await asyncio.wait([asyncio.create_task(view()) for _ in range(n)], timeout=3600)
asyncio.run(main())
PYV
sleep 25
get() { curl -fsS -H "Authorization: Bearer $vsecret" "http://127.0.0.1:$port/metrics"; }
s0=$(get | metric fleettop_ingest_gpu_samples_total); u0=$(date +%s.%N); sleep 2
c0=$(cpu_cs $ap); t0=$(date +%s.%N); parts=""
for _ in $(seq $((W / 10))); do a=$(cpu_cs $ap); sleep 10; parts="$parts $(( $(cpu_cs $ap) - a ))"; done
c1=$(cpu_cs $ap); t1=$(date +%s.%N); rss=$(rss_kib $ap)
s1=$(get | metric fleettop_ingest_gpu_samples_total); u1=$(date +%s.%N)
"$PY" -c "
rate = ($s1 - $s0) / ($u1 - $u0)
print('%.2f us CPU/GPU-sample, %d GPU-samples/s, %.1f KiB/GPU RSS beyond baseline; CPU per 10 s (cs):%s'
      % (($c1 - $c0) * 1e4 / (rate * ($t1 - $t0)), rate, ($rss - $base) / rate, '$parts'))"
