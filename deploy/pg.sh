#!/usr/bin/env bash
# Manages the embedded PostgreSQL 15 cluster used for local development
# (default data directory ./var/pg, TCP only on 127.0.0.1:${EDS_PG_PORT:-54320}).
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: deploy/pg.sh start|stop|status|dsn [DATADIR]

  start   initialise the cluster on first use, start it and create database "eds"
  stop    stop the cluster (fast shutdown)
  status  report whether the cluster is running (exit 0 if running, 3 if not)
  dsn     print the connection URL of database "eds"

DATADIR defaults to $EDS_PG_DATADIR, else ./var/pg under the repository root.
The port comes from $EDS_PG_PORT (default 54320).
EOF
    exit 2
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_LOG_TAG="pg.sh"
# shellcheck source=deploy/pg_common.sh
source "$repo_root/deploy/pg_common.sh"

(($# >= 1 && $# <= 2)) || usage
cmd="$1"
DB_NAME=eds

if (($# == 2)); then
    datadir="$(pg_abspath "$2")"
elif [[ -n "${EDS_PG_DATADIR:-}" ]]; then
    datadir="$(pg_abspath "$EDS_PG_DATADIR")"
else
    datadir="$repo_root/var/pg"
fi
port="${EDS_PG_PORT:-54320}"
pg_validate_port "$port"
parent="$(dirname "$datadir")"
logfile="$parent/$(basename "$datadir").log"

# Port actually in use when running, the configured one otherwise.
effective_port() {
    local p
    if pg_is_running "$datadir" && p="$(pg_running_port "$datadir")" && [[ -n "$p" ]]; then
        printf '%s\n' "$p"
    else
        printf '%s\n' "$port"
    fi
}

cmd_start() {
    pg_require_bins
    pg_select_owner
    mkdir -p "$parent"
    pg_check_reachable "$parent" \
        "Set EDS_PG_DATADIR to a location that user can reach (for example /var/tmp/eds-pg)."

    if pg_is_running "$datadir"; then
        local running
        running="$(effective_port)"
        if [[ "$running" != "$port" ]]; then
            pg_info "already running on port $running (EDS_PG_PORT=$port ignored until restart)"
        else
            pg_info "already running on port $running ($datadir)"
        fi
        pg_ensure_database "$running" "$DB_NAME"
        return 0
    fi

    if ! pg_is_initialized "$datadir"; then
        pg_info "initialising cluster in $datadir"
        pg_init_cluster "$datadir" "$port" \
            "max_connections = 200" \
            "shared_buffers = 256MB"
    else
        local version
        version="$(cat "$datadir/PG_VERSION")"
        [[ "$version" == 15 ]] ||
            pg_die "$datadir holds a PostgreSQL $version cluster; this project uses PostgreSQL 15"
        # A data directory copied or restored by root must stay owned by the cluster user.
        if [[ -n "$PG_OWNER" && "$(stat -c %U "$datadir")" != "$PG_OWNER" ]]; then
            chown -R "$PG_OWNER:" "$datadir"
        fi
    fi

    if pg_port_in_use "$port"; then
        pg_die "port $port on 127.0.0.1 is already in use; set EDS_PG_PORT to another port"
    fi
    pg_start_cluster "$datadir" "$port" "$logfile" ||
        pg_die "could not start PostgreSQL (log: $logfile)"
    pg_ensure_database "$port" "$DB_NAME"
    pg_info "running on 127.0.0.1:$port ($datadir, log: $logfile)"
}

cmd_stop() {
    pg_select_owner
    if pg_is_running "$datadir"; then
        pg_stop_cluster "$datadir" fast
        pg_info "stopped ($datadir)"
    else
        pg_info "not running ($datadir)"
    fi
}

cmd_status() {
    pg_select_owner
    if pg_is_running "$datadir"; then
        printf 'running on 127.0.0.1:%s (%s)\n' "$(effective_port)" "$datadir"
    elif pg_is_initialized "$datadir"; then
        printf 'stopped (%s)\n' "$datadir"
        exit 3
    else
        printf 'not initialised (%s)\n' "$datadir"
        exit 3
    fi
}

cmd_dsn() {
    pg_select_owner
    pg_dsn "$(effective_port)" "$DB_NAME"
}

case "$cmd" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
dsn) cmd_dsn ;;
-h | --help | help) usage ;;
*) usage ;;
esac
