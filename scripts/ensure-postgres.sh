#!/usr/bin/env bash
# Start the local PostgreSQL cluster if it is down; fail loudly in CI if it stays unreachable.
set -u
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! ready && command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is down; starting it" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
if ready; then exit 0; fi
if [ -n "${CI:-}" ] || [ -n "${ALERTBRIDGE_REQUIRE_POSTGRES:-}" ]; then
  echo "ERROR: PostgreSQL at 127.0.0.1:5432 is unreachable; the scale-out tests need it" >&2
  exit 1
fi
echo "WARNING: PostgreSQL is unreachable; the scale-out tests will be skipped" >&2
