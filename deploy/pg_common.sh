# shellcheck shell=bash
# Shared helpers for local PostgreSQL 15 clusters (run as an unprivileged user when
# invoked as root); sourced by deploy/pg.sh, tests/pg_fixture.sh, tests/bench/read_bench.sh.

if [[ -n "${EDS_PG_COMMON_LOADED:-}" ]]; then
    return 0
fi
EDS_PG_COMMON_LOADED=1

PG_BIN="${EDS_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_SUPERUSER=postgres
# User that owns and runs the cluster; empty means "the current user".
PG_OWNER=""
PG_LOG_TAG="${PG_LOG_TAG:-pg}"

pg_die() {
    printf '%s: error: %s\n' "$PG_LOG_TAG" "$*" >&2
    exit 1
}

pg_info() {
    printf '%s: %s\n' "$PG_LOG_TAG" "$*" >&2
}

# Verify that the PostgreSQL 15 binaries are installed.
pg_require_bins() {
    local b
    for b in initdb pg_ctl postgres psql; do
        [[ -x "$PG_BIN/$b" ]] ||
            pg_die "$PG_BIN/$b not found; install postgresql-15 (run 'make setup')"
    done
}

# Decide which OS user runs the cluster. PostgreSQL refuses to run as root, so
# root delegates to the 'postgres' system user (or a dedicated 'eds-pg' user).
pg_select_owner() {
    if [[ "$(id -u)" -ne 0 ]]; then
        PG_OWNER=""
        return 0
    fi
    if id -u postgres >/dev/null 2>&1; then
        PG_OWNER=postgres
    else
        if ! id -u eds-pg >/dev/null 2>&1; then
            pg_info "creating system user eds-pg to run PostgreSQL"
            useradd -r -M -d /nonexistent -s /usr/sbin/nologin eds-pg
        fi
        PG_OWNER=eds-pg
    fi
}

# Run a command as the cluster owner (from /, since the caller's working
# directory may be unreadable for that user; all paths passed are absolute).
pg_as_owner() {
    if [[ -n "$PG_OWNER" ]]; then
        (cd / && runuser -u "$PG_OWNER" -- "$@")
    else
        "$@"
    fi
}

# Give the cluster owner a file or directory (no-op when not root).
pg_chown() {
    if [[ -n "$PG_OWNER" ]]; then
        chown "$PG_OWNER:" "$@"
    fi
}

# Fail with an explanation if the cluster owner cannot reach DIR.
pg_check_reachable() {
    local dir="$1" hint="${2:-}"
    [[ -n "$PG_OWNER" ]] || return 0
    if ! pg_as_owner test -x "$dir"; then
        pg_die "PostgreSQL runs as user '$PG_OWNER' (it refuses to run as root), but that user" \
            "cannot enter '$dir': some directory on that path lacks search (x) permission for it." \
            "${hint}"
    fi
}

# Make DATADIR absolute without requiring it to exist.
pg_abspath() {
    local p="$1"
    [[ "$p" == /* ]] || p="$PWD/$p"
    # Collapse trailing slashes so dirname/basename behave.
    while [[ "$p" == */ && "$p" != / ]]; do p="${p%/}"; done
    printf '%s\n' "$p"
}

# Hold DIR.lock for the rest of the calling script, or stop when another
# run holds it: two runs sharing one cluster's state directory would stop
# and delete each other's cluster mid-run.
pg_lock_state_dir() {
    local dir lock_fd
    dir="$(pg_abspath "$1")"
    mkdir -p "$(dirname "$dir")"
    exec {lock_fd}>"$dir.lock"
    flock -n "$lock_fd" || pg_die "another run is using '$dir' (it holds '$dir.lock'); wait for it to end"
    export EDS_LOCK_FDS="${EDS_LOCK_FDS:-} $lock_fd"
}

# Held by each benchmark for its whole run, machine-wide: two benchmarks at
# once share the cores, and both runs' figures are then worthless.
pg_lock_benchmark() {
    local lock_fd lock="${TMPDIR:-/tmp}/eds-benchmark.lock"
    exec {lock_fd}>>"$lock"
    flock -n "$lock_fd" || pg_die "another benchmark is running on this machine (it holds '$lock'); wait for it to end"
    export EDS_LOCK_FDS="${EDS_LOCK_FDS:-} $lock_fd"
}

# Runs a command without the locks above: a server it starts must not
# inherit them (a cluster kept running would hold them after the script
# that took them has ended).
pg_without_locks() {
    (
        for fd in ${EDS_LOCK_FDS:-}; do eval "exec $fd>&-"; done
        "$@"
    )
}

pg_is_initialized() {
    [[ -f "$1/PG_VERSION" ]]
}

# Exit status 0 when a postmaster is running on DATADIR.
pg_is_running() {
    local datadir="$1"
    pg_is_initialized "$datadir" || return 1
    pg_as_owner "$PG_BIN/pg_ctl" status -D "$datadir" >/dev/null 2>&1
}

# Port of the running postmaster (4th line of postmaster.pid).
pg_running_port() {
    local datadir="$1"
    [[ -r "$datadir/postmaster.pid" ]] || return 1
    sed -n '4p' "$datadir/postmaster.pid"
}

pg_validate_port() {
    if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > 65535)); then
        pg_die "invalid port '$1'"
    fi
}

# Exit status 0 when something accepts TCP connections on 127.0.0.1:PORT.
pg_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Print a currently unused TCP port on 127.0.0.1 (below the ephemeral range).
pg_pick_free_port() {
    local i port
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        if ! pg_port_in_use "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    pg_die "could not find a free TCP port on 127.0.0.1"
}

# Create an empty cluster in DATADIR listening on 127.0.0.1:PORT (TCP only,
# trust authentication). Remaining arguments are extra postgresql.conf lines.
pg_init_cluster() {
    local datadir="$1" port="$2" out
    shift 2
    pg_validate_port "$port"

    mkdir -p "$datadir"
    if [[ -n "$(ls -A "$datadir")" ]]; then
        pg_die "'$datadir' exists, is not empty and holds no PostgreSQL cluster; remove it or pick another directory"
    fi
    chmod 700 "$datadir"
    pg_chown "$datadir"

    local -a common=(-D "$datadir" -A trust -U "$PG_SUPERUSER" --encoding=UTF8 --no-instructions)
    if ! out="$(pg_as_owner "$PG_BIN/initdb" "${common[@]}" --locale=C.UTF-8 2>&1)"; then
        pg_info "initdb with locale C.UTF-8 failed, retrying with locale C"
        find "$datadir" -mindepth 1 -delete
        out="$(pg_as_owner "$PG_BIN/initdb" "${common[@]}" --locale=C 2>&1)" || {
            printf '%s\n' "$out" >&2
            pg_die "initdb failed for '$datadir'"
        }
    fi

    {
        printf '\n# ---- EDS settings (appended by deploy/pg_common.sh) ----\n'
        printf "listen_addresses = '127.0.0.1'\n"
        printf 'port = %s\n' "$port"
        printf "unix_socket_directories = ''\n"
        if (($# > 0)); then
            printf '%s\n' "$@"
        fi
    } >>"$datadir/postgresql.conf"

    {
        printf '# TYPE  DATABASE  USER  ADDRESS       METHOD\n'
        printf 'host    all       all   127.0.0.1/32  trust\n'
    } >"$datadir/pg_hba.conf"
}

# Start the cluster and wait until it accepts connections.
pg_start_cluster() {
    local datadir="$1" port="$2" logfile="$3"
    pg_validate_port "$port"
    touch "$logfile"
    pg_chown "$logfile"
    if ! pg_without_locks pg_as_owner "$PG_BIN/pg_ctl" start -D "$datadir" -l "$logfile" -w -t 90 \
        -o "-p $port" >/dev/null; then
        pg_info "PostgreSQL failed to start; last lines of $logfile:"
        tail -n 20 "$logfile" >&2 || true
        return 1
    fi
}

# Stop the cluster if it is running. MODE: smart|fast|immediate.
pg_stop_cluster() {
    local datadir="$1" mode="${2:-fast}"
    if pg_is_running "$datadir"; then
        pg_as_owner "$PG_BIN/pg_ctl" stop -D "$datadir" -m "$mode" -w -t 90 >/dev/null
    fi
}

# Create database DB on 127.0.0.1:PORT unless it exists.
pg_ensure_database() {
    local port="$1" db="$2" exists
    local -a psql=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" -d postgres
        -v ON_ERROR_STOP=1)
    exists="$(PGCONNECT_TIMEOUT=10 "${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")"
    if [[ "$exists" != 1 ]]; then
        PGCONNECT_TIMEOUT=10 "${psql[@]}" -c "CREATE DATABASE \"$db\""
    fi
}

pg_dsn() {
    printf 'postgresql://%s@127.0.0.1:%s/%s\n' "$PG_SUPERUSER" "$1" "$2"
}
