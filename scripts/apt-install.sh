#!/usr/bin/env bash
# Installs Debian/Ubuntu packages with apt-get, through sudo when not root.
# The ensure-*.sh scripts call it once they know something is missing.
#
#   scripts/apt-install.sh PACKAGE... [-- OTHERWISE]
#
# OTHERWISE is what to tell the user to do instead when apt-get or root
# rights are missing (printed after the error line).
set -euo pipefail

packages=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
    packages+=("$1")
    shift
done
[[ $# -gt 0 ]] && shift
otherwise="${*:-}"

fail() {
    echo "error: $1" >&2
    [[ -n "$otherwise" ]] && echo "  $otherwise" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available on this machine to install: ${packages[*]}"
if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    fail "installing ${packages[*]} needs root, and you are neither root nor have sudo (ask an administrator to run: apt-get install ${packages[*]})"
fi

export DEBIAN_FRONTEND=noninteractive
${as_root[@]+"${as_root[@]}"} apt-get update -q
${as_root[@]+"${as_root[@]}"} apt-get install -y -q "${packages[@]}"
