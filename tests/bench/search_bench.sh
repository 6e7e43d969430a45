#!/usr/bin/env bash
# Search benchmark, run by hand (`make bench-search`): loads a generated Italian
# population (tests/bench/search_data.py) into the EDS server through
# transaction Bundles, compares the load rate with a raw COPY of the same rows,
# then measures six searches with wrk, and the identifier and subject searches
# also as the server's own SQL through pgbench on the same tables.
#
# SCALE (default 1: 100,000 Patients, ~1,000,000 Observations, ~1.5M resources;
# SCALE=0.01 for a quick try), DURATION (s per measurement, default 10),
# LOAD_ONLY=1 (stop after the load and its COPY baseline: the ingest benchmark,
# e.g. LOAD_ONLY=1 BUNDLE_SIZE=20 SCALE=0.05),
# LOAD_CLIENTS (concurrent loading clients, default 8), BUNDLE_SIZE (entries
# per transaction, default 100), BUNDLE_METHOD (PUT, the default: the
# generated ids; POST: creates, ids assigned by the server, with LOAD_ONLY=1
# only), SERVER_THREADS / SERVER_POOL (server shape),
# PG_SHARED_BUFFERS (default 1GB), KEEP_DB=1 (leave the loaded database
# running at the end, and reuse it in the next KEEP_DB=1 run of the same
# data instead of loading again: for repeated search measurements; the
# load figures are then not measured). Generated data is kept in
# build/search-data/scale-$SCALE and reused; results, the server log and the
# plans of every search (auto_explain) go to build/search-bench.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG_LOG_TAG="search_bench"
# shellcheck source=deploy/pg_common.sh
source "$repo_root/deploy/pg_common.sh"

SCALE="${SCALE:-1}"
DURATION="${DURATION:-10}"
LOAD_CLIENTS="${LOAD_CLIENTS:-8}"
BUNDLE_SIZE="${BUNDLE_SIZE:-100}"
BUNDLE_METHOD="${BUNDLE_METHOD:-PUT}"
PG_SHARED_BUFFERS="${PG_SHARED_BUFFERS:-1GB}"
[[ "$SCALE" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || pg_die "SCALE must be a positive number"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || pg_die "DURATION must be a positive number of seconds"
[[ "$LOAD_CLIENTS" =~ ^[1-9][0-9]*$ ]] || pg_die "LOAD_CLIENTS must be a positive number"
[[ "$BUNDLE_SIZE" =~ ^[1-9][0-9]*$ ]] || pg_die "BUNDLE_SIZE must be a positive number"
[[ "$BUNDLE_METHOD" == PUT || "$BUNDLE_METHOD" == POST ]] || pg_die "BUNDLE_METHOD must be PUT or POST"
[[ "$BUNDLE_METHOD" == PUT || ("${LOAD_ONLY:-}" == 1 && "${KEEP_DB:-0}" != 1) ]] ||
    pg_die "BUNDLE_METHOD=POST needs LOAD_ONLY=1 (and no KEEP_DB): the searches look for the generated ids"
CONNECTIONS=16
THREADS=2
SERVER_THREADS="${SERVER_THREADS:-0}"  # 0: the server's default
SERVER_POOL="${SERVER_POOL:-$CONNECTIONS}"

bin="${EDS_BIN:-$repo_root/build/release/eds}"
bench_dir="$repo_root/tests/bench"
state_dir="$repo_root/build/search-bench-pg"
pg_lock_benchmark
pg_lock_state_dir "$state_dir"
work="$repo_root/build/search-bench"
data="$repo_root/build/search-data/scale-$SCALE"

[[ -x "$bin" ]] || pg_die "server binary '$bin' not found; run 'make build' first"
pg_require_bins
[[ -x "$PG_BIN/pgbench" ]] || pg_die "$PG_BIN/pgbench not found (postgresql-15 package)"
for tool in python3 wrk curl awk sort sha256sum; do
    command -v "$tool" >/dev/null || pg_die "'$tool' is required (run 'make setup')"
done

server_pid=""
cleanup() {
    local rc=$?
    trap '' INT TERM
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ "${KEEP_DB:-0}" == 1 && -f "$state_dir/loaded" ]]; then
        pg_info "KEEP_DB=1: the loaded database keeps running ($(<"$state_dir/dsn")); 'bash tests/pg_fixture.sh stop $state_dir' removes it"
    else
        bash "$repo_root/tests/pg_fixture.sh" stop "$state_dir" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf -- "$work"
mkdir -p "$work"

server_log() {
    pg_info "last lines of the server log ($work/server.log):"
    tail -n 30 "$work/server.log" >&2 || true
    if [[ -n "$server_pid" ]] && ! kill -0 "$server_pid" 2>/dev/null; then
        local status=0
        wait "$server_pid" 2>/dev/null || status=$?
        server_pid=""
        if ((status > 128)); then
            pg_info "the server is gone: killed by signal $((status - 128)) ($(kill -l $((status - 128)) 2>/dev/null || echo '?'))"
        else
            pg_info "the server is gone: exit status $status"
        fi
    fi
}

# ---- data (generated once per SCALE and generator version) ---------------------

stamp="$(sha256sum "$bench_dir/search_data.py" | awk '{ print $1 }')"
if [[ -f "$data/manifest.json" && -f "$data/generator.sha256" && "$(<"$data/generator.sha256")" == "$stamp" ]]; then
    pg_info "reusing the data generated in $data"
else
    pg_info "generating data at SCALE=$SCALE into $data"
    rm -rf -- "$data"
    mkdir -p "$data"
    gen_start=$SECONDS
    python3 "$bench_dir/search_data.py" generate --scale "$SCALE" --out "$data" >/dev/null
    printf '%s\n' "$stamp" >"$data/generator.sha256"
    pg_info "generated in $((SECONDS - gen_start)) s"
fi
# PostgreSQL (another user when run as root) reads nothing from build/: the
# COPY below streams the file through psql.
expected_total="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resources"])' "$data/manifest.json")"
pg_info "data: $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(", ".join("%s %d" % kv for kv in sorted(m["counts"].items())))' "$data/manifest.json")"

# ---- database and server -------------------------------------------------------

reused=0
loaded_mark="$stamp scale=$SCALE"
if [[ "${KEEP_DB:-0}" == 1 && -f "$state_dir/loaded" && -f "$state_dir/dsn" &&
    "$(<"$state_dir/loaded")" == "$loaded_mark" ]] &&
    "$PG_BIN/psql" -X -q -At "$(<"$state_dir/dsn")" -c "SELECT 1" >/dev/null 2>&1; then
    reused=1
    pg_info "KEEP_DB=1: reusing the database loaded by an earlier run"
else
    rm -f -- "$state_dir/loaded"
    bash "$repo_root/tests/pg_fixture.sh" stop "$state_dir" >/dev/null 2>&1 || true
    bash "$repo_root/tests/pg_fixture.sh" start "$state_dir"
fi
dsn="$(<"$state_dir/dsn")"
pg_log="$(<"$state_dir/pgdir")/pg.log"
psql=("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$dsn")
if ((!reused)); then
    # A server-sized buffer cache, fewer checkpoints during the load, and
    # auto_explain loaded (off until the plans are captured at the end).
    "${psql[@]}" <<SQL
ALTER SYSTEM SET shared_buffers = '$PG_SHARED_BUFFERS';
ALTER SYSTEM SET max_wal_size = '8GB';
ALTER SYSTEM SET maintenance_work_mem = '256MB';
ALTER SYSTEM SET shared_preload_libraries = 'auto_explain';
SQL
    bash "$repo_root/tests/pg_fixture.sh" restart "$state_dir"
fi

port="$(pg_pick_free_port)"
base="http://127.0.0.1:$port"
pg_info "starting server on $base"
"$bin" serve --database-url "$dsn" --migrate --port "$port" --threads "$SERVER_THREADS" \
    --pool-size "$SERVER_POOL" --log-level warn >"$work/server.log" 2>&1 &
server_pid=$!

ready=0
for ((i = 0; i < 600; i++)); do
    if curl -sf -o /dev/null "$base/fhir/metadata"; then
        ready=1
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        server_log
        pg_die "server exited during startup"
    fi
    sleep 0.1
done
((ready)) || {
    server_log
    pg_die "server did not answer $base/fhir/metadata within 60 s"
}

# ---- load through the API, and the same rows through COPY ----------------------

if ((reused)); then
    load_rate="-"
    load_n="$expected_total"
    load_s="-"
    copy_rate="-"
    copied="$expected_total"
    copy_s="-"
else
    pg_info "loading $expected_total resources: transaction Bundles of $BUNDLE_SIZE ${BUNDLE_METHOD}s, $LOAD_CLIENTS clients"
    if ! python3 "$bench_dir/search_data.py" load --base "$base" --data "$data" --clients "$LOAD_CLIENTS" \
        --bundle-size "$BUNDLE_SIZE" --method "$BUNDLE_METHOD" >"$work/load.out"; then
        server_log
        pg_die "loading through the server failed"
    fi
    read -r load_n load_s <"$work/load.out"
    ((load_n == expected_total)) || pg_die "loaded $load_n resources, expected $expected_total"
    stored="$("${psql[@]}" -c "SELECT count(*) FROM resource WHERE NOT deleted")"
    ((stored == expected_total)) || pg_die "expected $expected_total resources in the database, found $stored"
    load_rate="$(awk -v n="$load_n" -v s="$load_s" 'BEGIN { printf "%.1f", n / s }')"
    pg_info "server: stored $load_n resources in $load_s s ($load_rate resources/s)"

    "${psql[@]}" -c "CHECKPOINT"
    "${psql[@]}" -c "CREATE TABLE bench_copy (res_type text NOT NULL, res_id text NOT NULL, content jsonb NOT NULL,
                     PRIMARY KEY (res_type, res_id))"
    pg_info "raw COPY of the same $expected_total rows into bench_copy (res_type, res_id, content jsonb, primary key)"
    copy_t0="$(date +%s.%N)"
    "${psql[@]}" -c "\\copy bench_copy FROM '$data/resources.copy'"
    copy_t1="$(date +%s.%N)"
    copy_s="$(awk -v a="$copy_t0" -v b="$copy_t1" 'BEGIN { printf "%.3f", b - a }')"
    copied="$("${psql[@]}" -c "SELECT count(*) FROM bench_copy")"
    ((copied == expected_total)) || pg_die "COPY stored $copied rows, expected $expected_total"
    copy_rate="$(awk -v n="$copied" -v s="$copy_s" 'BEGIN { printf "%.1f", n / s }')"
    pg_info "raw COPY: $copied rows in $copy_s s ($copy_rate rows/s)"
    "${psql[@]}" -c "DROP TABLE bench_copy"

    if [[ "${LOAD_ONLY:-0}" == 1 ]]; then
        # the ingest benchmark: transaction Bundles (BUNDLE_SIZE entries, e.g. 20,
        # a clinical document) from LOAD_CLIENTS clients against the raw COPY
        echo
        printf '%-52s %12s\n' "load" "resources/s"
        printf '%-52s %12s   (%d in %s s, %d clients, %d per Bundle)\n' "server: POST /fhir transaction Bundles of ${BUNDLE_METHOD}s" \
            "$load_rate" "$load_n" "$load_s" "$LOAD_CLIENTS" "$BUNDLE_SIZE"
        printf '%-52s %12s   (%d in %s s)\n' "raw PostgreSQL: COPY into one jsonb table" "$copy_rate" "$copied" "$copy_s"
        awk -v a="$load_rate" -v b="$copy_rate" 'BEGIN { printf "load ratio server/raw: %.3f\n", a / b }'
        exit 0
    fi
fi

[[ "${KEEP_DB:-0}" == 1 ]] && printf '%s\n' "$loaded_mark" >"$state_dir/loaded"

pg_info "VACUUM ANALYZE"
"${psql[@]}" -c "VACUUM ANALYZE"
"${psql[@]}" -c "CHECKPOINT"
pg_info "database size: $("${psql[@]}" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"

# Parameter tables for pgbench: row n holds line n of a parameter file.
param_table() {
    local table="$1" file="$2" cols="$3"
    "${psql[@]}" -c "DROP TABLE IF EXISTS $table"
    "${psql[@]}" -c "CREATE TABLE $table (n serial PRIMARY KEY, $cols)"
    local names
    names="$(sed -e 's/ text//g' <<<"$cols")"
    "${psql[@]}" -c "\\copy $table ($names) FROM '$file'"
    "${psql[@]}" -c "ANALYZE $table"
    "${psql[@]}" -c "SELECT count(*) FROM $table"
}
n_ident="$(param_table bench_param_identifier "$data/params/identifier.tsv" "cf text")"
n_subj="$(param_table bench_param_subject "$data/params/subject_code_date.tsv" "pid text, code text")"

# ---- the searches --------------------------------------------------------------

CF='http%3A%2F%2Fhl7.it%2Fsid%2FcodiceFiscale%7C'
LOINC_TOKEN='http%3A%2F%2Floinc.org%7C'
# name|label|path template|parameter file
searches=(
    "identifier|Patient?identifier=<cf>|/fhir/Patient?identifier=$CF{1}|identifier.tsv"
    "name|Patient?family=<p>&given=<p>|/fhir/Patient?family={1}&given={2}|name.tsv"
    "subject_code_date|Observation?subject&code&date=ge2023|/fhir/Observation?subject=Patient%2F{1}&code=$LOINC_TOKEN{2}&date=ge2023-01-01|subject_code_date.tsv"
    "code_sort|Observation?code&_sort=-date&_count=10|/fhir/Observation?code=$LOINC_TOKEN{1}&_sort=-date&_count=10|code.tsv"
    "subject_identifier|Observation?subject.identifier|/fhir/Observation?subject.identifier=$CF{1}|subject_identifier.tsv"
    "encounter_revinclude|Encounter?patient&_revinclude=Obs:encounter|/fhir/Encounter?patient={1}&_revinclude=Observation:encounter|encounter_patient.tsv"
)

# The first request of a search, with its values filled in.
first_request() {
    local template="$1" file="$2" line
    line="$(head -n 1 "$file")"
    awk -F '\t' -v t="$template" '{ for (i = 1; i <= NF; i++) gsub("\\{" i "\\}", $i, t); print t; exit }' <<<"$line"
}

pg_info "checking every search once with curl"
for s in "${searches[@]}"; do
    IFS='|' read -r name label template file <<<"$s"
    path="$(first_request "$template" "$data/params/$file")"
    status="$(curl -s -o "$work/check.$name.json" -w '%{http_code}' -H 'Accept: application/fhir+json' "$base$path")"
    [[ "$status" == 200 ]] || pg_die "$name: GET $path answered $status: $(head -c 500 "$work/check.$name.json")"
    mapfile -t values < <(head -n 1 "$data/params/$file" | tr '\t' '\n')
    summary="$(python3 "$bench_dir/search_data.py" check "$name" "${values[@]}" <"$work/check.$name.json")" ||
        pg_die "$name: GET $path did not answer correctly"
    pg_info "  $name: GET $path -> $summary"
done

# Latency values come as e.g. 812.00us, 1.25ms, 1.02s; print them in ms.
wrk_ms() {
    awk -v pct="$1" '
        $1 == pct {
            v = $2; unit = v; sub(/^[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
            f = (unit == "us") ? 0.001 : (unit == "ms") ? 1 : (unit == "s") ? 1000 : (unit == "m") ? 60000 : -1
            if (f < 0) exit 1
            printf "%.3f\n", v * f; found = 1; exit
        }
        END { if (!found) exit 1 }' "$2"
}

# One search through wrk. Prints "rps p50 p99 non2xx socket_errors".
run_server() {
    local seconds="$1" template="$2" file="$3" out="$4"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" --timeout 30s --latency \
        -s "$bench_dir/search.lua" "$base" -- "$template" "$file" >"$out"
    # wrk prints these lines only when something went wrong.
    local non2xx errors rps p50 p99
    non2xx="$(awk '/^ *Non-2xx or 3xx responses:/ { print $NF }' "$out")"
    errors="$(awk '/^ *Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")"
    rps="$(awk '$1 == "Requests/sec:" { print $2 }' "$out")"
    [[ -n "$rps" ]] || pg_die "no Requests/sec in wrk output ($out)"
    p50="$(wrk_ms 50% "$out")" || pg_die "no 50% latency in wrk output ($out)"
    p99="$(wrk_ms 99% "$out")" || pg_die "no 99% latency in wrk output ($out)"
    echo "$rps $p50 $p99 ${non2xx:-0} ${errors:-0}"
}

# One SQL script through pgbench. Prints "tps p50 p99".
run_raw() {
    local seconds="$1" script="$2" out="$3"
    shift 3
    rm -f -- "$work"/pgbench_log.*
    (cd "$work" && "$PG_BIN/pgbench" -n -M extended -c "$CONNECTIONS" -j "$THREADS" -T "$seconds" "$@" \
        -f "$script" -l --log-prefix="$work/pgbench_log" "$dsn") >"$out" 2>&1 ||
        { cat "$out" >&2; pg_die "pgbench failed"; }
    local tps
    tps="$(awk '$1 == "tps" && $2 == "=" { print $3; exit }' "$out")"
    [[ -n "$tps" ]] || pg_die "no tps in pgbench output"
    # Column 3 of the per-transaction log is the latency in microseconds.
    cat "$work"/pgbench_log.* | awk '{ print $3 }' | sort -n >"$work/pgbench_latency_us"
    rm -f -- "$work"/pgbench_log.*
    awk '{ a[NR] = $1 }
        function pct(p,    i) { i = int(NR * p / 100); if (i < NR * p / 100) i++; if (i < 1) i = 1; return a[i] / 1000 }
        END { if (NR == 0) exit 1; printf "%s %.3f %.3f\n", tps, pct(50), pct(99) }' tps="$tps" \
        "$work/pgbench_latency_us" || pg_die "empty pgbench transaction log"
    rm -f -- "$work/pgbench_latency_us"
}

# Requests wrk gave up on (at the end of a run) may still be running in the
# server; wait until the database is idle so they do not slow the next run.
wait_idle() {
    local i busy
    for ((i = 0; i < 3000; i++)); do
        busy="$("${psql[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                                  AND state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()")"
        ((busy == 0)) && break
        sleep 0.2
    done
    ((i < 3000)) || pg_die "the database was still busy 10 minutes after a run"
    if ((i >= 5)); then pg_info "  waited $((i / 5)) s for requests still running in the server"; fi
}

# The latency of a search alone: five requests one after the other (the first
# five lines of its parameter file), over one connection each. Prints the median in ms.
single_latency() {
    local template="$1" file="$2" line path out code t
    local -a times=()
    while IFS= read -r line; do
        path="$(awk -F '\t' -v t="$template" '{ for (i = 1; i <= NF; i++) gsub("\\{" i "\\}", $i, t); print t }' <<<"$line")"
        out="$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H 'Accept: application/fhir+json' "$base$path")"
        read -r code t <<<"$out"
        [[ "$code" == 200 ]] || pg_die "GET $path answered $code"
        times+=("$t")
    done < <(head -n 5 "$file")
    printf '%s\n' "${times[@]}" | sort -g | awk '{ a[NR] = $1 } END { printf "%.3f\n", a[int((NR + 1) / 2)] * 1000 }'
}

loadavg_before="$(cut -d ' ' -f 1-3 /proc/loadavg)"
: >"$work/results"
for s in "${searches[@]}"; do
    IFS='|' read -r name label template file <<<"$s"
    wait_idle
    single="$(single_latency "$template" "$data/params/$file")"
    pg_info "$name: alone ${single} ms (median of 5); warming up, then wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
    run_server 2 "$template" "$data/params/$file" "$work/wrk.$name.warmup" >/dev/null
    wait_idle
    r="$(run_server "$DURATION" "$template" "$data/params/$file" "$work/wrk.$name.out")"
    echo "server $name $r $(cut -d ' ' -f 1 /proc/loadavg) $single" | tee -a "$work/results"
    wait_idle
    case "$name" in
    identifier) raw_sql="search_identifier.sql" raw_vars=(-D "rows=$n_ident") ;;
    subject_code_date) raw_sql="search_subject.sql" raw_vars=(-D "rows=$n_subj") ;;
    *) continue ;;
    esac
    pg_info "$name: the same SQL through pgbench -c $CONNECTIONS -j $THREADS -T $DURATION"
    run_raw 2 "$bench_dir/$raw_sql" "$work/pgbench.$name.warmup" "${raw_vars[@]}" >/dev/null
    wait_idle
    echo "raw $name $(run_raw "$DURATION" "$bench_dir/$raw_sql" "$work/pgbench.$name.out" "${raw_vars[@]}")" |
        tee -a "$work/results"
done

# ---- plans: each search once more, with auto_explain logging EXPLAIN ANALYZE ----

pg_info "capturing the plan of every search into $work/plans.txt"
"${psql[@]}" >/dev/null <<SQL
ALTER SYSTEM SET auto_explain.log_min_duration = 0;
ALTER SYSTEM SET auto_explain.log_analyze = on;
ALTER SYSTEM SET auto_explain.log_buffers = on;
ALTER SYSTEM SET auto_explain.log_nested_statements = on;
SELECT pg_reload_conf();
SQL
sleep 1
: >"$work/plans.txt"
for s in "${searches[@]}"; do
    IFS='|' read -r name label template file <<<"$s"
    path="$(first_request "$template" "$data/params/$file")"
    offset="$(stat -c %s "$pg_log")"
    curl -s -o /dev/null -H 'Accept: application/fhir+json' "$base$path"
    sleep 0.5
    {
        printf '==== %s: GET %s\n' "$name" "$path"
        tail -c +"$((offset + 1))" "$pg_log"
        printf '\n'
    } >>"$work/plans.txt"
done
"${psql[@]}" >/dev/null <<SQL
ALTER SYSTEM SET auto_explain.log_min_duration = -1;
SELECT pg_reload_conf();
SQL

# ---- summary -------------------------------------------------------------------

echo
printf 'Machine: %s cores, load average before the searches %s\n' "$(nproc)" "$loadavg_before"
printf 'Search benchmark: SCALE=%s, %s resources, %d connections, %d wrk threads, %d s per search\n' \
    "$SCALE" "$expected_total" "$CONNECTIONS" "$THREADS" "$DURATION"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("  " + ", ".join("%s %d" % kv for kv in sorted(m["counts"].items())))' "$data/manifest.json"
printf '%-52s %12s\n' "load" "resources/s"
if ((reused)); then
    echo "load: not measured (KEEP_DB=1 reused a loaded database)"
else
    printf '%-52s %12s   (%d in %s s, %d clients, %d per Bundle)\n' "server: POST /fhir transaction Bundles of ${BUNDLE_METHOD}s" \
        "$load_rate" "$load_n" "$load_s" "$LOAD_CLIENTS" "$BUNDLE_SIZE"
    printf '%-52s %12s   (%d in %s s)\n' "raw PostgreSQL: COPY into one jsonb table" "$copy_rate" "$copied" "$copy_s"
    awk -v a="$load_rate" -v b="$copy_rate" 'BEGIN { printf "load ratio server/raw: %.3f\n", a / b }'
fi
echo
failed=0
awk -v labels="$(for s in "${searches[@]}"; do IFS='|' read -r n l _ _ <<<"$s"; printf '%s=%s;' "$n" "$l"; done)" '
    BEGIN {
        n = split(labels, parts, ";")
        for (i = 1; i <= n; i++) if (parts[i] != "") { split(parts[i], kv, "="); label[kv[1]] = substr(parts[i], length(kv[1]) + 2) }
        printf "%-44s %11s %9s %9s %8s %8s %6s %10s\n", "search", "requests/s", "p50 (ms)", "p99 (ms)", "non-2xx", "sockerr", "load1", "alone (ms)"
    }
    $1 == "server" { printf "%-44s %11.1f %9.3f %9.3f %8d %8d %6s %10.3f\n", label[$2], $3, $4, $5, $6, $7, $8, $9; rps[$2] = $3 }
    $1 == "raw" { printf "%-44s %11.1f %9.3f %9.3f\n", "  raw PostgreSQL, same SQL (pgbench)", $3, $4, $5;
                  printf "  ratio server/raw: %.2f\n", rps[$2] / $3 }' "$work/results"
if awk '$1 == "server" && ($6 != 0 || $7 != 0) { bad = 1 } END { exit !bad }' "$work/results"; then
    pg_info "some searches answered outside 2xx/3xx or had socket errors (see $work/wrk.*.out)"
    failed=1
fi
exit "$failed"
