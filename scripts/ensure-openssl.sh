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

bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" openssl -- "Install openssl with your package manager."

command -v openssl >/dev/null 2>&1 || {
    echo "error: 'openssl' was installed but is still not on PATH" >&2
    exit 1
}
echo "openssl installed." >&2
