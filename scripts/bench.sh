#!/usr/bin/env bash
# Benchmarks of todo-backend and todo-mcp: ./scripts/bench.sh
#
# Builds the release binaries (once; BENCH_SKIP_BUILD=1 reuses them), starts a throwaway
# PostgreSQL with pg_stat_statements, mock-llm (a deterministic OpenAI-compatible model with
# a fixed delay), todo-backend and todo-mcp http, all on 127.0.0.1, then runs the load driver
# (bench/, `todo-bench`). Every load point is bounded in time and request count. Everything
# started here is stopped and removed on exit, whatever happens.
#
# Figures go to target/bench-results/<UTC time>/report.md (Markdown) and results.jsonl (raw), with
# the services' logs. docs/BENCHMARKS.md explains them. About 10 minutes on 2 cores.
#
# Settings (environment):
#   BENCH_CONCURRENCY      concurrency levels               (1,16,64)
#   BENCH_DURATION         seconds per throughput point     (20)
#   BENCH_SCALING_DURATION seconds per scaling point        (10)
#   BENCH_SCALING_USERS    concurrent users when scaling    (16)
#   BENCH_HISTORY          stored messages per conversation (10,1000,10000)
#   BENCH_TASKS            open tasks per user              (10,1000,10000)
#   BENCH_BACKGROUND_USERS other users (100 tasks + 100 messages each) for the ~1M-row point (5000; 0 skips)
#   BENCH_LLM_LATENCY_MS   mock model delay per call        (50)
#   BENCH_DB_MAX_CONNECTIONS  DATABASE_MAX_CONNECTIONS of both services (unset: their default)
#   BENCH_VARIANTS         extra todo-backend processes compared at the highest concurrency,
#                          "name:VAR=value,VAR=value …" ("pool64:DATABASE_MAX_CONNECTIONS=64
#                          arena2:MALLOC_ARENA_MAX=2"; empty: none)
#   BENCH_OUT              results directory                (target/bench-results/<time>)
#   BENCH_SKIP_BUILD=1     use the binaries in target/release as they are
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

log() { printf 'bench.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
# shellcheck source=lib/pg.sh
. scripts/lib/pg.sh

CONCURRENCY="${BENCH_CONCURRENCY:-1,16,64}"
DURATION="${BENCH_DURATION:-20}"
SCALING_DURATION="${BENCH_SCALING_DURATION:-10}"
SCALING_USERS="${BENCH_SCALING_USERS:-16}"
HISTORY="${BENCH_HISTORY:-10,1000,10000}"
TASKS="${BENCH_TASKS:-10,1000,10000}"
BACKGROUND_USERS="${BENCH_BACKGROUND_USERS:-5000}"
LLM_LATENCY_MS="${BENCH_LLM_LATENCY_MS:-50}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${BENCH_OUT:-$ROOT/target/bench-results/$STAMP}"
BIN="$ROOT/target/release"

# --- build -----------------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != "1" ]; then
    log "building release binaries (several minutes the first time)"
    cargo build --release -p todo-backend -p todo-mcp -p todo-e2e -p todo-bench --bins
fi
for b in todo-backend todo-mcp mock-llm todo-bench; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run without BENCH_SKIP_BUILD=1"
done

# --- processes and clean-up ------------------------------------------------------------
PIDS=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p i
    # Newest first: the driver, then the services, then the mock.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        # Bounded wait for a graceful exit, then SIGKILL.
        for _ in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    stop_pg
    if [ -n "$PG_TMP" ] && [ -d "$PG_TMP" ]; then
        [ -f "$PG_TMP/postgres.log" ] && [ -d "$OUT" ] && cp "$PG_TMP/postgres.log" "$OUT/postgres.log" 2>/dev/null
        rm -rf -- "$PG_TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$OUT"
: >"$OUT/report.md"
: >"$OUT/results.jsonl"

# --- PostgreSQL (as scripts/test.sh, plus pg_stat_statements; no TLS) ---------------------
PG_BIN="$(find_pg_bindir)" || die "PostgreSQL server binaries not found (apt-get install postgresql postgresql-contrib)"
if is_root; then
    command -v runuser >/dev/null 2>&1 || die "runuser is needed to run PostgreSQL as root"
    id -u postgres >/dev/null 2>&1 || die "no 'postgres' user to run PostgreSQL as"
    PG_TMP="$(mktemp -d /tmp/todo-bench-pg.XXXXXX)"
    chown postgres: "$PG_TMP"
else
    PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/todo-bench-pg.XXXXXX")"
fi
chmod 700 "$PG_TMP"
PG_DATA="$PG_TMP/data"
log "creating a throwaway PostgreSQL cluster in $PG_TMP"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --no-locale --no-instructions \
    >"$PG_TMP/initdb.log" 2>&1 || {
    cat "$PG_TMP/initdb.log" >&2
    die "initdb failed"
}
PG_PORT="$(free_port)"
cat >"$PG_DATA/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_TMP'
max_connections = 300
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.max = 2000
pg_stat_statements.track = top
pg_stat_statements.track_utility = on
EOF
is_root && chown postgres: "$PG_DATA/postgresql.auto.conf"
as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -w -t 60 -l "$PG_TMP/postgres.log" >/dev/null 2>&1 || {
    cat "$PG_TMP/postgres.log" >&2 || true
    die "PostgreSQL did not start on 127.0.0.1:$PG_PORT"
}
deadline=$((SECONDS + 30))
until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 2; do
    [ "$SECONDS" -lt "$deadline" ] || die "PostgreSQL does not answer on 127.0.0.1:$PG_PORT"
    sleep 0.2
done
PG_PID="$(head -n1 "$PG_DATA/postmaster.pid")"
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') ready on port $PG_PORT (postmaster $PG_PID)"

# --- services ----------------------------------------------------------------------------
# start NAME LOGFILE CMD... : starts CMD in the background with a clean environment plus the
# variables in SVC_ENV, waits (60 s at most) for its "listening on http://ADDR" line, and
# sets SVC_ADDR and SVC_PID.
SVC_ENV=()
start() {
    local name="$1" logf="$2"
    shift 2
    env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 "${SVC_ENV[@]}" "$@" >"$logf" 2>&1 &
    SVC_PID=$!
    PIDS+=("$SVC_PID")
    local deadline=$((SECONDS + 60))
    SVC_ADDR=""
    while [ -z "$SVC_ADDR" ]; do
        kill -0 "$SVC_PID" 2>/dev/null || {
            cat "$logf" >&2
            die "$name exited while starting"
        }
        [ "$SECONDS" -lt "$deadline" ] || {
            cat "$logf" >&2
            die "$name did not log its address within 60 s"
        }
        SVC_ADDR="$(grep -o 'listening on http://[^ "/]*' "$logf" | head -n1 | sed 's|listening on http://||' || true)"
        [ -n "$SVC_ADDR" ] || sleep 0.1
    done
    log "$name listening on $SVC_ADDR (pid $SVC_PID)"
}

SVC_ENV=()
start mock-llm "$OUT/mock-llm.log" "$BIN/mock-llm" --bind 127.0.0.1:0 --latency-ms "$LLM_LATENCY_MS"
MOCK_ADDR="$SVC_ADDR"
MOCK_PID="$SVC_PID"

DB_ENV=(DATABASE_URL="$DATABASE_URL")
[ -n "${BENCH_DB_MAX_CONNECTIONS:-}" ] && DB_ENV+=(DATABASE_MAX_CONNECTIONS="$BENCH_DB_MAX_CONNECTIONS")

# The measured turn is the two-call turn (tool call, then the model's words), comparable
# across runs: composed confirmations, which save the second call of a write turn, are off
# here and compared as the variant `composed` (BENCH_VARIANTS="composed:AGENT_COMPOSE_CONFIRMATIONS=true").
SVC_ENV=("${DB_ENV[@]}" OPENAI_BASE_URL="http://$MOCK_ADDR/v1" OPENAI_API_KEY=x LLM_MODEL=mock
    RATE_LIMIT_PER_MINUTE=1000000 MAX_CONCURRENT_TURNS=256 AGENT_COMPOSE_CONFIRMATIONS=false)
start todo-backend "$OUT/todo-backend.log" "$BIN/todo-backend" serve --bind 127.0.0.1:0
BACKEND_ADDR="$SVC_ADDR"
BACKEND_PID="$SVC_PID"
# The log line comes before the listener serves; wait (bounded) for /healthz.
for _ in $(seq 1 100); do
    curl -fsS "http://$BACKEND_ADDR/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

# Variants: more todo-backend processes, each with extra settings, measured at the highest
# concurrency next to the baseline. BENCH_VARIANTS="name:VAR=value,VAR=value name2:…".
VARIANT_ARGS=()
for spec in ${BENCH_VARIANTS-pool64:DATABASE_MAX_CONNECTIONS=64 arena2:MALLOC_ARENA_MAX=2}; do
    vname="${spec%%:*}"
    IFS=',' read -r -a vvars <<<"${spec#*:}"
    SVC_ENV=("${DB_ENV[@]}" OPENAI_BASE_URL="http://$MOCK_ADDR/v1" OPENAI_API_KEY=x LLM_MODEL=mock
        RATE_LIMIT_PER_MINUTE=1000000 MAX_CONCURRENT_TURNS=256 AGENT_COMPOSE_CONFIRMATIONS=false "${vvars[@]}")
    start "todo-backend ($vname)" "$OUT/todo-backend-$vname.log" "$BIN/todo-backend" serve --bind 127.0.0.1:0
    VARIANT_ARGS+=(--variant "$vname@http://$SVC_ADDR@$SVC_PID")
done

JWT_SECRET="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
SVC_ENV=("${DB_ENV[@]}" AUTH_JWT_SECRET="$JWT_SECRET" AUTH_AUDIENCE=todo-mcp-bench)
start todo-mcp "$OUT/todo-mcp.log" "$BIN/todo-mcp" http --bind 127.0.0.1:0
MCP_ADDR="$SVC_ADDR"
MCP_PID="$SVC_PID"
sleep 1

# --- the machine -------------------------------------------------------------------------
{
    echo "# Benchmark run $STAMP"
    echo
    echo "- Command: \`./scripts/bench.sh\` with BENCH_CONCURRENCY=$CONCURRENCY BENCH_DURATION=$DURATION" \
        "BENCH_SCALING_DURATION=$SCALING_DURATION BENCH_SCALING_USERS=$SCALING_USERS BENCH_HISTORY=$HISTORY" \
        "BENCH_TASKS=$TASKS BENCH_BACKGROUND_USERS=$BACKGROUND_USERS BENCH_LLM_LATENCY_MS=$LLM_LATENCY_MS" \
        "BENCH_DB_MAX_CONNECTIONS=${BENCH_DB_MAX_CONNECTIONS:-default}" \
        "BENCH_VARIANTS=\"${BENCH_VARIANTS-pool64:DATABASE_MAX_CONNECTIONS=64 arena2:MALLOC_ARENA_MAX=2}\""
    echo "- Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- core service backend mcp-server 2>/dev/null || echo ' (crates modified)')"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') × $(nproc); memory $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo); kernel $(uname -r)"
    echo "- Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- rustc: $(rustc --version 2>/dev/null || echo unknown); PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync off, synchronous_commit off)"
    echo "- Everything on one machine: driver, mock-llm, todo-backend, todo-mcp and PostgreSQL share the CPUs."
    echo
} >>"$OUT/report.md"

# --- the runs ----------------------------------------------------------------------------
COMMON=(--database-url "$DATABASE_URL" --pg-pid "$PG_PID" --pg-port "$PG_PORT" --report "$OUT/report.md"
    --json "$OUT/results.jsonl" --run-id "b$STAMP" --concurrency "$CONCURRENCY")

# The driver runs in the background and is waited for, so a signal to this script is
# handled at once (bash defers traps while a foreground child runs) and the trap stops it.
run_driver() {
    "$@" &
    local pid=$!
    PIDS+=("$pid")
    wait "$pid"
}

log "chat turns against todo-backend"
run_driver "$BIN/todo-bench" backend "${COMMON[@]}" --duration-secs "$DURATION" \
    --backend-url "http://$BACKEND_ADDR" --backend-pid "$BACKEND_PID" \
    --mock-url "http://$MOCK_ADDR" --mock-pid "$MOCK_PID" --llm-latency-ms "$LLM_LATENCY_MS" \
    --scaling-secs "$SCALING_DURATION" --scaling-users "$SCALING_USERS" \
    --history-lengths "$HISTORY" --task-counts "$TASKS" --background-users "$BACKGROUND_USERS" \
    "${VARIANT_ARGS[@]}"

log "todo-mcp alone"
run_driver env BENCH_JWT_SECRET="$JWT_SECRET" "$BIN/todo-bench" mcp "${COMMON[@]}" --duration-secs "$DURATION" \
    --mcp-url "http://$MCP_ADDR/mcp" --mcp-pid "$MCP_PID"

echo "- Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/report.md"
log "done: $OUT/report.md"
cat "$OUT/report.md"
