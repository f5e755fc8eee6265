# Shared by scripts/test.sh and scripts/bench.sh (sourced, not run): finding the PostgreSQL
# server binaries, a free loopback port, running server programs as the `postgres` user when
# root (initdb and postgres refuse to run as root), and stopping a throwaway cluster.
#
# The sourcing script defines log() and die(), and sets PG_TMP (the cluster's directory),
# PG_DATA and PG_BIN as it creates the cluster.

PG_TMP="${PG_TMP:-}"
PG_DATA="${PG_DATA:-}"
PG_BIN="${PG_BIN:-}"

is_root() { [ "$(id -u)" -eq 0 ]; }

# The directory holding initdb, pg_ctl and postgres. Debian keeps the server binaries
# off PATH, under /usr/lib/postgresql/<version>/bin.
find_pg_bindir() {
    local p d
    if p="$(command -v initdb 2>/dev/null)" && [ -n "$p" ]; then
        d="$(dirname "$(readlink -f "$p")")"
        if [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
        return
    fi
    # No python3: try random high ports until one does not answer.
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free TCP port found"
}

# Runs a server-side PostgreSQL program, as the postgres user when we are root.
as_pg() {
    if is_root; then
        (cd "$PG_TMP" && runuser -u postgres -- "$@")
    else
        (cd "$PG_TMP" && "$@")
    fi
}

# Stops the throwaway cluster if it runs (fast, then immediate). Leaves PG_TMP in place.
stop_pg() {
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        log "stopping the throwaway PostgreSQL"
        as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 30 >/dev/null 2>&1 ||
            as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 30 >/dev/null 2>&1 ||
            log "warning: could not stop PostgreSQL (data dir $PG_DATA)"
    fi
}
