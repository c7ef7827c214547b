#!/bin/sh
# Own the state directory and config, and tell systemd about new or changed
# units. Nothing is enabled or started: the administrator decides which of the
# two services this host runs. Units that are already running are restarted on
# upgrade so the new binary takes over.
set -e
chown fleettop:fleettop /var/lib/fleettop 2>/dev/null || true
chmod 0750 /var/lib/fleettop 2>/dev/null || true
chgrp fleettop /etc/fleettop /etc/fleettop/* 2>/dev/null || true
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  for u in fleettop-collector.service fleettop-aggregator.service; do
    if systemctl is-active --quiet "$u"; then
      systemctl try-restart "$u" >/dev/null 2>&1 || true
    fi
  done
fi
exit 0
