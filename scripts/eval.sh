#!/usr/bin/env bash
# The eval: everyday requests through a real todo-backend and a real model, each judged by
# the task list and stored conversation it leaves behind (docs/EVALS.md). A measurement,
# not a test: minutes of CPU with a local model; never run in CI.
#
#   ./scripts/eval.sh [todo-eval options…]      e.g. --runs 3, --only errands,work
#
# By default it starts the local model (../shared/local-llm/serve.sh, Qwen2.5-Coder-1.5B on
# llama.cpp) on a free loopback port and stops it on exit. To use another OpenAI-compatible
# endpoint instead, set EVAL_BASE_URL (and EVAL_MODEL, EVAL_API_KEY), e.g.
#   EVAL_BASE_URL=http://127.0.0.1:11434/v1 EVAL_MODEL=qwen2.5:1.5b ./scripts/eval.sh
#
# Settings (environment):
#   EVAL_BACKEND_BIN   todo-backend binary under test     (target/debug/todo-backend)
#   EVAL_LOCAL_LLM     serve.sh of the local model          (../shared/local-llm/serve.sh)
#   EVAL_OUT           results directory                    (target/eval-results/<UTC time>)
#   EVAL_SKIP_BUILD=1  use the binaries in target/debug as they are
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
log() { printf 'eval.sh: %s\n' "$*" >&2; }

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${EVAL_OUT:-$ROOT/target/eval-results/$STAMP}"
mkdir -p "$OUT"

if [ "${EVAL_SKIP_BUILD:-0}" != "1" ]; then
    log "building todo-backend, todo-mcp and todo-eval (debug)"
    cargo build -p todo-backend -p todo-mcp -p todo-bench --bins
fi

LLM_PID=""
cleanup() {
    if [ -n "$LLM_PID" ] && kill -0 "$LLM_PID" 2>/dev/null; then
        kill "$LLM_PID" 2>/dev/null || true
        wait "$LLM_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

if [ -z "${EVAL_BASE_URL:-}" ]; then
    SERVE="${EVAL_LOCAL_LLM:-$ROOT/../shared/local-llm/serve.sh}"
    [ -x "$SERVE" ] || { log "no model: set EVAL_BASE_URL or EVAL_LOCAL_LLM (missing $SERVE)"; exit 1; }
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    log "starting the local model on 127.0.0.1:$PORT (log: $OUT/llm.log)"
    "$SERVE" "$PORT" >"$OUT/llm.log" 2>&1 &
    LLM_PID=$!
    for _ in $(seq 1 600); do
        curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
        kill -0 "$LLM_PID" 2>/dev/null || { log "the local model exited (see $OUT/llm.log)"; exit 1; }
        sleep 1
    done
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null || { log "the local model did not start"; exit 1; }
    export EVAL_BASE_URL="http://127.0.0.1:$PORT/v1" EVAL_MODEL=local EVAL_API_KEY=local
fi

log "model endpoint $EVAL_BASE_URL; results in $OUT"
"$ROOT/target/debug/todo-eval" \
    --backend-bin "${EVAL_BACKEND_BIN:-$ROOT/target/debug/todo-backend}" \
    --mcp-bin "$ROOT/target/debug/todo-mcp" \
    --cases "$ROOT/bench/evals/cases.json" \
    --report "$OUT/report.md" --json "$OUT/turns.jsonl" --exchanges "$OUT/exchanges.jsonl" "$@"
