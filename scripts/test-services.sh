#!/usr/bin/env bash
# Make sure the services the test suite starts for itself are installed.
#
# The tests start their own throwaway servers (see tests/support/); this script only installs
# the binaries. It is idempotent and returns at once when everything is already there.
# As root (CI: a fresh Debian 12 machine) it installs missing packages with apt-get; otherwise
# it says what to install and fails.
set -euo pipefail

# Developers without PostgreSQL run only the SQLite cases (see tests/conftest.py).
if [[ -n "${CRYOWEAVE_TEST_DATABASES:-}" && ",${CRYOWEAVE_TEST_DATABASES// /}," != *,postgresql,* ]]; then
    exit 0
fi

have_initdb() {
    local bin
    for bin in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x "$bin" ]] && return 0
    done
    command -v initdb >/dev/null 2>&1
}

if ! have_initdb; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test-services: installing PostgreSQL (Debian package 'postgresql') for the database tests"
        apt-get update -qq
        # The package may create (and try to start) its default cluster; the tests never use
        # it, they start their own server on a free port.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        have_initdb || { echo "test-services: PostgreSQL installed but no initdb found" >&2; exit 1; }
    else
        cat >&2 <<'MSG'
test-services: PostgreSQL is not installed, and the database tests need its server binaries
(initdb, pg_ctl). Install them, for example:
    sudo apt-get install postgresql        # Debian/Ubuntu
    brew install postgresql@15             # macOS
or run only the SQLite cases: CRYOWEAVE_TEST_DATABASES=sqlite make test
MSG
        exit 1
    fi
fi
