#!/bin/sh
# Reload systemd after the units are gone. The state directory (/var/lib/fleettop:
# spool, database, ledger) and the user are kept: they may hold unsent samples
# and the cost history. Remove them by hand (docs/INSTALL.md).
set -e
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
