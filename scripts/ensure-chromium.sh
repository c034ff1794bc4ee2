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
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" chromium -- \
    "Install Chromium and set CHROMIUM=/path/to/chromium."
