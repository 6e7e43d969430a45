#!/usr/bin/env bash
# Read benchmark, run by hand (`make bench`): GET /fhir/Patient/{id} through the EDS server
# (wrk) versus the same SELECT on raw PostgreSQL (pgbench), same connection count.
# DURATION (s, default 10) per run, ROUNDS (default 3) alternating runs of each side;
# the last line printed is "ratio server/raw: X.XX".
# COMPARE_AUDIT=1: the baseline is the same server with auditing off (a second
# server on the same database) instead of raw PostgreSQL; the last line is then
# "ratio audit on/off: X.XX", after the CPU time per request of each server
# and of PostgreSQL (all its processes) on either side.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG_LOG_TAG="read_bench"
# shellcheck source=deploy/pg_common.sh
source "$repo_root/deploy/pg_common.sh"

DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || pg_die "ROUNDS must be a positive number"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || pg_die "DURATION must be a positive number of seconds"
PATIENTS=10000
CONNECTIONS=16
THREADS=2
# Server shape; override to compare configurations.
SERVER_THREADS="${SERVER_THREADS:-0}"  # 0: the server's default
SERVER_POOL="${SERVER_POOL:-$CONNECTIONS}"
COMPARE_AUDIT="${COMPARE_AUDIT:-0}"

bin="${EDS_BIN:-$repo_root/build/release/eds}"
bench_dir="$repo_root/tests/bench"
state_dir="$repo_root/build/bench-pg"
pg_lock_benchmark
pg_lock_state_dir "$state_dir"
work="$repo_root/build/bench"

[[ -x "$bin" ]] || pg_die "server binary '$bin' not found; run 'make build' first"
pg_require_bins
[[ -x "$PG_BIN/pgbench" ]] || pg_die "$PG_BIN/pgbench not found (postgresql-15 package)"
for tool in wrk curl awk sort; do
    command -v "$tool" >/dev/null || pg_die "'$tool' is required (run 'make setup')"
done

server_pid=""
server2_pid=""
cleanup() {
    local rc=$?
    trap '' INT TERM
    [[ -z "$server2_pid" ]] || kill -TERM "$server2_pid" 2>/dev/null || true
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

server_log() {
    pg_info "last lines of the server log ($work/server.log):"
    tail -n 30 "$work/server.log" >&2 || true
}

# ---- database and server -------------------------------------------------

bash "$repo_root/tests/pg_fixture.sh" start "$state_dir"
dsn="$(<"$state_dir/dsn")"
psql=("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$dsn")

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

base2=""
if [[ "$COMPARE_AUDIT" == 1 ]]; then
    port2="$(pg_pick_free_port)"
    base2="http://127.0.0.1:$port2"
    pg_info "starting the baseline server (auditing off) on $base2"
    "$bin" serve --database-url "$dsn" --port "$port2" --threads "$SERVER_THREADS" --audit off \
        --pool-size "$SERVER_POOL" --log-level warn >"$work/server2.log" 2>&1 &
    server2_pid=$!
    for ((i = 0; i < 600; i++)); do
        curl -sf -o /dev/null "$base2/fhir/metadata" && break
        kill -0 "$server2_pid" 2>/dev/null || pg_die "the baseline server exited during startup"
        sleep 0.1
    done
fi

# ---- load patients ---------------------------------------------------------

# One curl process performs all PUTs over keep-alive connections (--parallel);
# each transfer is described in a generated config file.
pg_info "loading $PATIENTS patients"
awk -v n="$PATIENTS" -v base="$base" '
function q(s) { gsub(/"/, "\\\"", s); return "\"" s "\"" }
# Three letters of the fiscal code from a surname or given name (consonants first).
function cf3(s, given,    i, ch, cons, vow) {
    s = toupper(s)
    for (i = 1; i <= length(s); i++) {
        ch = substr(s, i, 1)
        if (index("AEIOU", ch)) vow = vow ch; else cons = cons ch
    }
    if (given && length(cons) >= 4) return substr(cons, 1, 1) substr(cons, 3, 2)
    return substr(cons vow "XXX", 1, 3)
}
BEGIN {
    nf = split("Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco " \
               "Bruno Gallo Conti Mancini Costa Giordano Rizzo Lombardi Moretti Barbieri", fam, " ")
    nm = split("Marco Giuseppe Luca Francesco Alessandro Andrea Matteo Lorenzo Davide Stefano", male, " ")
    nw = split("Giulia Francesca Sara Chiara Martina Anna Elena Laura Valentina Paola", female, " ")
    nc = split("Roma:H501:00184 Milano:F205:20121 Napoli:F839:80133 Torino:L219:10121 " \
               "Bologna:A944:40121 Firenze:D612:50122 Genova:D969:16121 Palermo:G273:90133", city, " ")
    split("Via Roma|Corso Italia|Via Garibaldi|Via Mazzini|Piazza Duomo|Via Verdi", street, "|")
    months = "ABCDEHLMPRST"
    for (i = 0; i < n; i++) {
        fem = i % 2
        family = fam[i % nf + 1]
        given = fem ? female[int(i / 2) % nw + 1] : male[int(i / 2) % nm + 1]
        year = 1930 + (i * 7) % 80
        month = (i * 5) % 12 + 1
        day = (i * 3) % 28 + 1
        split(city[int(i / 3) % nc + 1], c, ":")
        cf = sprintf("%s%s%02d%s%02d%s%s", cf3(family, 0), cf3(given, 1),
                     year % 100, substr(months, month, 1), day + (fem ? 40 : 0), c[2],
                     substr("ABCDEFGHIJKLMNOPQRSTUVWXYZ", i % 26 + 1, 1))
        body = sprintf("{\"resourceType\":\"Patient\",\"id\":\"bench-%d\"," \
            "\"identifier\":[{\"use\":\"official\",\"system\":\"http://hl7.it/sid/codiceFiscale\",\"value\":\"%s\"}]," \
            "\"active\":true," \
            "\"name\":[{\"use\":\"official\",\"family\":\"%s\",\"given\":[\"%s\"]}]," \
            "\"telecom\":[{\"system\":\"phone\",\"value\":\"+39 3%02d %07d\",\"use\":\"mobile\"}]," \
            "\"gender\":\"%s\",\"birthDate\":\"%04d-%02d-%02d\"," \
            "\"address\":[{\"use\":\"home\",\"type\":\"physical\",\"line\":[\"%s %d\"],\"city\":\"%s\"," \
            "\"postalCode\":\"%s\",\"country\":\"IT\"}]}",
            i, cf, family, given, i % 100, (i * 7919) % 10000000, fem ? "female" : "male",
            year, month, day, street[i % 6 + 1], i % 200 + 1, c[1], c[3])
        if (i > 0) print "next"
        print "url = " q(base "/fhir/Patient/bench-" i)
        print "request = \"PUT\""
        print "header = \"Content-Type: application/fhir+json\""
        print "header = \"Accept: application/fhir+json\""
        print "data-binary = " q(body)
        print "output = \"/dev/null\""
        print "write-out = \"%{http_code} %{url_effective}\\n\""
        print "silent"
        print "show-error"
    }
}' >"$work/load.curl"

load_start=$SECONDS
if ! curl -sS --parallel --parallel-max "$CONNECTIONS" -K "$work/load.curl" >"$work/load.out" 2>"$work/load.err"; then
    cat "$work/load.err" >&2
    server_log
    pg_die "loading patients failed (curl)"
fi
ok="$(awk '$1 ~ /^2[0-9][0-9]$/' "$work/load.out" | wc -l)"
if ((ok != PATIENTS)); then
    awk '$1 !~ /^2[0-9][0-9]$/' "$work/load.out" | head -n 5 >&2
    server_log
    pg_die "only $ok of $PATIENTS PUT requests succeeded"
fi
stored="$("${psql[@]}" -c "SELECT count(*) FROM resource WHERE res_type='Patient' AND res_id LIKE 'bench-%'")"
((stored == PATIENTS)) || pg_die "expected $PATIENTS bench patients in the database, found $stored"
pg_info "loaded $stored patients in $((SECONDS - load_start)) s"
rm -f -- "$work/load.curl" "$work/load.out"
"${psql[@]}" -c "VACUUM ANALYZE resource"
# Let the writes of the load settle before measuring anything.
"${psql[@]}" -c "CHECKPOINT"

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

# (a) the server, through wrk. Prints "rps p50 p99".
run_server() {
    local seconds="$1" out="$work/wrk.$2.out" target="${3:-$base}"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${seconds}s" --latency \
        -s "$bench_dir/random_patient.lua" "$target" >"$out"
    # wrk prints this line only when some responses were not 2xx/3xx.
    local non2xx
    non2xx="$(awk '/^ *Non-2xx or 3xx responses:/ { print $NF }' "$out")"
    [[ -z "$non2xx" ]] || pg_die "server answered $non2xx requests with a status outside 2xx/3xx"
    if grep -q '^ *Socket errors:' "$out"; then
        pg_die "wrk reported socket errors: $(grep '^ *Socket errors:' "$out")"
    fi
    local rps p50 p99
    rps="$(awk '$1 == "Requests/sec:" { print $2 }' "$out")"
    [[ -n "$rps" ]] || pg_die "no Requests/sec in wrk output"
    p50="$(wrk_ms 50% "$out")" || pg_die "no 50% latency in wrk output"
    p99="$(wrk_ms 99% "$out")" || pg_die "no 99% latency in wrk output"
    echo "$rps $p50 $p99"
}

# (b) raw PostgreSQL, the same SELECT through pgbench. Prints "tps p50 p99".
# With COMPARE_AUDIT=1, the server with auditing off instead.
run_raw() {
    if [[ "$COMPARE_AUDIT" == 1 ]]; then
        run_server "$1" "off.$2" "$base2"
        return
    fi
    local seconds="$1" out="$work/pgbench.$2.out"
    rm -f -- "$work"/pgbench_log.*
    (cd "$work" && "$PG_BIN/pgbench" -n -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$seconds" \
        -f "$bench_dir/read_patient.sql" -l --log-prefix="$work/pgbench_log" "$dsn") >"$out" 2>&1 ||
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

# CPU accounting (COMPARE_AUDIT=1): the CPU time a server process and the
# PostgreSQL processes use during a round, per request answered, shows
# where auditing costs (this machine runs everything on the same cores).
clk_tck="$(getconf CLK_TCK)"
cpu_snapshot() {  # "pid ticks" of the postgres processes, then "server ticks" of $1
    awk '$2 == "(postgres)" { print $1, $14 + $15 }' /proc/[0-9]*/stat 2>/dev/null || true
    [[ -z "$1" ]] || awk '{ print "server", $14 + $15 }' "/proc/$1/stat"
}
cpu_delta() {  # seconds of CPU between two snapshots: "<server> <postgres>"; postgres
    # processes count when alive at both ends
    awk -v t="$clk_tck" 'NR == FNR { a[$1] = $2; next }
        ($1 in a) { d = $2 - a[$1]; if ($1 == "server") s += d; else p += d }
        END { printf "%.3f %.3f\n", s / t, p / t }' "$1" "$2"
}

# Warm both paths up (caches, connections, plans), then alternate the two
# measurements ROUNDS times, so that drift in the machine's load affects
# both alike; the summary is the mean of the rounds.
pg_info "warming up"
run_server 2 warmup >/dev/null
run_raw 2 warmup >/dev/null
: >"$work/results"
for ((round = 1; round <= ROUNDS; round++)); do
    pg_info "round $round/$ROUNDS: server (wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s)"
    cpu_snapshot "$server_pid" >"$work/cpu.before"
    measured="$(run_server "$DURATION" "$round")"
    cpu_snapshot "$server_pid" >"$work/cpu.after"
    echo "server $measured $(cpu_delta "$work/cpu.before" "$work/cpu.after")" | tee -a "$work/results"
    pg_info "round $round/$ROUNDS: baseline ($([[ "$COMPARE_AUDIT" == 1 ]] && echo "server, auditing off" || echo "raw PostgreSQL, pgbench -c $CONNECTIONS -j $THREADS -T $DURATION"))"
    cpu_snapshot "$server2_pid" >"$work/cpu.before"
    measured="$(run_raw "$DURATION" "$round")"
    cpu_snapshot "$server2_pid" >"$work/cpu.after"
    echo "raw $measured $(cpu_delta "$work/cpu.before" "$work/cpu.after")" | tee -a "$work/results"
done

# ---- summary ---------------------------------------------------------------------

echo
printf 'Read benchmark: %d patients, %d connections, %d load threads, %d x %d s per side\n' \
    "$PATIENTS" "$CONNECTIONS" "$THREADS" "$ROUNDS" "$DURATION"
awk '
    { n[$1]++; r[$1] += $2; p50[$1] += $3; p99[$1] += $4; es[$1] += $5; ps[$1] += $6 }
    END {
        printf "%-32s %14s %10s %10s\n", "", "throughput/s", "p50 (ms)", "p99 (ms)"
        printf "%-32s %14.1f %10.3f %10.3f\n", "server GET /fhir/Patient/{id}", r["server"] / n["server"], p50["server"] / n["server"], p99["server"] / n["server"]
        printf "%-32s %14.1f %10.3f %10.3f\n", audit ? "server, auditing off" : "raw PostgreSQL SELECT", r["raw"] / n["raw"], p50["raw"] / n["raw"], p99["raw"] / n["raw"]
        if (audit) {
            # CPU per request answered (rounds of equal length: the throughputs weigh them)
            printf "CPU per request (us): auditing on: server %.1f, PostgreSQL %.1f; off: server %.1f, PostgreSQL %.1f\n",
                es["server"] * 1e6 / (r["server"] * d), ps["server"] * 1e6 / (r["server"] * d),
                es["raw"] * 1e6 / (r["raw"] * d), ps["raw"] * 1e6 / (r["raw"] * d)
            printf "ratio audit on/off: %.2f\n", (r["server"] / n["server"]) / (r["raw"] / n["raw"])
        }
        else printf "ratio server/raw: %.2f\n", (r["server"] / n["server"]) / (r["raw"] / n["raw"])
    }' audit="$([[ "$COMPARE_AUDIT" == 1 ]] && echo 1 || echo 0)" d="$DURATION" "$work/results"
