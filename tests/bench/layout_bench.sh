#!/usr/bin/env bash
# Storage layout benchmark, run by hand (`make bench-layout`): what
# PostgreSQL alone spends to store the rows of a bulk load, table by table,
# in the current layout and in the alternatives a redesign of the search
# index could use; and in the same run the raw COPY of load_bench.sh (the
# same JSON rows into one bare table without any index).
#
# `eds load` fills a database with the generated data first (the data of
# load_bench.sh and search_bench.sh, build/search-data/scale-$SCALE); every
# table's rows are then copied out, and each set of rows is timed as one
# COPY into an empty table with the given indexes. A COPY is the cheapest
# way PostgreSQL has to store rows, so the sum over the tables is a floor
# for the database's part of a load of that layout: with the server's own
# CPU (parsing, checking, index extraction) counted as nothing and the
# cores shared perfectly, a load cannot take less than that sum divided by
# the cores. The last lines print the best ratio to the raw COPY that floor
# allows.
#
# Layouts:
#   current   the tables as migrated: (res_type, res_id, param, ...) text
#             keys and the resource's key (res_key), a value index and a
#             (res_key, res_id) index each (migration 0016; before it, a
#             (res_type, res_id) index);
#   int-keys  the index tables keyed by an integer resource key (in load
#             order) and an integer parameter key: (param_key, value...)
#             and (res_key) indexes;
#   gin       int-keys, but the token and reference rows replaced by one
#             row per resource holding hashes of its (parameter, code),
#             (parameter, system|code) and (parameter, target) keys in a
#             GIN index (exact matches only; :text, :above/:below and
#             sorting would need more).
#
# SCALE (default 0.667: about 1,000,000 resources; SCALE=0.05 for a quick
# try), PG_SHARED_BUFFERS (default 1GB), ROUNDS (timed COPYs per table and
# layout, the best is kept; default 1). Results go to build/layout-bench.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG_LOG_TAG="layout_bench"
# shellcheck source=deploy/pg_common.sh
source "$repo_root/deploy/pg_common.sh"

SCALE="${SCALE:-0.667}"
PG_SHARED_BUFFERS="${PG_SHARED_BUFFERS:-1GB}"
ROUNDS="${ROUNDS:-1}"
[[ "$SCALE" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || pg_die "SCALE must be a positive number"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || pg_die "ROUNDS must be a positive number"

bin="${EDS_BIN:-$repo_root/build/release/eds}"
bench_dir="$repo_root/tests/bench"
state_dir="$repo_root/build/layout-bench-pg"
pg_lock_benchmark
pg_lock_state_dir "$state_dir"
work="$repo_root/build/layout-bench"
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
    rm -f -- "$work"/*.copy
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf -- "$work"
mkdir -p "$work"

# ---- data (shared with load_bench.sh) ------------------------------------------------

stamp="$(sha256sum "$bench_dir/search_data.py" | awk '{ print $1 }')"
if [[ -f "$data/manifest.json" && -f "$data/generator.sha256" && "$(<"$data/generator.sha256")" == "$stamp" ]]; then
    pg_info "reusing the data generated in $data"
else
    pg_info "generating data at SCALE=$SCALE into $data"
    rm -rf -- "$data"
    mkdir -p "$data"
    python3 "$bench_dir/search_data.py" generate --scale "$SCALE" --out "$data" >/dev/null
    printf '%s\n' "$stamp" >"$data/generator.sha256"
fi
# As in load_bench.sh: the NDJSON file holds the JSON column of the COPY rows.
if [[ ! -f "$data/resources.ndjson" || "$data/resources.ndjson" -ot "$data/resources.copy" ]]; then
    pg_info "writing $data/resources.ndjson"
    cut -f3- "$data/resources.copy" | sed 's/\\\\/\\/g' >"$data/resources.ndjson.tmp"
    mv -f -- "$data/resources.ndjson.tmp" "$data/resources.ndjson"
fi

# ---- database, filled by eds load ------------------------------------------------------

bash "$repo_root/tests/pg_fixture.sh" start "$state_dir"
dsn="$(<"$state_dir/dsn")"
psql=("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$dsn")
"${psql[@]}" <<SQL
ALTER SYSTEM SET shared_buffers = '$PG_SHARED_BUFFERS';
ALTER SYSTEM SET max_wal_size = '8GB';
SQL
bash "$repo_root/tests/pg_fixture.sh" restart "$state_dir"
"$bin" migrate --database-url "$dsn" --log-level warn
pg_info "eds load of $data/resources.ndjson"
"$bin" load --database-url "$dsn" --report "$work/rejected.txt" "$data/resources.ndjson" | tail -1

tables=(resource resource_history search_string search_token search_date search_number search_quantity
    search_reference search_uri)
for t in "${tables[@]}"; do
    "${psql[@]}" -c "\\copy $t TO '$work/$t.copy'"
done

# The int-keys rows: resources numbered in load order, parameters numbered
# per (type, code); the gin rows: one per resource with its key hashes.
"${psql[@]}" <<SQL
CREATE TABLE bench_res_key AS
  SELECT res_type, res_id, row_number() OVER (ORDER BY seq) AS res_key FROM resource_history;
CREATE UNIQUE INDEX ON bench_res_key (res_type, res_id);
CREATE TABLE bench_param_key AS
  SELECT res_type, param, (row_number() OVER ())::int AS param_key FROM (
    SELECT res_type, param FROM search_string UNION SELECT res_type, param FROM search_token
    UNION SELECT res_type, param FROM search_date UNION SELECT res_type, param FROM search_number
    UNION SELECT res_type, param FROM search_quantity UNION SELECT res_type, param FROM search_reference
    UNION SELECT res_type, param FROM search_uri) p;
CREATE UNIQUE INDEX ON bench_param_key (res_type, param);
\copy (SELECT k.res_key, p.param_key, t.value_norm, t.value_exact FROM search_string t JOIN bench_res_key k USING (res_type, res_id) JOIN bench_param_key p USING (res_type, param) ORDER BY k.res_key) TO '$work/int_string.copy'
\copy (SELECT k.res_key, p.param_key, t.system, t.code, t.display, t.grp FROM search_token t JOIN bench_res_key k USING (res_type, res_id) JOIN bench_param_key p USING (res_type, param) ORDER BY k.res_key) TO '$work/int_token.copy'
\copy (SELECT k.res_key, p.param_key, t.low, t.high, t.grp FROM search_date t JOIN bench_res_key k USING (res_type, res_id) JOIN bench_param_key p USING (res_type, param) ORDER BY k.res_key) TO '$work/int_date.copy'
\copy (SELECT k.res_key, p.param_key, t.value, t.low, t.high, t.grp FROM search_number t JOIN bench_res_key k USING (res_type, res_id) JOIN bench_param_key p USING (res_type, param) ORDER BY k.res_key) TO '$work/int_number.copy'
\copy (SELECT k.res_key, p.param_key, t.value, t.low, t.high, t.system, t.code, t.unit, t.grp FROM search_quantity t JOIN bench_res_key k USING (res_type, res_id) JOIN bench_param_key p USING (res_type, param) ORDER BY k.res_key) TO '$work/int_quantity.copy'
\copy (SELECT k.res_key, p.param_key, t.target_type, t.target_id, t.target_version, t.url, t.grp FROM search_reference t JOIN bench_res_key k USING (res_type, res_id) JOIN bench_param_key p USING (res_type, param) ORDER BY k.res_key) TO '$work/int_reference.copy'
\copy (SELECT k.res_key, p.param_key, t.value FROM search_uri t JOIN bench_res_key k USING (res_type, res_id) JOIN bench_param_key p USING (res_type, param) ORDER BY k.res_key) TO '$work/int_uri.copy'
\copy (SELECT res_key, '{' || string_agg(h::text, ',') || '}' FROM (SELECT k.res_key, hashtextextended(t.res_type || '|' || t.param || '|' || t.code, 0) AS h FROM search_token t JOIN bench_res_key k USING (res_type, res_id) UNION ALL SELECT k.res_key, hashtextextended(t.res_type || '|' || t.param || '|' || t.system || '|' || t.code, 0) FROM search_token t JOIN bench_res_key k USING (res_type, res_id) UNION ALL SELECT k.res_key, hashtextextended(t.res_type || '|' || t.param || '|' || t.target_type || '/' || t.target_id, 0) FROM search_reference t JOIN bench_res_key k USING (res_type, res_id)) x GROUP BY res_key ORDER BY res_key) TO '$work/gin_keys.copy'
DROP TABLE bench_res_key, bench_param_key;
SQL

# ---- timed COPYs -----------------------------------------------------------------------------

# time_copy NAME DDL FILE: the best of ROUNDS COPYs of FILE into the table
# x.t that DDL creates (in a new schema x), in seconds.
time_copy() {
    local name="$1" ddl="$2" file="$3" best="" s t0 t1
    for ((round = 0; round < ROUNDS; ++round)); do
        "${psql[@]}" -c "DROP SCHEMA IF EXISTS x CASCADE" -c "CREATE SCHEMA x" -c "$ddl" -c "CHECKPOINT" 2>/dev/null
        t0="$(date +%s.%N)"
        "${psql[@]}" -c "\\copy x.t FROM '$file'"
        t1="$(date +%s.%N)"
        s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
        if [[ -z "$best" ]] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best="$s"; fi
    done
    printf '%-10s %-18s %9d rows %8s s\n' "${name%%/*}" "${name#*/}" "$(wc -l <"$file")" "$best" | tee -a "$work/times.txt"
}

int_table() { # columns of an int-keys table
    printf 'CREATE TABLE x.t (res_key bigint NOT NULL, param_key int NOT NULL, %s)' "$1"
}

pg_info "timing one COPY per table and layout (best of $ROUNDS)"
: >"$work/times.txt"
time_copy "raw/bench_raw" "CREATE TABLE x.t (res_type text NOT NULL, res_id text NOT NULL, content json NOT NULL)" \
    "$data/resources.copy"
for t in "${tables[@]}"; do
    time_copy "current/$t" "CREATE TABLE x.t (LIKE public.$t INCLUDING ALL)" "$work/$t.copy"
done
c='COLLATE "C" NOT NULL'
time_copy "int-keys/search_string" "$(int_table "value_norm text $c, value_exact text $c");
    CREATE INDEX ON x.t (param_key, value_norm text_pattern_ops); CREATE INDEX ON x.t (res_key)" "$work/int_string.copy"
time_copy "int-keys/search_token" "$(int_table "system text $c, code text $c, display text NOT NULL, grp int NOT NULL");
    CREATE INDEX ON x.t (param_key, code, system); CREATE INDEX ON x.t (res_key)" "$work/int_token.copy"
time_copy "int-keys/search_date" "$(int_table "low timestamptz NOT NULL, high timestamptz NOT NULL, grp int NOT NULL");
    CREATE INDEX ON x.t (param_key, low); CREATE INDEX ON x.t (param_key, high); CREATE INDEX ON x.t (res_key)" \
    "$work/int_date.copy"
time_copy "int-keys/search_number" "$(int_table "value numeric NOT NULL, low numeric NOT NULL, high numeric NOT NULL, grp int NOT NULL");
    CREATE INDEX ON x.t (param_key, value); CREATE INDEX ON x.t (res_key)" "$work/int_number.copy"
time_copy "int-keys/search_quantity" "$(int_table "value numeric NOT NULL, low numeric NOT NULL, high numeric NOT NULL,
    system text $c, code text $c, unit text NOT NULL, grp int NOT NULL");
    CREATE INDEX ON x.t (param_key, code, value); CREATE INDEX ON x.t (res_key)" "$work/int_quantity.copy"
time_copy "int-keys/search_reference" "$(int_table "target_type text $c, target_id text $c, target_version text NOT NULL,
    url text NOT NULL, grp int NOT NULL");
    CREATE INDEX ON x.t (param_key, target_id, target_type); CREATE INDEX ON x.t (res_key)" "$work/int_reference.copy"
time_copy "int-keys/search_uri" "$(int_table "value text $c");
    CREATE INDEX ON x.t (param_key, value); CREATE INDEX ON x.t (res_key)" "$work/int_uri.copy"
time_copy "gin/token+reference" "CREATE TABLE x.t (res_key bigint NOT NULL, keys int8[] NOT NULL);
    CREATE INDEX ON x.t USING gin (keys); CREATE INDEX ON x.t (res_key)" "$work/gin_keys.copy"

# ---- summary ---------------------------------------------------------------------------------

cores="$(nproc)"
echo
printf 'Storage layout benchmark: %s (SCALE=%s), one COPY per table, best of %d, %d cores\n' \
    "$(wc -l <"$work/resource.copy") resources" "$SCALE" "$ROUNDS" "$cores"
cat "$work/times.txt"
awk -v cores="$cores" '
    { s[$1 "/" $2] = $(NF - 1) }
    END {
        raw = s["raw/bench_raw"]
        base = s["current/resource"] + s["current/resource_history"]
        cur = 0; intk = 0
        for (k in s) {
            split(k, p, "/")
            if (p[1] == "current" && p[2] ~ /^search_/) cur += s[k]
            if (p[1] == "int-keys") intk += s[k]
        }
        gin = intk - s["int-keys/search_token"] - s["int-keys/search_reference"] + s["gin/token+reference"]
        printf "\nPostgreSQL seconds for the rows (resource and history: %.2f s, the same in every layout)\n", base
        printf "%-10s index tables %7.2f s, all %7.2f s; floor of a load on %d cores %6.2f s: ratio to raw COPY at most %.3f\n",
            "current", cur, base + cur, cores, (base + cur) / cores, raw / ((base + cur) / cores)
        printf "%-10s index tables %7.2f s, all %7.2f s; floor of a load on %d cores %6.2f s: ratio to raw COPY at most %.3f\n",
            "int-keys", intk, base + intk, cores, (base + intk) / cores, raw / ((base + intk) / cores)
        printf "%-10s index tables %7.2f s, all %7.2f s; floor of a load on %d cores %6.2f s: ratio to raw COPY at most %.3f\n",
            "gin", gin, base + gin, cores, (base + gin) / cores, raw / ((base + gin) / cores)
        printf "(raw COPY %.2f s; these floors count the server'"'"'s own CPU as nothing)\n", raw
    }' "$work/times.txt"
