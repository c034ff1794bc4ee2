#!/usr/bin/env bash
# Makes sure the PostgreSQL *server binaries* (initdb, pg_ctl, postgres) are
# installed: shopstream starts its own private server from them when no
# --database-url / DATABASE_URL is given. Also psql (the test suite checks
# that the embedded server's URL works with libpq's own client). Quiet when
# they are already there.
#
# It installs the Debian/Ubuntu 'postgresql' package (and
# 'postgresql-client' for psql) with apt-get (through sudo when not root). It never starts, stops or configures the system's
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

ensure_psql() {
    command -v psql >/dev/null 2>&1 && return 0
    echo "psql not found: installing the 'postgresql-client' package with apt-get" >&2
    bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" postgresql-client -- \
        "Install psql (the PostgreSQL client) with your package manager; without it one" \
        "test case is skipped (and fails under CI)."
}

if have_server_binaries; then
    ensure_psql
    exit 0
fi

echo "PostgreSQL server binaries not found: installing the 'postgresql' package with apt-get" >&2

bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" postgresql -- \
    "Install the PostgreSQL server binaries (initdb, pg_ctl, postgres) with your package" \
    "manager and make sure initdb is on PATH, or use an existing server with" \
    "--database-url postgres://user:pass@host/db (or DATABASE_URL)."

if ! have_server_binaries; then
    echo "error: 'postgresql' was installed but initdb is still not found on PATH or in /usr/lib/postgresql/*/bin" >&2
    exit 1
fi
echo "PostgreSQL server binaries installed." >&2
ensure_psql
