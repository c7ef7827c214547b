#!/usr/bin/env bash
# scrape-rss.sh: what reading /metrics leaves in the aggregator's memory, in
# the ingest check's scenario (scripts/ingest-scenario.sh). After the warm-up
# it takes a heap profile, reads /metrics as the check does (twice, 2 s
# apart, then once more 20 s later) and prints the aggregator's RSS beyond
# its idle baseline before and after the reads and its live heap after a GC;
# OUT/h0.prof and OUT/h1.prof are the heap profiles before and after.
# BIN must be a `-tags pprof` build (FLEETTOP_PPROF).
#
#   go build -tags pprof -o /tmp/ft ./cmd/fleettop && scripts/scrape-rss.sh /tmp/ft OUT
#   go tool pprof -sample_index=inuse_space -base OUT/h0.prof -top /tmp/ft OUT/h1.prof
set -euo pipefail
bin=$(realpath "${1:?usage: scripts/scrape-rss.sh BIN OUT}")
out=$(mkdir -p "${2:?usage: scripts/scrape-rss.sh BIN OUT}" && realpath "$2")
cd "$(dirname "$0")/.."
. scripts/ingest-scenario.sh
pp=$(free_port)
start_scenario "$bin" "$out" FLEETTOP_PPROF=127.0.0.1:$pp ${MEMPROFILERATE:+GODEBUG=memprofilerate=$MEMPROFILERATE}
curl -fsS -o "$out/h0.prof" "http://127.0.0.1:$pp/debug/pprof/heap?gc=1"
r0=$(rss_kib $ap)
get >/dev/null; sleep 2; get >/dev/null; sleep 20; get >/dev/null
r1=$(rss_kib $ap)
curl -fsS -o "$out/h1.prof" "http://127.0.0.1:$pp/debug/pprof/heap?gc=1"
live=$(curl -fsS "http://127.0.0.1:$pp/debug/pprof/heap?debug=1" | awk '/^# HeapAlloc = /{print $4}')
echo "RSS beyond baseline: $((r0 - base)) KiB before the reads, $((r1 - base)) KiB after; live heap after a GC $((live / 1024)) KiB"
