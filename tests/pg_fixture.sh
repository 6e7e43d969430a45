#!/usr/bin/env bash
# Throwaway PostgreSQL 15 cluster for the test suite (CTest fixture setup/cleanup).
# "start DIR" writes DIR/dsn and DIR/pgdir; "stop DIR" tears the cluster down again.
set -euo pipefail

usage() {
    echo "usage: tests/pg_fixture.sh start|stop|restart STATE_DIR" >&2
    exit 2
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_LOG_TAG="pg_fixture"
# shellcheck source=deploy/pg_common.sh
source "$repo_root/deploy/pg_common.sh"

(($# == 2)) || usage
cmd="$1"
state_dir="$(pg_abspath "$2")"
DB_NAME=eds_test

# Stop and delete the cluster recorded in STATE_DIR, if any.
teardown() {
    local pgdir=""
    if [[ -f "$state_dir/pgdir" ]]; then
        pgdir="$(<"$state_dir/pgdir")"
    fi
    if [[ -n "$pgdir" ]]; then
        # Only ever delete directories this script created.
        case "$pgdir" in
        /tmp/eds-test-pg.*) ;;
        *) pg_die "refusing to delete unexpected directory '$pgdir' recorded in $state_dir/pgdir" ;;
        esac
        if [[ -d "$pgdir" ]]; then
            pg_stop_cluster "$pgdir/data" immediate ||
                pg_info "could not stop the cluster in $pgdir cleanly"
            rm -rf -- "$pgdir"
        fi
    fi
    rm -f -- "$state_dir/dsn" "$state_dir/pgdir"
}

cmd_start() {
    pg_require_bins
    pg_select_owner
    mkdir -p "$state_dir"
    teardown

    local pgdir attempt port
    # Remove whatever a failed start left behind.
    trap '[[ -s "$state_dir/dsn" ]] || (teardown) || true' EXIT
    pgdir="$(mktemp -d /tmp/eds-test-pg.XXXXXX)"
    chmod 755 "$pgdir"
    pg_chown "$pgdir"
    # Record the directory right away so "stop" can clean up a failed start.
    printf '%s\n' "$pgdir" >"$state_dir/pgdir"

    port="$(pg_pick_free_port)"
    pg_init_cluster "$pgdir/data" "$port" \
        "max_connections = 300" \
        "fsync = off" \
        "synchronous_commit = off" \
        "full_page_writes = off"

    # Another process may grab the port between the probe and the bind: retry.
    for attempt in 1 2 3 4 5; do
        if pg_start_cluster "$pgdir/data" "$port" "$pgdir/pg.log"; then
            break
        fi
        ((attempt < 5)) || pg_die "could not start PostgreSQL (log: $pgdir/pg.log)"
        port="$(pg_pick_free_port)"
        pg_info "retrying on port $port"
    done

    pg_ensure_database "$port" "$DB_NAME"
    pg_dsn "$port" "$DB_NAME" >"$state_dir/dsn.tmp"
    mv -f -- "$state_dir/dsn.tmp" "$state_dir/dsn"
    pg_info "test database at $(<"$state_dir/dsn") ($pgdir)"
}

cmd_stop() {
    pg_select_owner
    teardown
}

# Restarts the recorded cluster (fast shutdown: open connections are cut), on
# the same port and data; for tests of recovery from a database restart.
cmd_restart() {
    pg_select_owner
    [[ -f "$state_dir/pgdir" ]] || pg_die "no cluster recorded in $state_dir"
    local pgdir
    pgdir="$(<"$state_dir/pgdir")"
    pg_without_locks pg_as_owner "$PG_BIN/pg_ctl" restart -D "$pgdir/data" -m fast -w -t 90 -l "$pgdir/pg.log" \
        >/dev/null ||
        pg_die "could not restart PostgreSQL (log: $pgdir/pg.log)"
}

case "$cmd" in
start) cmd_start ;;
stop) cmd_stop ;;
restart) cmd_restart ;;
*) usage ;;
esac
