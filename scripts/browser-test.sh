#!/usr/bin/env bash
# The chat page in a browser: headless Chromium (Debian's package) driven by playwright-core
# (npm, locked in tests/browser/package-lock.json) against the real todo-backend with
# PostgreSQL and mock-llm. Run by scripts/test.sh on a full run; needs DATABASE_URL to name
# a PostgreSQL server. Installs chromium with apt when missing (never a downloaded browser).
# Screenshots go to $SCREENSHOT_DIR (default target/browser-screenshots), printed at the end.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'browser-test.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
# shellcheck source=lib/pg.sh
. scripts/lib/pg.sh

case "${DATABASE_URL:-}" in
postgres://* | postgresql://*) ;;
*) die "DATABASE_URL must name a PostgreSQL server (scripts/test.sh starts one)" ;;
esac

install_apt() {
    local sudo=()
    if ! is_root; then
        sudo -n true 2>/dev/null || die "please install: $*"
        sudo=(sudo -n)
    fi
    log "installing $* with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || install_apt chromium
[ -x "$CHROMIUM" ] || die "$CHROMIUM is missing after installing chromium"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || install_apt nodejs npm

log "installing playwright-core with npm ci (no browser download)"
(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)

if [ -z "${BROWSER_SKIP_BUILD:-}" ] || [ ! -x target/debug/todo-backend ] || [ ! -x target/debug/mock-llm ]; then
    log "building todo-backend and mock-llm"
    cargo build -p todo-backend -p todo-e2e --bins >&2
fi

# A database of its own, dropped afterwards, when psql is at hand; else DATABASE_URL as is.
db_url="$DATABASE_URL"
psql_bin=""
if bindir="$(find_pg_bindir 2>/dev/null)" && [ -x "$bindir/psql" ]; then
    psql_bin="$bindir/psql"
elif command -v psql >/dev/null 2>&1; then
    psql_bin="$(command -v psql)"
fi
db_name=""
drop_db() {
    if [ -n "$db_name" ]; then
        "$psql_bin" "$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true
    fi
}
if [ -n "$psql_bin" ]; then
    db_name="browser_test_$$_$RANDOM"
    "$psql_bin" "$DATABASE_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $db_name" >/dev/null
    trap drop_db EXIT
    base="${DATABASE_URL%%\?*}"
    query=""
    [ "$base" = "$DATABASE_URL" ] || query="?${DATABASE_URL#*\?}"
    db_url="${base%/*}/$db_name$query"
fi

SCREENSHOT_DIR="${SCREENSHOT_DIR:-$PWD/target/browser-screenshots}"
log "running tests/browser/chat.test.mjs (screenshots: $SCREENSHOT_DIR)"
TODO_BACKEND_BIN="$PWD/target/debug/todo-backend" MOCK_LLM_BIN="$PWD/target/debug/mock-llm" \
    DATABASE_URL="$db_url" CHROMIUM="$CHROMIUM" SCREENSHOT_DIR="$SCREENSHOT_DIR" \
    node tests/browser/chat.test.mjs
