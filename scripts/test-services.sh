#!/usr/bin/env bash
# Make sure the services the test suite starts for itself are installed.
#
# The tests start their own throwaway servers (see tests/support/); this script only installs
# the binaries. It is idempotent and returns at once when everything is already there.
# As root (CI: a fresh Debian 12 machine) it installs missing packages with apt-get; otherwise
# it says what to install and fails.
#
#   PostgreSQL  skipped when CRYOWEAVE_TEST_DATABASES leaves out postgresql (SQLite cases only)
#   SLURM       skipped when CRYOWEAVE_TEST_SLURM=0 (the SLURM tests are skipped then)
#   Chromium    skipped when CRYOWEAVE_TEST_BROWSER=0 (the browser tests are skipped then)
set -euo pipefail

can_apt_get() {
    [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1
}

apt_updated=0
apt_install() {
    if [[ "$apt_updated" -eq 0 ]]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# -- PostgreSQL -------------------------------------------------------------------------------

# Developers without PostgreSQL run only the SQLite cases (see tests/conftest.py).
want_postgres() {
    [[ -z "${CRYOWEAVE_TEST_DATABASES:-}" || ",${CRYOWEAVE_TEST_DATABASES// /}," == *,postgresql,* ]]
}

have_initdb() {
    local bin
    for bin in /usr/lib/postgresql/*/bin/initdb; do
        [[ -x "$bin" ]] && return 0
    done
    command -v initdb >/dev/null 2>&1
}

if want_postgres && ! have_initdb; then
    if can_apt_get; then
        echo "test-services: installing PostgreSQL (Debian package 'postgresql') for the database tests"
        # The package may create (and try to start) its default cluster; the tests never use
        # it, they start their own server on a free port.
        apt_install postgresql
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

# -- SLURM ------------------------------------------------------------------------------------

# The SLURM tests start their own one-node cluster (tests/support/slurm.py); they need the
# daemons (slurmctld, slurmd) and the client commands (sbatch, squeue, ...).
have_slurm() {
    command -v slurmctld >/dev/null 2>&1 || [[ -x /usr/sbin/slurmctld ]]
}

if [[ "${CRYOWEAVE_TEST_SLURM:-1}" != "0" ]] && ! have_slurm; then
    if can_apt_get; then
        echo "test-services: installing SLURM (Debian package 'slurm-wlm') for the cluster tests"
        # The package may try to start its own daemons (they fail without a configuration);
        # the tests never use them, they start their own cluster on free ports.
        apt_install slurm-wlm
        have_slurm || { echo "test-services: slurm-wlm installed but no slurmctld found" >&2; exit 1; }
    else
        cat >&2 <<'MSG'
test-services: SLURM is not installed, and the cluster tests need its daemons (slurmctld,
slurmd) and client commands (sbatch, squeue). Install them, for example:
    sudo apt-get install slurm-wlm         # Debian/Ubuntu
or skip the SLURM tests: CRYOWEAVE_TEST_SLURM=0 make test
MSG
        exit 1
    fi
fi

# -- Chromium ---------------------------------------------------------------------------------

# The browser tests (tests/test_web_browser.py) drive the web interface with Playwright's Python
# package and the system's Chromium (Playwright's own browser download is not used; see
# tests/support/browser.py). fonts-dejavu-core gives the headless browser fonts for screenshots.
have_chromium() {
    [[ -x "${CRYOWEAVE_CHROMIUM:-/usr/bin/chromium}" ]]
}

if [[ "${CRYOWEAVE_TEST_BROWSER:-1}" != "0" ]] && ! have_chromium; then
    if can_apt_get; then
        echo "test-services: installing Chromium (Debian packages 'chromium', 'fonts-dejavu-core') for the browser tests"
        apt_install chromium fonts-dejavu-core
        have_chromium || { echo "test-services: chromium installed but ${CRYOWEAVE_CHROMIUM:-/usr/bin/chromium} not found" >&2; exit 1; }
    else
        cat >&2 <<'MSG'
test-services: Chromium is not installed, and the browser tests need it (driven by the Python
package playwright, with the system's browser). Install it, for example:
    sudo apt-get install chromium fonts-dejavu-core        # Debian
then set CRYOWEAVE_CHROMIUM=/path/to/chromium when it is not /usr/bin/chromium (Ubuntu's
snap: /snap/bin/chromium; macOS: the Chromium or Google Chrome app's binary),
or skip the browser tests: CRYOWEAVE_TEST_BROWSER=0 make test
MSG
        exit 1
    fi
fi
