#!/usr/bin/env bash
# Replay issue 11's hostile and misconfigured cases against the real binary:
# PASS or FAIL per case (see docs/SECURITY.md). Usage: scripts/redteam.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/fleettop
CGO_ENABLED=0 go build -o "$bin" ./cmd/fleettop
go run ./tools/redteam --bin "$bin" "$@"
