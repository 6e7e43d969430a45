#!/usr/bin/env bash
# Runs the EDS server in the foreground (what `make run` executes): starts the
# embedded PostgreSQL unless EDS_DATABASE_URL is set, and stops both on Ctrl-C.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${EDS_BIN:-$repo_root/build/release/eds}"

die() {
    printf 'run: error: %s\n' "$*" >&2
    exit 1
}

[[ -x "$bin" ]] || die "server binary '$bin' not found; build it with 'make build'"

server_pid=""
stop_pg=0

# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    trap '' INT TERM
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if ((stop_pg)); then
        bash "$repo_root/deploy/pg.sh" stop || true
    fi
    exit "$rc"
}
trap cleanup EXIT

# shellcheck disable=SC2317  # invoked via trap
forward() {
    if [[ -n "$server_pid" ]]; then
        kill -s "$1" "$server_pid" 2>/dev/null || true
    else
        # Interrupted before the server started: just leave (EXIT trap cleans up).
        exit 130
    fi
}
trap 'forward INT' INT
trap 'forward TERM' TERM

# An external database: EDS_DATABASE_URL or a --database-url flag.
for ((i = 1; i <= $#; i++)); do
    arg="${!i}"
    case "$arg" in
    --database-url=*) EDS_DATABASE_URL="${arg#--database-url=}" ;;
    --database-url)
        j=$((i + 1))
        EDS_DATABASE_URL="${!j:-}"
        ;;
    esac
done

if [[ -n "${EDS_DATABASE_URL:-}" ]]; then
    dsn="$EDS_DATABASE_URL"
else
    # Leave a cluster that was already running (started by hand) as it is.
    if ! bash "$repo_root/deploy/pg.sh" status >/dev/null 2>&1; then
        stop_pg=1
    fi
    bash "$repo_root/deploy/pg.sh" start
    dsn="$(bash "$repo_root/deploy/pg.sh" dsn)"
fi

# Start the server in its own process group (set -m) so a terminal Ctrl-C
# reaches it exactly once, through forward().
set -m
"$bin" serve --database-url "$dsn" --migrate "$@" &
server_pid=$!
set +m

# `wait` returns early (status > 128) whenever a trapped signal arrives; keep
# waiting until the server has really exited and collect its exit status.
status=""
while [[ -z "$status" ]]; do
    if wait "$server_pid"; then
        status=0
    else
        rc=$?
        if ((rc > 128)) && kill -0 "$server_pid" 2>/dev/null; then
            continue
        fi
        if ((rc > 128)); then
            # The server may have exited while the trap ran; fetch its real status.
            if wait "$server_pid" 2>/dev/null; then rc=0; else
                r2=$?
                ((r2 == 127)) || rc=$r2
            fi
        fi
        status=$rc
    fi
done
server_pid=""
exit "$status"
