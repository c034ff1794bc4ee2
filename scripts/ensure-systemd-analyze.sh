#!/usr/bin/env bash
# Makes sure `systemd-analyze` is installed: tests/docs.rs checks the
# systemd unit in docs/ with `systemd-analyze verify`. Quiet when it is
# already there. Installs the Debian/Ubuntu 'systemd' package with apt-get
# (through sudo when not root); it never starts or enables any service.
set -euo pipefail

if command -v systemd-analyze >/dev/null 2>&1; then
    exit 0
fi

echo "systemd-analyze not found: installing the 'systemd' package with apt-get (the docs test verifies the systemd unit with it)" >&2

bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" systemd -- "Install systemd (for systemd-analyze) with your package manager."

command -v systemd-analyze >/dev/null 2>&1 || {
    echo "error: 'systemd' was installed but systemd-analyze is still not on PATH" >&2
    exit 1
}
echo "systemd-analyze installed." >&2
