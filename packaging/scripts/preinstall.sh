#!/bin/sh
# Create the fleettop system user and group once; never touch an existing one.
set -e
if ! getent group fleettop >/dev/null 2>&1; then
  groupadd --system fleettop 2>/dev/null || addgroup --system fleettop
fi
if ! getent passwd fleettop >/dev/null 2>&1; then
  useradd --system --gid fleettop --home-dir /var/lib/fleettop --no-create-home \
    --shell /usr/sbin/nologin --comment "fleettop service" fleettop 2>/dev/null ||
  adduser --system --ingroup fleettop --home /var/lib/fleettop --no-create-home \
    --shell /usr/sbin/nologin fleettop
fi
exit 0
