#!/usr/bin/env bash
# Makes sure the PostgreSQL *server binaries* (initdb, pg_ctl, postgres) are
# installed: shopstream starts its own private server from them when no
# --database-url / DATABASE_URL is given. Quiet when they are already there.
#
# It installs the Debian/Ubuntu 'postgresql' package with apt-get (through
# sudo when not root). It never starts, stops or configures the system's
# PostgreSQL service: shopstream runs its own server.
set -euo pipefail

have_server_binaries() {
    if command -v initdb >/dev/null 2>&1; then
        return 0
    fi
    local f
    for f in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x "$f" ]] && return 0
    done
    return 1
}

if have_server_binaries; then
    exit 0
fi

echo "PostgreSQL server binaries not found: installing the 'postgresql' package with apt-get" >&2

if ! command -v apt-get >/dev/null 2>&1; then
    cat >&2 <<'MSG'
error: apt-get is not available on this machine.
  Install the PostgreSQL server binaries (initdb, pg_ctl, postgres) with your
  package manager (e.g. 'dnf install postgresql-server', 'brew install postgresql')
  and make sure initdb is on PATH, or use an existing server with
  --database-url postgres://user:pass@host/db (or DATABASE_URL).
MSG
    exit 1
fi

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    cat >&2 <<'MSG'
error: installing packages needs root, and you are neither root nor have sudo.
  Ask an administrator to run: apt-get install postgresql
  or use an existing server with --database-url postgres://user:pass@host/db
  (or DATABASE_URL).
MSG
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
${as_root[@]+"${as_root[@]}"} apt-get update -q
${as_root[@]+"${as_root[@]}"} apt-get install -y -q postgresql

if ! have_server_binaries; then
    echo "error: 'postgresql' was installed but initdb is still not found on PATH or in /usr/lib/postgresql/*/bin" >&2
    exit 1
fi
echo "PostgreSQL server binaries installed." >&2
