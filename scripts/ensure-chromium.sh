#!/usr/bin/env bash
# Install Debian's headless Chromium and its WebDriver for the console's browser tests, unless present.
# Idempotent: does nothing when both are installed. No browser is downloaded by pip or by the tests.
set -eu
have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
if have; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "ERROR: chromium and chromium-driver are missing and this user cannot install them (apt-get needs root)" >&2
    exit 1
  fi
else
  SUDO=""
fi
echo "installing chromium and chromium-driver (Debian packages) for the browser tests" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
have || { echo "ERROR: chromium or chromedriver still missing after apt-get install" >&2; exit 1; }
