#!/usr/bin/env bash
# Install Dovecot (Debian's dovecot-imapd) and openssl so the mailbox tests run against a real IMAP server.
# The tests start their own instance on free loopback ports, from a config of their own; the system service is not used.
set -euo pipefail
have() { [ -x /usr/sbin/dovecot ] && command -v openssl >/dev/null 2>&1; }
have && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "dovecot is missing and cannot be installed here (needs root and apt-get): the mailbox tests will say so" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends dovecot-imapd openssl >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends dovecot-imapd openssl >/dev/null; }
# The package starts the system Dovecot where an init system runs; the tests need only the binary.
(systemctl stop dovecot || service dovecot stop) >/dev/null 2>&1 || true
have
