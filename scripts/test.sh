#!/usr/bin/env bash
# The project's one test command: ./scripts/test.sh [extra test-runner arguments]
#
# With DATABASE_URL unset it starts a throwaway PostgreSQL cluster (TLS on, loopback
# only, a free port), points the tests at it and removes it afterwards, whatever happens.
# With DATABASE_URL set it uses that database as is.
# Then it runs every test of the workspace with cargo-nextest (or cargo test).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# shellcheck source=lib/pg.sh
. scripts/lib/pg.sh

# Installs Debian packages when we are allowed to; a newcomer without root gets told what
# to install rather than a sudo password prompt in the middle of a test run.
apt_install() {
    local sudo=()
    if ! is_root; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            die "please install: $* (or set DATABASE_URL to an existing PostgreSQL server)"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || die "no apt-get here; please install: $*"
    log "installing $* with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pg
    if [ -n "$PG_TMP" ] && [ -d "$PG_TMP" ]; then
        rm -rf -- "$PG_TMP"
    fi
    exit "$rc"
}

start_postgres() {
    PG_BIN="$(find_pg_bindir)" || {
        apt_install postgresql
        PG_BIN="$(find_pg_bindir)" || die "PostgreSQL server binaries not found after installing"
    }
    command -v openssl >/dev/null 2>&1 || apt_install openssl
    if is_root; then
        command -v runuser >/dev/null 2>&1 || die "runuser (util-linux) is needed to run PostgreSQL as root"
        id -u postgres >/dev/null 2>&1 ||
            die "there is no 'postgres' user to run PostgreSQL as (install the postgresql package)"
    fi

    # Armed before anything is created, so an error or Ctrl-C half-way still cleans up.
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # Under /tmp when root: a TMPDIR below /root would not be reachable by postgres, and a
    # short path keeps the unix socket under its length limit.
    if is_root; then
        PG_TMP="$(mktemp -d /tmp/todo-agent-pg.XXXXXX)"
        chown postgres: "$PG_TMP"
    else
        PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/todo-agent-pg.XXXXXX")"
    fi
    chmod 700 "$PG_TMP"
    PG_DATA="$PG_TMP/data"

    # --no-locale: a LANG naming a locale this machine lacks would make initdb fail.
    log "creating a throwaway PostgreSQL cluster with $PG_BIN/initdb in $PG_TMP"
    if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --no-locale --no-instructions \
        >"$PG_TMP/initdb.log" 2>&1; then
        cat "$PG_TMP/initdb.log" >&2
        die "initdb failed"
    fi

    # A self-signed certificate, so the tests can check that TLS connections work.
    openssl req -new -x509 -days 2 -nodes -subj "/CN=localhost" \
        -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$PG_DATA/server.key" -out "$PG_DATA/server.crt" >/dev/null 2>&1 ||
        die "openssl could not create a test certificate"
    chmod 600 "$PG_DATA/server.key"
    if is_root; then
        chown postgres: "$PG_DATA/server.key" "$PG_DATA/server.crt"
    fi

    local attempt port
    for attempt in 1 2 3; do
        port="$(free_port)"
        # Durability is off: this cluster lives for one test run.
        cat >"$PG_DATA/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$PG_TMP'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
        if is_root; then
            chown postgres: "$PG_DATA/postgresql.auto.conf"
        fi

        log "starting throwaway PostgreSQL on 127.0.0.1:$port"
        # pg_ctl -w polls until the server accepts connections and gives up at once if
        # the server process dies (port taken, bad configuration), bounded by -t seconds.
        if as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -w -t 60 -l "$PG_TMP/postgres.log" >/dev/null 2>&1; then
            break
        fi
        if grep -q "could not bind" "$PG_TMP/postgres.log" 2>/dev/null && [ "$attempt" -lt 3 ]; then
            log "port $port was taken meanwhile; trying another"
            as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w >/dev/null 2>&1 || true
            : >"$PG_TMP/postgres.log"
            continue
        fi
        cat "$PG_TMP/postgres.log" >&2 || true
        die "PostgreSQL did not start on 127.0.0.1:$port"
    done

    # pg_ctl may have seen the unix socket; the tests use TCP, so wait for that too.
    local isready="$PG_BIN/pg_isready"
    [ -x "$isready" ] || isready="pg_isready"
    local deadline=$((SECONDS + 30))
    until "$isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            cat "$PG_TMP/postgres.log" >&2 || true
            die "PostgreSQL does not answer on 127.0.0.1:$port"
        fi
        sleep 0.2
    done
    log "PostgreSQL is ready (TLS on)"

    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
    export TEST_PG_TLS_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=require"
    # The PostgreSQL tests must run against this cluster: a skip is a failure.
    export TODO_REQUIRE_POSTGRES=1
}

if [ -n "${DATABASE_URL:-}" ]; then
    log "using DATABASE_URL from the environment"
else
    start_postgres
fi

# Lints first: warnings are errors, on every target of the workspace (tests included).
# SKIP_CLIPPY=1 skips them for a quick filtered run.
if [ -z "${SKIP_CLIPPY:-}" ]; then
    if ! cargo clippy --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
        log "installing clippy"
        rustup component add clippy </dev/null >&2 || true
    fi
    cargo clippy --version >/dev/null 2>&1 || die "cargo clippy is not available (rustup component add clippy)"
    log "running: cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings || die "clippy found problems (SKIP_CLIPPY=1 skips this step)"
else
    log "SKIPPED clippy (SKIP_CLIPPY is set)"
fi

if cargo nextest --version >/dev/null 2>&1; then
    runner=(cargo nextest run --workspace --all-targets --no-fail-fast)
else
    log "cargo-nextest not found; using cargo test"
    runner=(cargo test --workspace --all-targets)
fi
# The API fuzzer (schemathesis, driven by the OpenAPI document) runs on a full run only,
# before the tests so that the test runner's summary stays the last word.
fuzz_status=0
if [ "$#" -eq 0 ] && [ -z "${SKIP_FUZZ:-}" ]; then
    log "building the binaries for the API fuzzer"
    cargo build --workspace --bins
    log "running: scripts/fuzz-api.sh"
    set +e
    ./scripts/fuzz-api.sh
    fuzz_status=$?
    set -e
    [ "$fuzz_status" -eq 0 ] || log "API fuzzing failed (exit status $fuzz_status)"
fi

# Deployment files (docker/, k8s/): rendered, schema-validated offline and linted, on a
# full run only.
deploy_status=0
if [ "$#" -eq 0 ] && [ -z "${SKIP_DEPLOY_CHECK:-}" ]; then
    log "running: scripts/check-deploy.sh"
    ./scripts/check-deploy.sh || deploy_status=$?
    [ "$deploy_status" -eq 0 ] || log "deployment checks failed (exit status $deploy_status)"
fi

# The chat page in headless Chromium (scripts/browser-test.sh): on a full run, or when asked
# for with BROWSER_TEST=1; before the tests, so the test runner's summary stays the last word.
browser_status=0
if { [ "$#" -eq 0 ] && [ -z "${SKIP_BROWSER:-}" ]; } || [ -n "${BROWSER_TEST:-}" ]; then
    case "$DATABASE_URL" in
    postgres://* | postgresql://*)
        log "running: scripts/browser-test.sh"
        set +e
        ./scripts/browser-test.sh
        browser_status=$?
        set -e
        [ "$browser_status" -eq 0 ] || log "the browser test failed (exit status $browser_status)"
        ;;
    *) log "SKIPPED the browser test: it needs DATABASE_URL to name a PostgreSQL server" ;;
    esac
fi

# A test that cannot run here (no PostgreSQL with a DATABASE_URL of your own, say) prints
# SKIPPED and appends that line to this file; the runner hides a passing test's output, so
# the list is printed after the run.
skip_log="$(mktemp "${TMPDIR:-/tmp}/todo-agent-skipped.XXXXXX")"
export TODO_SKIP_LOG="$skip_log"

log "running: ${runner[*]} $*"
set +e
"${runner[@]}" "$@"
status=$?
set -e
if [ -s "$skip_log" ]; then
    log "$(sort -u "$skip_log" | wc -l) test(s) SKIPPED (they passed without running):"
    sort -u "$skip_log" | sed 's/^/  /' >&2
fi
rm -f -- "$skip_log"
[ "$status" -ne 0 ] || status=$fuzz_status
[ "$status" -ne 0 ] || status=$deploy_status
[ "$status" -ne 0 ] || status=$browser_status
if [ "$status" -eq 0 ]; then
    log "tests passed"
else
    log "tests failed (exit status $status)"
fi
# The EXIT trap (if any) stops PostgreSQL and keeps this status.
exit "$status"
