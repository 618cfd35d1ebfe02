#!/usr/bin/env bash
# Install promtool (Debian's prometheus package) so the alerting rules are linted and unit-tested by `make test`.
set -euo pipefail
command -v promtool >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool is missing and cannot be installed here (needs root and apt-get): the rules test will say so" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
# The package starts a Prometheus server where an init system runs; the tests need only the promtool binary.
(systemctl stop prometheus || service prometheus stop) >/dev/null 2>&1 || true
command -v promtool >/dev/null
