# ingest-scenario.sh: sourced by ingest-profile.sh and ingest-long.sh. The
# ingest check's scenario: an aggregator, NODES (1,250) `fleettop mock`
# nodes at 1 Hz and VIEWERS (10) python viewers on /v1/watch.
#
#   start_scenario BIN LOGDIR [VAR=VALUE ...]   the assignments go to the aggregator's environment
#
# sets port, vsecret, ap (aggregator pid), mp (mock pid) and base (the
# aggregator's idle RSS, KiB) and returns 25 s after the mock started; get
# reads /metrics. Needs a python3 with websockets (PY=/usr/bin/python3).
PY=${PY:-/usr/bin/python3}
"$PY" -c 'import websockets' || { echo "$PY has no websockets module: apt-get install python3-websockets, or set PY" >&2; exit 1; }
d=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$d"' EXIT
free_port() { "$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
cpu_s() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
metric() { awk -v n="$1" '$1==n {s+=$NF} END{printf "%.0f\n", s+0}'; }
get() { curl -fsS -H "Authorization: Bearer $vsecret" "http://127.0.0.1:$port/metrics"; }

start_scenario() {
  local bin=$1 logs=$2; shift 2
  vsecret=viewer-$RANDOM$RANDOM; local csecret=collector-$RANDOM$RANDOM
  printf 'collector fleet %s *\nviewer ops %s\n' "$csecret" "$vsecret" >"$d/tokens"
  printf '%s\n' "$csecret" >"$d/tokens.collector"
  chmod 600 "$d/tokens" "$d/tokens.collector"
  port=$(free_port)
  env "$@" "$bin" aggregator --listen 127.0.0.1:$port --data-dir "$d/agg" --tokens "$d/tokens" >"$logs/aggregator.log" 2>&1 & ap=$!; pids+=($ap)
  for _ in $(seq 150); do curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.2; done
  sleep 2; base=$(rss_kib $ap)
  "$bin" mock --aggregator ws://127.0.0.1:$port --nodes "${NODES:-1250}" --token-file "$d/tokens.collector" --interval 1s >"$logs/mock.log" 2>&1 & mp=$!; pids+=($mp)
  "$PY" - "$port" "$vsecret" "${VIEWERS:-10}" >"$logs/viewers.log" 2>&1 <<'PYV' & pids+=($!)
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
}
