#!/usr/bin/env bash
# Document benchmark, run by hand (`make bench-document`): the national
# Gateway's write path. Lab reports of ENTRIES entries each (a clinical
# document: the Patient, Organization and Practitioner as conditional PUTs,
# a Specimen, Observations, the DiagnosticReport, the Composition and the
# DocumentReference; tests/bench/document_data.py) are PUBLISHed through the
# FSE 2.0 ingestion API (POST /v1/document/workflowinstanceid/{wii}) by
# CLIENTS concurrent clients, with validation, audit and feeding records as
# the server runs by default. In the same run, the physical limit: a plain
# COPY of the same resources as JSON rows into a bare table, no index. The
# last line is the ratio of the entries per second. Then REPLACE of the
# first REPLACE documents (PUT of the same envelopes as operation REPLACE:
# each stored document's resources are deleted and the Bundle's stored, in
# one transaction).
#
# DOCUMENTS (default 3000), ENTRIES (per document, default 20), CLIENTS
# (default 8), REPLACE (default 1000, at most DOCUMENTS), PG_SHARED_BUFFERS
# (default 1GB), LABS (laboratories the documents come from, default 20)
# and PRACTITIONERS (who sign them, default 200): every document carries its
# laboratory and practitioner as conditional PUTs, so LABS=1 measures one
# hospital sending all its reports at once. The generated documents are
# kept in build/document-data/<documents>-<entries>[-<labs>-<practitioners>]
# and reused.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG_LOG_TAG="document_bench"
# shellcheck source=deploy/pg_common.sh
source "$repo_root/deploy/pg_common.sh"

DOCUMENTS="${DOCUMENTS:-3000}"
ENTRIES="${ENTRIES:-20}"
CLIENTS="${CLIENTS:-8}"
REPLACE="${REPLACE:-1000}"
LABS="${LABS:-20}"
PRACTITIONERS="${PRACTITIONERS:-200}"
PG_SHARED_BUFFERS="${PG_SHARED_BUFFERS:-1GB}"
[[ "$DOCUMENTS" =~ ^[1-9][0-9]*$ ]] || pg_die "DOCUMENTS must be a positive number"
[[ "$ENTRIES" =~ ^[1-9][0-9]*$ ]] && ((ENTRIES >= 8)) || pg_die "ENTRIES must be a number from 8"
[[ "$CLIENTS" =~ ^[1-9][0-9]*$ ]] || pg_die "CLIENTS must be a positive number"
[[ "$LABS" =~ ^[1-9][0-9]*$ ]] || pg_die "LABS must be a positive number"
[[ "$PRACTITIONERS" =~ ^[1-9][0-9]*$ ]] || pg_die "PRACTITIONERS must be a positive number"
[[ "$REPLACE" =~ ^[0-9]+$ ]] || pg_die "REPLACE must be a number"
((REPLACE <= DOCUMENTS)) || REPLACE="$DOCUMENTS"

bin="${EDS_BIN:-$repo_root/build/release/eds}"
bench_dir="$repo_root/tests/bench"
state_dir="$repo_root/build/document-bench-pg"
pg_lock_benchmark
pg_lock_state_dir "$state_dir"
work="$repo_root/build/document-bench"
data="$repo_root/build/document-data/$DOCUMENTS-$ENTRIES"
[[ "$LABS-$PRACTITIONERS" == 20-200 ]] || data+="-$LABS-$PRACTITIONERS"

[[ -x "$bin" ]] || pg_die "eds binary '$bin' not found; run 'make build' first"
pg_require_bins
for tool in python3 curl awk sha256sum; do
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
    bash "$repo_root/tests/pg_fixture.sh" stop "$state_dir" || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf -- "$work"
mkdir -p "$work"

# ---- data (generated once per size and generator version) ----------------------------

stamp="$(sha256sum "$bench_dir/document_data.py" | awk '{ print $1 }')"
if [[ -f "$data/generator.sha256" && "$(<"$data/generator.sha256")" == "$stamp" ]]; then
    pg_info "reusing the documents generated in $data"
else
    pg_info "generating $DOCUMENTS documents of $ENTRIES entries into $data"
    rm -rf -- "$data"
    mkdir -p "$data"
    python3 "$bench_dir/document_data.py" generate --documents "$DOCUMENTS" --entries "$ENTRIES" \
        --labs "$LABS" --practitioners "$PRACTITIONERS" --out "$data" \
        >"$data/manifest.json"
    printf '%s\n' "$stamp" >"$data/generator.sha256"
fi
rows="$(wc -l <"$data/resources.copy")"

# ---- database and server ---------------------------------------------------------------

bash "$repo_root/tests/pg_fixture.sh" start "$state_dir"
dsn="$(<"$state_dir/dsn")"
psql=("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$dsn")
"${psql[@]}" <<SQL
ALTER SYSTEM SET shared_buffers = '$PG_SHARED_BUFFERS';
ALTER SYSTEM SET max_wal_size = '8GB';
SQL
bash "$repo_root/tests/pg_fixture.sh" restart "$state_dir"

port="$(pg_pick_free_port)"
base="http://127.0.0.1:$port"
pg_info "starting server on $base"
"$bin" serve --database-url "$dsn" --migrate --port "$port" --log-level warn >"$work/server.log" 2>&1 &
server_pid=$!
ready=0
for ((i = 0; i < 600; i++)); do
    if curl -sf -o /dev/null "$base/fhir/metadata"; then
        ready=1
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || { tail -n 30 "$work/server.log" >&2; pg_die "server exited during startup"; }
    sleep 0.1
done
((ready)) || pg_die "server did not answer $base/fhir/metadata within 60 s"

# ---- PUBLISH every document ---------------------------------------------------------------

pg_info "PUBLISHing $DOCUMENTS documents of $ENTRIES entries from $CLIENTS clients"
if ! python3 "$bench_dir/document_data.py" send --base "$base" --data "$data" --clients "$CLIENTS" >"$work/send.out"; then
    tail -n 30 "$work/server.log" >&2
    pg_die "publishing failed"
fi
read -r docs entries send_s p50 p99 <"$work/send.out"
stored_docs="$("${psql[@]}" -c "SELECT count(*) FROM fse_document")"
((stored_docs == DOCUMENTS)) || pg_die "expected $DOCUMENTS documents in the database, found $stored_docs"
stored="$("${psql[@]}" -c "SELECT count(*) FROM resource WHERE NOT deleted")"
doc_rate="$(awk -v n="$docs" -v s="$send_s" 'BEGIN { printf "%.1f", n / s }')"
entry_rate="$(awk -v n="$entries" -v s="$send_s" 'BEGIN { printf "%.1f", n / s }')"
pg_info "server: $docs documents ($entries entries, $stored resources stored) in $send_s s"

# ---- REPLACE the first documents --------------------------------------------------------

if ((REPLACE > 0)); then
    pg_info "REPLACing $REPLACE documents from $CLIENTS clients"
    if ! python3 "$bench_dir/document_data.py" send --base "$base" --data "$data" --clients "$CLIENTS" \
        --replace "$REPLACE" >"$work/replace.out"; then
        tail -n 30 "$work/server.log" >&2
        pg_die "replacing failed"
    fi
    read -r rdocs rentries replace_s rp50 rp99 <"$work/replace.out"
    stored_docs="$("${psql[@]}" -c "SELECT count(*) FROM fse_document")"
    ((stored_docs == DOCUMENTS)) || pg_die "expected $DOCUMENTS documents after REPLACE, found $stored_docs"
    replace_rate="$(awk -v n="$rdocs" -v s="$replace_s" 'BEGIN { printf "%.1f", n / s }')"
fi

# ---- raw COPY of the same resources --------------------------------------------------------

"${psql[@]}" -c "CHECKPOINT"
"${psql[@]}" -c "CREATE TABLE bench_raw (res_type text NOT NULL, res_id text NOT NULL, content json NOT NULL)"
copy_t0="$(date +%s.%N)"
"${psql[@]}" -c "\\copy bench_raw FROM '$data/resources.copy'"
copy_t1="$(date +%s.%N)"
copy_s="$(awk -v a="$copy_t0" -v b="$copy_t1" 'BEGIN { printf "%.3f", b - a }')"
copied="$("${psql[@]}" -c "SELECT count(*) FROM bench_raw")"
((copied == rows)) || pg_die "COPY stored $copied rows, expected $rows"
copy_rate="$(awk -v n="$copied" -v s="$copy_s" 'BEGIN { printf "%.1f", n / s }')"

# ---- summary ---------------------------------------------------------------------------------

echo
printf 'Document benchmark: %d lab reports of %d entries, %d clients, %d cores\n' "$docs" "$ENTRIES" "$CLIENTS" "$(nproc)"
printf '%-52s %10s docs/s %10s entries/s   (%s s, latency p50 %s ms, p99 %s ms)\n' \
    "server: PUBLISH (one transaction per document)" "$doc_rate" "$entry_rate" "$send_s" "$p50" "$p99"
if ((REPLACE > 0)); then
    printf '%-52s %10s docs/s %10s entries/s   (%s s, latency p50 %s ms, p99 %s ms)\n' \
        "server: REPLACE (old resources deleted, new stored)" "$replace_rate" \
        "$(awk -v n="$rentries" -v s="$replace_s" 'BEGIN { printf "%.1f", n / s }')" "$replace_s" "$rp50" "$rp99"
fi
printf '%-52s %28s rows/s   (%d in %s s)\n' "raw COPY into one bare json table" "$copy_rate" "$copied" "$copy_s"
awk -v a="$entry_rate" -v b="$copy_rate" 'BEGIN { printf "ratio PUBLISH entries/s / raw COPY rows/s: %.3f\n", a / b }'
