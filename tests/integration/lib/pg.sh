# shellcheck shell=bash
# lib/pg.sh - a private PostgreSQL server for one test (sourced, not run).
#
#   pg_start [DB]   initdb into a new temporary directory ($PG_DIR), owned by the postgres
#                   system user when run as root (the server refuses to run as root), the
#                   server listening on a Unix socket in that directory only
#                   (listen_addresses = ''), fsync off; creates database DB (default dime).
#                   Sets PG_CONNINFO ("host=$PG_DIR dbname=DB user=postgres", trust
#                   authentication) and PG_BIN. Returns non-zero when it cannot.
#   pg_stop         pg_ctl stop -m fast, then SIGKILL by postmaster.pid if it is still there
#   pg_restart      starts the stopped server again on the same data
#   pg_sql DB SQL   runs SQL with psql (unaligned, tuples only) on database DB
#   pg_cleanup      pg_stop and removes $PG_DIR: call it from the test's EXIT trap
#   pg_available    whether the server programs and (as root) the postgres user exist
# Every wait is bounded; the server's log is $PG_DIR/server.log.

PG_DIR=
PG_CONNINFO=
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

pg_available() {
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] || return 1
    [ "$(id -u)" -ne 0 ] || id postgres >/dev/null 2>&1
}

# as the server's user: postgres when we are root, ourselves otherwise
pg_as() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

pg_ctl_run() { pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" "$@" >>"$PG_DIR/ctl.log" 2>&1; }

pg_start() {
    local db=${1:-dime}
    pg_available || return 1
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dime-pg.XXXXXX") || return 1
    chmod 755 "$PG_DIR"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$PG_DIR"
    (cd "$PG_DIR" && pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 \
        --no-sync >"$PG_DIR/initdb.log" 2>&1) || return 1
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$PG_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 40
shared_buffers = 16MB
CONF
    pg_restart || return 1
    pg_as "$PG_BIN/createdb" -h "$PG_DIR" -U postgres "$db" >>"$PG_DIR/ctl.log" 2>&1 ||
        return 1
    PG_CONNINFO="host=$PG_DIR dbname=$db user=postgres"
}

pg_restart() { (cd "$PG_DIR" && pg_ctl_run start -w -t 30 -l "$PG_DIR/server.log"); }

pg_stop() {
    [ -n "$PG_DIR" ] && [ -d "$PG_DIR/data" ] || return 0
    local pid
    pid=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)
    [ -n "$pid" ] || return 0
    (cd "$PG_DIR" && pg_ctl_run stop -m fast -w -t 20)
    if kill -0 "$pid" 2>/dev/null && [ -e "$PG_DIR/data/postmaster.pid" ]; then
        kill -9 "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    return 0
}

pg_sql() {
    (cd "$PG_DIR" && pg_as "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -U postgres -d "$1" \
        -c "$2")
}

pg_cleanup() {
    pg_stop
    [ -n "$PG_DIR" ] && rm -rf "$PG_DIR"
    PG_DIR=
}
