#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis: no 5xx, no
# undocumented status, no response that breaks its schema, no content-type or header
# that differs from the document. Runs the debug binaries (build them first) against an
# embedded SQLite database and the mock LLM, on loopback, bounded in examples and time.
#
# Usage: scripts/fuzz-api.sh [extra schemathesis arguments]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'fuzz-api.sh: %s\n' "$*" >&2; }

bin="${CARGO_TARGET_DIR:-target}/debug"
for b in todo-backend mock-llm; do
    [ -x "$bin/$b" ] || { log "missing $bin/$b: run cargo build --workspace --bins"; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/todo-agent-fuzz.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# schemathesis lives in its own virtual environment under target/, installed once.
venv=target/fuzz-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
    log "installing schemathesis into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2
fi

# Waits for "listening on http://ADDR" in a log file and prints ADDR.
wait_addr() {
    local file=$1 deadline=$((SECONDS + 60)) addr
    while [ $SECONDS -lt $deadline ]; do
        addr=$(grep -o 'listening on http://[0-9.:]*' "$file" 2>/dev/null | head -n 1 | sed 's|listening on http://||') || true
        if [ -n "$addr" ]; then
            printf '%s' "$addr"
            return 0
        fi
        sleep 0.1
    done
    log "no address in $file:"
    cat "$file" >&2
    return 1
}

"$bin/mock-llm" --bind 127.0.0.1:0 2>"$work/mock.log" &
pids+=($!)
mock=$(wait_addr "$work/mock.log")

secret="fuzz-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
env DATABASE_URL="sqlite://$work/todo.db" OPENAI_BASE_URL="http://$mock/v1" OPENAI_API_KEY=fuzz \
    LLM_MODEL=mock RATE_LIMIT_PER_MINUTE=100000 MAX_CONCURRENT_TURNS=64 AUTH_JWT_SECRET="$secret" RUST_LOG=info \
    "$bin/todo-backend" serve --bind 127.0.0.1:0 2>"$work/backend.log" &
pids+=($!)
backend=$(wait_addr "$work/backend.log")

# A valid HS256 token for the user the fuzzer's paths will mostly not name: 403s are
# documented, and the fixed user below exercises the authorised paths.
token=$(SECRET="$secret" python3 - <<'EOF'
import base64, hashlib, hmac, json, os, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=")
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b(json.dumps({"sub": "fuzz", "exp": int(time.time()) + 3600}).encode())
s = b(hmac.new(os.environ["SECRET"].encode(), h + b"." + p, hashlib.sha256).digest())
print((h + b"." + p + b"." + s).decode())
EOF
)

log "fuzzing http://$backend (mock LLM at $mock)"
# One worker: with two, hypothesis describes strategy lambdas from two threads at once and
# CPython 3.11's ast.parse can fail with "AST constructor recursion depth mismatch" (seen in
# a fresh-clone CI run) — an error of the tool, not a finding.
status=0
"$venv/bin/schemathesis" run "http://$backend/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --header "Authorization: Bearer $token" \
    --max-examples "${FUZZ_MAX_EXAMPLES:-40}" \
    --workers 1 \
    --request-timeout 20 \
    --no-color \
    "$@" || status=$?
# Positive data on the read endpoints: every input the document calls valid is accepted
# (2xx, or 401/403/404 for a user or conversation that is not the token's).
log "checking that the read endpoints accept every schema-valid input"
"$venv/bin/schemathesis" run "http://$backend/openapi.json" \
    --mode positive \
    --include-method GET \
    --checks positive_data_acceptance \
    --header "Authorization: Bearer $token" \
    --max-examples "${FUZZ_MAX_EXAMPLES:-40}" \
    --workers 1 \
    --request-timeout 20 \
    --no-color \
    "$@" || status=$?
if [ "$status" -ne 0 ]; then
    log "schemathesis found failures (exit $status); backend log:"
    tail -n 50 "$work/backend.log" >&2
fi
exit "$status"
