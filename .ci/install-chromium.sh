#!/usr/bin/env bash
# Debian's chromium for tests/test_html_report.py (opens `snakemake --report` output headless).
# Idempotent: does nothing when a chromium binary is already on PATH.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium already installed: $(command -v chromium || command -v chromium-browser)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium
# chromium's wrapper script prints a harmless shell warning on some hosts; print the version only.
chromium --version 2>/dev/null | head -1
