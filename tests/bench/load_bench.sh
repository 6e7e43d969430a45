#!/usr/bin/env bash
# Bulk load benchmark, run by hand (`make bench-load`): `eds load` of a
# generated NDJSON file (tests/bench/search_data.py: Patients, Observations,
# Encounters, Conditions, MedicationRequests, DiagnosticReports) into an empty
# database, every search index maintained, and in the same run the physical
# limit: a plain COPY of the same JSON rows into a bare table (res_type,
# res_id, content json) without any index. The last line is the ratio
# eds load / raw COPY.
#
# SCALE (default 0.667: about 1,000,000 resources; SCALE=0.01 for a quick
# try), BATCH_SIZE (lines per transaction, default 1000), JOBS (preparing
# threads, default: the cores), WRITERS (writing connections, default 2),
# PG_SHARED_BUFFERS (default 1GB). Generated
# data is kept in build/search-data/scale-$SCALE (shared with
# search_bench.sh) and reused; results go to build/load-bench.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG_LOG_TAG="load_bench"
# shellcheck source=deploy/pg_common.sh
source "$repo_root/deploy/pg_common.sh"

SCALE="${SCALE:-0.667}"
BATCH_SIZE="${BATCH_SIZE:-1000}"
JOBS="${JOBS:-$(nproc)}"
WRITERS="${WRITERS:-2}"
PG_SHARED_BUFFERS="${PG_SHARED_BUFFERS:-1GB}"
[[ "$SCALE" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || pg_die "SCALE must be a positive number"
[[ "$BATCH_SIZE" =~ ^[1-9][0-9]*$ ]] || pg_die "BATCH_SIZE must be a positive number"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || pg_die "JOBS must be a positive number"
[[ "$WRITERS" =~ ^[1-9][0-9]*$ ]] || pg_die "WRITERS must be a positive number"

bin="${EDS_BIN:-$repo_root/build/release/eds}"
bench_dir="$repo_root/tests/bench"
state_dir="$repo_root/build/load-bench-pg"
pg_lock_benchmark
pg_lock_state_dir "$state_dir"
work="$repo_root/build/load-bench"
data="$repo_root/build/search-data/scale-$SCALE"

[[ -x "$bin" ]] || pg_die "eds binary '$bin' not found; run 'make build' first"
pg_require_bins
for tool in python3 awk sed cut sha256sum; do
    command -v "$tool" >/dev/null || pg_die "'$tool' is required (run 'make setup')"
done

cleanup() {
    local rc=$?
    trap '' INT TERM
    bash "$repo_root/tests/pg_fixture.sh" stop "$state_dir" || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf -- "$work"
mkdir -p "$work"

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
# The NDJSON file holds the JSON column of the COPY rows (whose only escape
# is the doubled backslash), so both sides load the very same documents.
if [[ ! -f "$data/resources.ndjson" || "$data/resources.ndjson" -ot "$data/resources.copy" ]]; then
    pg_info "writing $data/resources.ndjson"
    cut -f3- "$data/resources.copy" | sed 's/\\\\/\\/g' >"$data/resources.ndjson.tmp"
    mv -f -- "$data/resources.ndjson.tmp" "$data/resources.ndjson"
fi
expected_total="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resources"])' "$data/manifest.json")"
lines="$(wc -l <"$data/resources.ndjson")"
((lines == expected_total)) || pg_die "resources.ndjson has $lines lines, the manifest says $expected_total"
pg_info "data: $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(", ".join("%s %d" % kv for kv in sorted(m["counts"].items())))' "$data/manifest.json")"
pg_info "NDJSON: $(du -h "$data/resources.ndjson" | cut -f1)"

# ---- database -----------------------------------------------------------------------

bash "$repo_root/tests/pg_fixture.sh" start "$state_dir"
dsn="$(<"$state_dir/dsn")"
psql=("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$dsn")
# The same settings for both sides: a server-sized buffer cache and few
# checkpoints (the fixture already runs without fsync).
"${psql[@]}" <<SQL
ALTER SYSTEM SET shared_buffers = '$PG_SHARED_BUFFERS';
ALTER SYSTEM SET max_wal_size = '8GB';
SQL
bash "$repo_root/tests/pg_fixture.sh" restart "$state_dir"
"$bin" migrate --database-url "$dsn" --log-level warn

# ---- eds load ------------------------------------------------------------------------

pg_info "eds load of $expected_total resources (batch $BATCH_SIZE, $JOBS preparing threads, $WRITERS writers)"
load_t0="$(date +%s.%N)"
"$bin" load --database-url "$dsn" --batch-size "$BATCH_SIZE" --jobs "$JOBS" --writers "$WRITERS" \
    --report "$work/rejected.txt" "$data/resources.ndjson" | tee "$work/load.out"
load_t1="$(date +%s.%N)"
load_s="$(awk -v a="$load_t0" -v b="$load_t1" 'BEGIN { printf "%.3f", b - a }')"
stored="$("${psql[@]}" -c "SELECT count(*) FROM resource")"
((stored == expected_total)) || pg_die "expected $expected_total resources in the database, found $stored"
index_rows="$("${psql[@]}" -c "SELECT (SELECT count(*) FROM search_string) + (SELECT count(*) FROM search_token)
    + (SELECT count(*) FROM search_date) + (SELECT count(*) FROM search_number) + (SELECT count(*) FROM search_quantity)
    + (SELECT count(*) FROM search_reference) + (SELECT count(*) FROM search_uri)")"
load_rate="$(awk -v n="$stored" -v s="$load_s" 'BEGIN { printf "%.1f", n / s }')"
pg_info "eds load: $stored resources, $index_rows index rows in $load_s s ($load_rate resources/s)"

# ---- raw COPY of the same rows ------------------------------------------------------------

"${psql[@]}" -c "CHECKPOINT"
"${psql[@]}" -c "CREATE TABLE bench_raw (res_type text NOT NULL, res_id text NOT NULL, content json NOT NULL)"
pg_info "raw COPY of the same $expected_total rows into bench_raw (res_type, res_id, content json), no index"
copy_t0="$(date +%s.%N)"
"${psql[@]}" -c "\\copy bench_raw FROM '$data/resources.copy'"
copy_t1="$(date +%s.%N)"
copy_s="$(awk -v a="$copy_t0" -v b="$copy_t1" 'BEGIN { printf "%.3f", b - a }')"
copied="$("${psql[@]}" -c "SELECT count(*) FROM bench_raw")"
((copied == expected_total)) || pg_die "COPY stored $copied rows, expected $expected_total"
copy_rate="$(awk -v n="$copied" -v s="$copy_s" 'BEGIN { printf "%.1f", n / s }')"
pg_info "raw COPY: $copied rows in $copy_s s ($copy_rate rows/s)"

# ---- summary ----------------------------------------------------------------------------

echo
printf 'Bulk load benchmark: %d resources (SCALE=%s), batch %d, %d preparing threads, %d writers, %d cores\n' \
    "$expected_total" "$SCALE" "$BATCH_SIZE" "$JOBS" "$WRITERS" "$(nproc)"
printf '%-58s %12s   (%s s)\n' "eds load (resource, history, $index_rows index rows)" "$load_rate" "$load_s"
printf '%-58s %12s   (%s s)\n' "raw COPY into one bare json table" "$copy_rate" "$copy_s"
awk -v a="$load_rate" -v b="$copy_rate" 'BEGIN { printf "ratio eds load/raw COPY: %.3f\n", a / b }'
