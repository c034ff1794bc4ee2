#!/usr/bin/env bash
# Makes sure the `openssl` command-line tool is installed: the TLS tests
# generate a throw-away CA and certificates with it. Quiet when it is
# already there. Installs the Debian/Ubuntu 'openssl' package with apt-get
# (through sudo when not root).
set -euo pipefail

if command -v openssl >/dev/null 2>&1; then
    exit 0
fi

echo "openssl not found: installing the 'openssl' package with apt-get (the TLS tests need it)" >&2

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get is not available; install openssl with your package manager" >&2
    exit 1
fi

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "error: installing openssl needs root or sudo; ask an administrator to run: apt-get install openssl" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
${as_root[@]+"${as_root[@]}"} apt-get update -q
${as_root[@]+"${as_root[@]}"} apt-get install -y -q openssl

command -v openssl >/dev/null 2>&1 || {
    echo "error: 'openssl' was installed but is still not on PATH" >&2
    exit 1
}
echo "openssl installed." >&2
