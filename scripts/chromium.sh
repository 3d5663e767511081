#!/usr/bin/env bash
# Install Debian's chromium for the console's browser tests if it is missing; print its path.
# Idempotent. Playwright drives this system browser (never `playwright install`).
set -euo pipefail

find_chromium() { command -v chromium || command -v chromium-browser || true; }

if [ -z "$(find_chromium)" ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
find_chromium
