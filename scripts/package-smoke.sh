#!/usr/bin/env bash
# Builds the release snapshot and proves the deb installs and runs in a fresh
# Debian root. Needs: goreleaser v2 (go install github.com/goreleaser/goreleaser/v2@v2.15.1),
# gcc-aarch64-linux-gnu (arm64 cgo build), debootstrap, root (for chroot).
#   scripts/package-smoke.sh [ROOT]   ROOT: an existing debootstrap'd directory to reuse
set -euo pipefail
cd "$(dirname "$0")/.."
gr=$(command -v goreleaser || echo "$(go env GOPATH)/bin/goreleaser")
"$gr" check
"$gr" release --snapshot --clean
deb=$(ls dist/fleettop_*_amd64.deb)
echo "== contents of $deb"
dpkg-deb -c "$deb"
for want in ./usr/bin/fleettop ./usr/lib/systemd/system/fleettop-collector.service \
  ./usr/lib/systemd/system/fleettop-aggregator.service ./etc/fleettop/collector.yaml ./etc/fleettop/aggregator.yaml; do
  dpkg-deb -c "$deb" | grep -q " $want\$" || { echo "missing $want in $deb"; exit 1; }
done
root=${1:-}
if [ -z "$root" ]; then
  root=$(mktemp -d)/debian
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
fi
cp "$deb" "$root/tmp/fleettop.deb"
chroot "$root" /bin/sh -c 'dpkg -i /tmp/fleettop.deb && fleettop version && id fleettop'
echo "package-smoke: ok"
