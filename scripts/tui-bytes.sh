#!/usr/bin/env bash
# tui-bytes.sh — how many bytes per second the TUI writes to its terminal in
# steady state, measured the way an SSH link would carry them: the program runs
# in a tmux pane of COLSxROWS and tmux's pipe-pane captures everything it
# writes for SECONDS seconds, after a WARMUP.
#
#   scripts/tui-bytes.sh                      # fleettop demo, Fleet view, 200x50, 20 s
#   COLS=120 ROWS=40 SECONDS_=60 scripts/tui-bytes.sh
#   CMD="fleettop tui --aggregator https://agg:8443" scripts/tui-bytes.sh
#   KEYS=2 scripts/tui-bytes.sh                # measure another view (keys sent before measuring)
#
# Prints one line: "<bytes> bytes in <s> s = <B/s> B/s (<cols>x<rows>)".
set -euo pipefail
cd "$(dirname "$0")/.."
COLS=${COLS:-200} ROWS=${ROWS:-50} SECS=${SECONDS_:-20} WARMUP=${WARMUP:-8} KEYS=${KEYS:-}
command -v tmux >/dev/null || { echo "tui-bytes: tmux is not installed" >&2; exit 2; }
d=$(mktemp -d)
trap 'tmux -S "$d/tmux" kill-server 2>/dev/null || true; rm -rf "$d"' EXIT
if [ -z "${CMD:-}" ]; then
  go build -o "$d/fleettop" ./cmd/fleettop
  CMD="$d/fleettop demo --data-dir $d/demo"
fi
tm() { tmux -S "$d/tmux" "$@"; }
tm new-session -d -x "$COLS" -y "$ROWS" -s bytes "$CMD"
sleep "$WARMUP"
if [ -n "$KEYS" ]; then tm send-keys -t bytes "$KEYS"; sleep 2; fi
: >"$d/out"
tm pipe-pane -t bytes -o "cat >> $d/out"
sleep "$SECS"
tm pipe-pane -t bytes
sleep 0.2
b=$(stat -c %s "$d/out")
echo "$b bytes in $SECS s = $((b / SECS)) B/s (${COLS}x${ROWS})"
