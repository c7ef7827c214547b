#!/bin/sh
# On removal (not on upgrade), stop and disable what is running.
set -e
case "$1" in
  remove|0|purge)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now fleettop-collector.service fleettop-aggregator.service >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
