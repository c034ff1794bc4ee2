#!/usr/bin/env bash
# Makes sure moto's S3-compatible server (PyPI 'moto[server]') is installed
# for the object storage tests (tests/store.rs), which start one on a free
# local port. Quiet when it is already there; otherwise installs it with pip
# for python3 (installing python3 and pip with apt-get first if missing).
# shopstream itself never needs Python or moto.
#
# The tests use `python3` from PATH, or SHOPSTREAM_TEST_PYTHON when set.
set -euo pipefail

python="${SHOPSTREAM_TEST_PYTHON:-python3}"

has_moto() {
    "$python" -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1
}

if has_moto; then
    exit 0
fi

apt_install() {
    bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" "$@" -- \
        "Install Python 3 with pip, then: $python -m pip install 'moto[server]'"
}

if ! command -v "$python" >/dev/null 2>&1; then
    echo "$python not found: installing Debian's python3 and python3-pip for the object storage tests" >&2
    apt_install python3 python3-pip
fi
if ! "$python" -m pip --version >/dev/null 2>&1; then
    echo "pip not found for $python: installing Debian's python3-pip" >&2
    apt_install python3-pip
fi

echo "moto's S3 server not found: installing 'moto[server]' with pip for the object storage tests" >&2
# Debian's system Python refuses plain pip installs (PEP 668); a test-only
# tool may go there anyway.
if ! "$python" -m pip install --quiet 'moto[server]'; then
    "$python" -m pip install --quiet --break-system-packages 'moto[server]'
fi

if ! has_moto; then
    echo "error: 'moto[server]' was installed but '$python -c \"import moto.server\"' still fails" >&2
    exit 1
fi
echo "moto installed." >&2
