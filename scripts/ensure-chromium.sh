#!/usr/bin/env bash
# Makes sure a headless Chromium is installed for the dashboard's browser
# test (tests/dashboard.rs). Quiet when it is already there; otherwise
# installs Debian's 'chromium' package with apt-get (through sudo when not
# root). shopstream itself never needs a browser.
set -euo pipefail

for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then
        exit 0
    fi
done

echo "Chromium not found: installing Debian's 'chromium' package for the dashboard test" >&2
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get is not available; install Chromium and set CHROMIUM=/path/to/chromium" >&2
    exit 1
fi
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
    sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q chromium
