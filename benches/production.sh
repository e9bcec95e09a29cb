#!/usr/bin/env bash
# Benchmarks Jangteo on its production backends (PostgreSQL 15 + Redis + a Kafka
# broker, all on loopback via scripts/stack), next to the embedded SQLite setup in the
# same run:
#
#   1. catalog reads (wrk, like benches/run.sh): GET /store/products?limit=20 and
#      GET /store/products/{id} at 50 connections, SQLite and PostgreSQL interleaved;
#   2. cart completion on PostgreSQL against `pgbench -N` on the same cluster at the
#      same client count (CLIENTS): the whole flow (loadgen --flow checkout: create,
#      add, address, complete) and `complete` alone on carts filled beforehand
#      (loadgen --flow complete, PREPARED carts per user, not timed);
#   3. outbox -> Kafka latency (sent_at - occurred_at) over the events of each checkout
#      and each completion-only run (the latter places orders faster), with the order
#      rate of that run;
#   4. relay throughput on a backlog: server without relay, >= BACKLOG unsent events,
#      then `jangteo worker`, timed until the outbox is empty.
#
#   benches/production.sh                 # ~10 minutes after the build
#   REPEAT=3 benches/production.sh        # every wrk / checkout / pgbench run 3 times
#   SKIP_BUILD=1 benches/production.sh    # reuse target/release/{jangteo,loadgen}
#
# Knobs (environment): REPEAT (1), WRK_DURATION (15s), WARMUP (3s), SEED_PRODUCTS
# (1000), SEED_VARIANTS (4), CLIENTS (50: checkout users = pgbench clients),
# CHECKOUT_DURATION (15s), COMPLETE_DURATION (10s), PREPARED (300), PGBENCH_SECONDS (15), PGBENCH_SCALE (10), PG_POOL (32:
# JANGTEO__DATABASE__MAX_CONNECTIONS), BACKLOG (20000), WAIT_QUIET (1: before each
# measurement wait until no rustc / cargo / cargo-nextest runs and the CPU is calm),
# QUIET_CPU (30: % of one core counted as calm, the idle stack included), QUIET_MAX
# (1200 s), SKIP_BUILD (0), OUT (target/bench-results/production-<timestamp>),
# BENCH_RUST_LOG (warn).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REPEAT=${REPEAT:-1}
WRK_DURATION=${WRK_DURATION:-15s}
WARMUP=${WARMUP:-3s}
SEED_PRODUCTS=${SEED_PRODUCTS:-1000}
SEED_VARIANTS=${SEED_VARIANTS:-4}
CLIENTS=${CLIENTS:-50}
CHECKOUT_DURATION=${CHECKOUT_DURATION:-15s}
COMPLETE_DURATION=${COMPLETE_DURATION:-10s}
PREPARED=${PREPARED:-300}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-15}
PGBENCH_SCALE=${PGBENCH_SCALE:-10}
PG_POOL=${PG_POOL:-32}
BACKLOG=${BACKLOG:-20000}
WAIT_QUIET=${WAIT_QUIET:-1}
QUIET_CPU=${QUIET_CPU:-30}
QUIET_MAX=${QUIET_MAX:-1200}
SKIP_BUILD=${SKIP_BUILD:-0}
LOG_LEVEL=${BENCH_RUST_LOG:-warn}
OUT=${OUT:-$ROOT/target/bench-results/production-$(date +%Y%m%d-%H%M%S)}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

BIN=$ROOT/target/release/jangteo
LOADGEN=$ROOT/target/release/loadgen
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
: >"$OUT/quiet.txt"

say() { printf '\n== %s\n' "$*"; }
die() { printf 'production.sh: %s\n' "$*" >&2; exit 1; }
now_us() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# --- build -------------------------------------------------------------------------
if [ "$SKIP_BUILD" != 1 ]; then
  say "cargo build --release -p jangteo-server -p jangteo-loadgen"
  cargo build --release -p jangteo-server -p jangteo-loadgen
fi
[ -x "$BIN" ] || die "$BIN is missing"
[ -x "$LOADGEN" ] || die "$LOADGEN is missing"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
command -v jq >/dev/null || die "jq is missing"
PGBENCH=$PG_BIN/pgbench
[ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench) || die "pgbench not found"
PSQL=$PG_BIN/psql
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "psql not found"

# --- ports, processes, cleanup -------------------------------------------------------
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
if [ "${EPHEMERAL_LOW:-0}" -gt 12000 ]; then PORT_LOW=10000; PORT_SPAN=$((EPHEMERAL_LOW - 10000)); else PORT_LOW=61000; PORT_SPAN=4000; fi
USED_PORTS=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((PORT_LOW + RANDOM % PORT_SPAN))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
    USED_PORTS="$USED_PORTS$p "
    echo "$p"
    return 0
  done
  die "no free port found"
}

STACK_DIR=$(mktemp -d /tmp/jangteo-bench-XXXX)
SQLITE_DATA=$(mktemp -d /tmp/jangteo-bench-sqlite.XXXXXX)
PG_DATA=$(mktemp -d /tmp/jangteo-bench-pgdata.XXXXXX)
PIDS=()

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  JANGTEO_STACK_DIR=$STACK_DIR scripts/stack down >/dev/null 2>&1 || true
  rm -rf "$SQLITE_DATA" "$PG_DATA"
}
trap cleanup EXIT

ready() { # port
  local line=
  { printf 'GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
      IFS= read -r -t 2 line <&3; } 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  [[ $line == "HTTP/1.1 200"* ]]
}

# start_serve NAME STORE_PORT ADMIN_PORT DATA_DIR [VAR=value...]: sets LAST_PID.
start_serve() {
  local name=$1 sp=$2 ap=$3 dd=$4 deadline
  shift 4
  env "$@" RUST_LOG="$LOG_LEVEL" "$BIN" serve --demo --data-dir "$dd" \
    --store-addr "127.0.0.1:$sp" --admin-addr "127.0.0.1:$ap" >"$OUT/server-$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  deadline=$(($(now_us) + 60000000))
  until ready "$sp"; do
    kill -0 "$LAST_PID" 2>/dev/null || { tail -30 "$OUT/server-$name.log" >&2; die "server $name exited"; }
    [ "$(now_us)" -lt "$deadline" ] || die "server $name not ready within 60 s"
    sleep 0.05
  done
}

# --- CPU accounting and quiet waits ------------------------------------------------
TICKS=$(getconf CLK_TCK)
cpu_total() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_begin() { CPU_PID=$1; C0_TOT=$(cpu_total); C0_SRV=$(cpu_of "$CPU_PID"); C0_T=$(now_us); }
cpu_end() { # sets SRV_CPU, OTHER_CPU (% of one core)
  local tot srv t
  tot=$(cpu_total); srv=$(cpu_of "$CPU_PID"); t=$(now_us)
  SRV_CPU=$(awk -v d=$((srv - C0_SRV)) -v us=$((t - C0_T)) -v hz="$TICKS" 'BEGIN {printf "%.0f", d / hz / (us / 1e6) * 100}')
  OTHER_CPU=$(awk -v d=$((tot - C0_TOT - srv + C0_SRV)) -v us=$((t - C0_T)) -v hz="$TICKS" 'BEGIN {printf "%.0f", d / hz / (us / 1e6) * 100}')
}
builds_running() { pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null || pgrep -x cargo-nextest >/dev/null; }

# wait_quiet LABEL: waits (at most QUIET_MAX s) until 5 calm seconds in a row: no
# rustc / cargo / cargo-nextest process and less than QUIET_CPU % of one core busy.
# Logs how long it waited and how busy the last second was to quiet.txt.
wait_quiet() {
  local label=$1 calm=0 waited=0 t0 t1 busy=0 b=no
  [ "$WAIT_QUIET" = 1 ] || { echo "$label waited=0 quiet=unchecked" >>"$OUT/quiet.txt"; return 0; }
  while [ "$calm" -lt 5 ] && [ "$waited" -lt "$QUIET_MAX" ]; do
    t0=$(cpu_total); sleep 1; t1=$(cpu_total)
    busy=$(((t1 - t0) * 100 / TICKS))
    if builds_running || [ "$busy" -ge "$QUIET_CPU" ]; then calm=0; else calm=$((calm + 1)); fi
    waited=$((waited + 1))
  done
  builds_running && b=yes
  echo "$label waited=${waited}s last_busy=${busy}% builds_at_start=$b" >>"$OUT/quiet.txt"
  [ "$waited" -le 5 ] || echo "(waited ${waited} s for a quiet machine; builds running now: $b)"
}

to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.2f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else print v }'
}

# load NAME BASE_URL PATH CONNS PID: one wrk run; appends a row to load-rows.txt.
load() {
  local name=$1 base=$2 path=$3 conns=$4 pid=$5 f rps p50 p99 non2xx sockerr
  f=$OUT/$name.txt
  wait_quiet "$name"
  cpu_begin "$pid"
  wrk -t1 -c"$conns" -d"$WRK_DURATION" --latency "$base$path" >"$f" 2>&1
  cpu_end
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$f")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$f")
  sockerr=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$f")
  printf '%-24s %5s %9s %8s %8s %7s %7s %5s %5s\n' "$name" "$conns" "${rps:-?}" "${p50:-?}" "${p99:-?}" \
    "${non2xx:-0}" "${sockerr:-0}" "$SRV_CPU" "$OTHER_CPU" | tee -a "$OUT/load-rows.txt"
}

# --- machine -----------------------------------------------------------------------
{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)   commit: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "uptime:  $(uptime)"
} | tee -a "$SUMMARY"

# --- the stack ---------------------------------------------------------------------
say "scripts/stack up (in $STACK_DIR)"
JANGTEO_STACK_DIR=$STACK_DIR scripts/stack up >"$OUT/stack-env.txt" 2>"$OUT/stack-up.log" ||
  { cat "$OUT/stack-up.log" >&2; die "stack up failed"; }
PG_PORT=$(cat "$STACK_DIR/postgres.port")
REDIS_URL=redis://127.0.0.1:$(cat "$STACK_DIR/redis.port")
KAFKA=127.0.0.1:$(cat "$STACK_DIR/kafka.port")
pg() { # DB SQL...: one value per line, no headers
  local db=$1
  shift
  "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" -c "$*"
}
pg postgres "CREATE DATABASE jangteo TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
pg postgres "CREATE DATABASE pgbench TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
echo "postgres 127.0.0.1:$PG_PORT ($("$PG_BIN/postgres" --version)), $REDIS_URL ($(redis-server --version | awk '{print $3}')), kafka (tansu, sqlite engine) $KAFKA" | tee -a "$SUMMARY"

PG_ENV=(
  "JANGTEO__DATABASE__URL=postgres://postgres@127.0.0.1:$PG_PORT/jangteo"
  "JANGTEO__DATABASE__MAX_CONNECTIONS=$PG_POOL"
  "JANGTEO__CACHE__URL=$REDIS_URL"
  "JANGTEO__EVENTS__KAFKA_BROKERS=$KAFKA"
)

# --- both servers, seeded ------------------------------------------------------------
SQ_STORE_PORT=$(free_port); SQ_ADMIN_PORT=$(free_port)
PG_STORE_PORT=$(free_port); PG_ADMIN_PORT=$(free_port)
SQ=http://127.0.0.1:$SQ_STORE_PORT
PGS=http://127.0.0.1:$PG_STORE_PORT

say "embedded server (SQLite) on :$SQ_STORE_PORT, seeding $SEED_PRODUCTS x $SEED_VARIANTS"
start_serve sqlite "$SQ_STORE_PORT" "$SQ_ADMIN_PORT" "$SQLITE_DATA"
SQ_PID=$LAST_PID
"$LOADGEN" seed --admin "http://127.0.0.1:$SQ_ADMIN_PORT" --products "$SEED_PRODUCTS" --variants "$SEED_VARIANTS" >"$OUT/seed-sqlite.txt"
tail -2 "$OUT/seed-sqlite.txt"

say "production server (PostgreSQL pool $PG_POOL + Redis + Kafka) on :$PG_STORE_PORT, seeding"
start_serve pg "$PG_STORE_PORT" "$PG_ADMIN_PORT" "$PG_DATA" "${PG_ENV[@]}"
PG_PID=$LAST_PID
"$LOADGEN" seed --admin "http://127.0.0.1:$PG_ADMIN_PORT" --products "$SEED_PRODUCTS" --variants "$SEED_VARIANTS" >"$OUT/seed-pg.txt"
tail -2 "$OUT/seed-pg.txt"

SQ_PRODUCT=$(curl -fsS "$SQ/store/products?limit=1" | jq -r '.products[0].id')
PG_PRODUCT=$(curl -fsS "$PGS/store/products?limit=1" | jq -r '.products[0].id')
for u in "$SQ/store/products?limit=20" "$PGS/store/products?limit=20" "$SQ/store/products/$SQ_PRODUCT" "$PGS/store/products/$PG_PRODUCT"; do
  curl -fsS -o /dev/null -w "%{http_code} %{size_download} bytes  $u\n" "$u"
done | tee -a "$OUT/bodies.txt"

# --- 1. catalog reads, interleaved -----------------------------------------------------
say "warm-up (wrk -c50 -d$WARMUP on each listing and detail, not recorded)"
for u in "$SQ/store/products?limit=20" "$PGS/store/products?limit=20" "$SQ/store/products/$SQ_PRODUCT" "$PGS/store/products/$PG_PRODUCT"; do
  wrk -t1 -c50 -d"$WARMUP" "$u" >/dev/null 2>&1 || true
done
: >"$OUT/load-rows.txt"
for i in $(seq 1 "$REPEAT"); do
  say "[$i/$REPEAT] catalog reads, 50 connections (run / conns / req/s / p50 / p99 / non-2xx / sockerr / srv% / oth%)"
  load "sqlite-list-run$i" "$SQ" "/store/products?limit=20" 50 "$SQ_PID"
  load "pg-list-run$i" "$PGS" "/store/products?limit=20" 50 "$PG_PID"
  load "sqlite-detail-run$i" "$SQ" "/store/products/$SQ_PRODUCT" 50 "$SQ_PID"
  load "pg-detail-run$i" "$PGS" "/store/products/$PG_PRODUCT" 50 "$PG_PID"
done
say "stopping the SQLite server"
stop_pid "$SQ_PID"

# --- 2 + 3. checkout vs pgbench -N, outbox latency --------------------------------------
say "pgbench -i -s $PGBENCH_SCALE (database pgbench)"
"$PGBENCH" -i -q -s "$PGBENCH_SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres pgbench >"$OUT/pgbench-init.txt" 2>&1 ||
  { cat "$OUT/pgbench-init.txt" >&2; die "pgbench -i failed"; }
: >"$OUT/checkout-rows.txt"
: >"$OUT/pgbench-rows.txt"
: >"$OUT/complete-rows.txt"
: >"$OUT/outbox-rows.txt"
: >"$OUT/outbox-complete-rows.txt"

# outbox_latency LABEL T0 T1 ORDERS_S FILE: waits (<= 60 s) until the relay has sent the
# outbox rows that occurred between T0 and T1, then appends their commit -> broker
# acknowledgement latency (sent_at - occurred_at) to FILE. events/s is taken from the
# first to the last event of the window.
outbox_latency() {
  local label=$1 w="occurred_at >= '$2' AND occurred_at <= '$3'" orders=$4 file=$5
  for _ in $(seq 1 300); do
    [ "$(pg jangteo "SELECT count(*) FROM outbox WHERE $w AND sent_at IS NULL")" = 0 ] && break
    sleep 0.2
  done
  pg jangteo "SELECT count(*), count(sent_at),
      round(count(*) / nullif(extract(epoch FROM max(occurred_at) - min(occurred_at)), 0))::int,
      round(1000 * extract(epoch FROM percentile_disc(0.5) WITHIN GROUP (ORDER BY sent_at - occurred_at)), 1),
      round(1000 * extract(epoch FROM percentile_disc(0.99) WITHIN GROUP (ORDER BY sent_at - occurred_at)), 1),
      round(1000 * extract(epoch FROM max(sent_at - occurred_at)), 1)
    FROM outbox WHERE $w" |
    awk -F'|' -v l="$label" -v o="$orders" '{printf "%s events=%s sent=%s events/s=%s p50_ms=%s p99_ms=%s max_ms=%s at_orders/s=%s\n", l, $1, $2, $3, $4, $5, $6, o}' |
    tee -a "$file"
}
for i in $(seq 1 "$REPEAT"); do
  say "[$i/$REPEAT] loadgen mix --flow checkout --users $CLIENTS --duration $CHECKOUT_DURATION (PostgreSQL)"
  wait_quiet "checkout-run$i"
  T0=$(pg jangteo "SELECT clock_timestamp()")
  C0=$(pg jangteo "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
  cpu_begin "$PG_PID"
  "$LOADGEN" mix --store "$PGS" --users "$CLIENTS" --duration "$CHECKOUT_DURATION" --flow checkout \
    --json "$OUT/checkout-run$i.json" >"$OUT/checkout-run$i.txt"
  cpu_end
  T1=$(pg jangteo "SELECT clock_timestamp()")
  sleep 1 # cumulative statistics reach pg_stat_database within a second
  C1=$(pg jangteo "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
  ORDERS_S=$(jq -r .orders_per_s "$OUT/checkout-run$i.json")
  ERRS=$(jq -r .errors "$OUT/checkout-run$i.json")
  # Transactions Jangteo committed per second during the run (every request, the
  # relay and the consumers), to set against pgbench's transactions per second.
  TPS=$(pg jangteo "SELECT round(($C1 - $C0) / extract(epoch FROM timestamptz '$T1' - timestamptz '$T0'))::int")
  printf 'checkout-run%s %s orders/s errors=%s srv%%=%s oth%%=%s commits/s=%s\n' "$i" "$ORDERS_S" "$ERRS" "$SRV_CPU" "$OTHER_CPU" "$TPS" | tee -a "$OUT/checkout-rows.txt"

  outbox_latency "outbox-run$i" "$T0" "$T1" "$ORDERS_S" "$OUT/outbox-rows.txt"

  say "[$i/$REPEAT] loadgen mix --flow complete --users $CLIENTS --prepared $PREPARED --duration $COMPLETE_DURATION (PostgreSQL)"
  wait_quiet "complete-run$i"
  # loadgen fills the carts first (untimed) and times only `complete`; no CPU figures
  # here, since a window around the command would mix both phases. Filling carts writes
  # no events, so the outbox rows of the window are the completions' own.
  T0=$(pg jangteo "SELECT clock_timestamp()")
  "$LOADGEN" mix --store "$PGS" --users "$CLIENTS" --duration "$COMPLETE_DURATION" --flow complete \
    --prepared "$PREPARED" --json "$OUT/complete-run$i.json" >"$OUT/complete-run$i.txt"
  T1=$(pg jangteo "SELECT clock_timestamp()")
  ORDERS_S=$(jq -r .orders_per_s "$OUT/complete-run$i.json")
  printf 'complete-run%s %s orders/s errors=%s\n' "$i" "$ORDERS_S" \
    "$(jq -r .errors "$OUT/complete-run$i.json")" | tee -a "$OUT/complete-rows.txt"
  outbox_latency "outbox-complete-run$i" "$T0" "$T1" "$ORDERS_S" "$OUT/outbox-complete-rows.txt"

  say "[$i/$REPEAT] pgbench -N -c $CLIENTS -j 2 -T $PGBENCH_SECONDS"
  wait_quiet "pgbench-run$i"
  cpu_begin "$PG_PID"
  "$PGBENCH" -N -c "$CLIENTS" -j 2 -T "$PGBENCH_SECONDS" -h 127.0.0.1 -p "$PG_PORT" -U postgres pgbench \
    >"$OUT/pgbench-run$i.txt" 2>&1
  cpu_end
  TPS=$(awk '/^tps = / {printf "%.1f", $3; exit}' "$OUT/pgbench-run$i.txt")
  LAT=$(awk '/^latency average/ {print $4; exit}' "$OUT/pgbench-run$i.txt")
  printf 'pgbench-run%s %s tps latency_avg_ms=%s oth%%=%s\n' "$i" "$TPS" "$LAT" "$OTHER_CPU" | tee -a "$OUT/pgbench-rows.txt"
done
say "stopping the production server"
stop_pid "$PG_PID"

# --- 4. relay throughput on a backlog ---------------------------------------------------
say "server without relay (JANGTEO__EVENTS__RUN_WORKERS=false); backlog of >= $BACKLOG events"
start_serve pg-norelay "$PG_STORE_PORT" "$PG_ADMIN_PORT" "$PG_DATA" "${PG_ENV[@]}" JANGTEO__EVENTS__RUN_WORKERS=false
NR_PID=$LAST_PID
[ "$(pg jangteo "SELECT count(*) FROM outbox WHERE sent_at IS NULL")" = 0 ] || echo "(note: unsent rows before the backlog)"
# Real events first: orders placed while nothing relays.
"$LOADGEN" mix --store "$PGS" --users "$CLIENTS" --duration 10s --flow checkout \
  --json "$OUT/backlog-orders.json" >"$OUT/backlog-orders.txt"
REAL=$(pg jangteo "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
NEED=$((BACKLOG - REAL))
if [ "$NEED" -gt 0 ]; then
  # Top up with copies of the latest order/inventory envelopes: fresh event id (column
  # and envelope), occurred_at now; everything else as the server wrote it.
  pg jangteo "
    WITH src AS (
      SELECT event_type, aggregate_type, aggregate_id, envelope,
             row_number() OVER (ORDER BY seq DESC) AS rn
      FROM (SELECT * FROM outbox WHERE aggregate_type <> 'product' ORDER BY seq DESC LIMIT 5000) s
    ), n AS (SELECT count(*) AS n FROM src),
    gen AS (SELECT g, gen_random_uuid() AS id, clock_timestamp() AS at FROM generate_series(1, $NEED) g)
    INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, occurred_at, envelope)
    SELECT gen.id, src.event_type, src.aggregate_type, src.aggregate_id, gen.at,
           jsonb_set(jsonb_set(src.envelope::jsonb, '{id}', to_jsonb(gen.id::text)),
                     '{occurred_at}', to_jsonb(gen.at))::text
    FROM gen CROSS JOIN n JOIN src ON src.rn = 1 + (gen.g - 1) % n.n
    ORDER BY gen.g" >/dev/null
fi
PENDING=$(pg jangteo "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
echo "backlog: $PENDING unsent events ($REAL from $(jq -r .orders "$OUT/backlog-orders.json") real orders, the rest copies)" | tee "$OUT/backlog.txt"
pg jangteo "SELECT event_type, count(*) FROM outbox WHERE sent_at IS NULL GROUP BY 1 ORDER BY 2 DESC" | tee -a "$OUT/backlog.txt"
# The relay lease of the stopped server would hold the new worker off for up to 15 s.
pg jangteo "DELETE FROM outbox_leases" >/dev/null

say "jangteo worker: draining $PENDING events"
wait_quiet "relay"
WS=$(pg jangteo "SELECT clock_timestamp()")
T0=$(now_us)
# A relay-only worker: consumers run in their own processes in a split deployment, and
# on these 2 cores they would compete with the relay for the CPU (RELAY_CONSUMERS=1
# keeps them in).
env "${PG_ENV[@]}" JANGTEO__SERVER__DATA_DIR="$PG_DATA" RUST_LOG="$LOG_LEVEL" \
  JANGTEO__EVENTS__RUN_CONSUMERS="$([ "${RELAY_CONSUMERS:-0}" = 1 ] && echo true || echo false)" \
  "$BIN" worker >"$OUT/worker.log" 2>&1 &
WK_PID=$!
PIDS+=("$WK_PID")
cpu_begin "$WK_PID"
LEFT=$PENDING
DEADLINE=$((T0 + 900000000))
while [ "$(now_us)" -lt "$DEADLINE" ]; do
  LEFT=$(pg jangteo "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
  [ "$LEFT" = 0 ] && break
  kill -0 "$WK_PID" 2>/dev/null || { tail -20 "$OUT/worker.log" >&2; die "the worker exited"; }
  sleep 0.2
done
T1=$(now_us)
cpu_end
[ "$LEFT" = 0 ] || echo "(relay did not finish within 900 s: $LEFT left)"
WALL_S=$(awk -v d=$((T1 - T0)) 'BEGIN {printf "%.2f", d / 1e6}')
RELAY_RATE=$(awk -v n=$((PENDING - LEFT)) -v s="$WALL_S" 'BEGIN {printf "%.0f", n / s}')
STEADY=$(pg jangteo "SELECT count(*), round(extract(epoch FROM min(sent_at) - '$WS'), 2), round(extract(epoch FROM max(sent_at) - min(sent_at)), 2),
    round((count(*) - count(*) FILTER (WHERE sent_at = (SELECT min(sent_at) FROM outbox WHERE sent_at >= '$WS')))
          / nullif(extract(epoch FROM max(sent_at) - min(sent_at)), 0))::int
  FROM outbox WHERE sent_at >= '$WS'")
printf 'relay: %s events in %s s from worker launch = %s events/s; sent_at: count|first batch after launch s|first->last s|rate after first batch = %s; worker CPU %s%%, everything else %s%%\n' \
  "$((PENDING - LEFT))" "$WALL_S" "$RELAY_RATE" "$STEADY" "$SRV_CPU" "$OTHER_CPU" | tee "$OUT/relay.txt"
sleep 2
stop_pid "$WK_PID"
stop_pid "$NR_PID"

# --- summary -----------------------------------------------------------------------
med_col() { # FILE PREFIX COLUMN
  median $(awk -v p="$2" -v c="$3" 'index($1, p) == 1 {print $c}' "$1")
}
kv_med() { # FILE KEY: median of key=value fields
  median $(grep -o "$2=[0-9.]*" "$1" | cut -d= -f2)
}
{
  echo
  echo "uptime after the load: $(uptime)"
  echo "quiet waits (WAIT_QUIET=$WAIT_QUIET, calm = no rustc/cargo/cargo-nextest and < $QUIET_CPU % of one core for 5 s):"
  sed 's/^/  /' "$OUT/quiet.txt"
  echo
  echo "wrk -t1 -c50 -d$WRK_DURATION, $REPEAT run(s) each (run conns req/s p50 p99 non2xx sockerr srv% oth%):"
  sed 's/^/  /' "$OUT/load-rows.txt"
  echo
  for sc in list detail; do
    s=$(med_col "$OUT/load-rows.txt" "sqlite-$sc-" 3); p=$(med_col "$OUT/load-rows.txt" "pg-$sc-" 3)
    s99=$(med_col "$OUT/load-rows.txt" "sqlite-$sc-" 5); p99=$(med_col "$OUT/load-rows.txt" "pg-$sc-" 5)
    awk -v sc="$sc" -v s="$s" -v p="$p" -v s99="$s99" -v p99="$p99" 'BEGIN {
      printf "median %-6s SQLite %s req/s (p99 %s ms)  PostgreSQL %s req/s (p99 %s ms)  PG/SQLite %.0f %%  (budget >= 80 %%: %s)\n",
        sc, s, s99, p, p99, 100 * p / s, (p >= 0.8 * s ? "met" : "MISSED") }'
  done
  echo
  cat "$OUT/checkout-rows.txt" "$OUT/pgbench-rows.txt" | sed 's/^/  /'
  co=$(median $(awk '{print $2}' "$OUT/checkout-rows.txt")); pb=$(median $(awk '{print $2}' "$OUT/pgbench-rows.txt"))
  awk -v c="$co" -v p="$pb" -v n="$CLIENTS" 'BEGIN {
    printf "median checkout %s orders/s vs pgbench -N %s tps at %s clients: %.1f %%  (budget >= 50 %%: %s)\n",
      c, p, n, 100 * c / p, (c >= 0.5 * p ? "met" : "MISSED") }'
  sed 's/^/  /' "$OUT/complete-rows.txt"
  cc=$(median $(awk '{print $2}' "$OUT/complete-rows.txt"))
  awk -v c="$cc" -v p="$pb" -v n="$CLIENTS" 'BEGIN {
    printf "median completion alone %s orders/s vs pgbench -N %s tps at %s clients: %.1f %%  (budget >= 50 %%: %s)\n",
      c, p, n, 100 * c / p, (c >= 0.5 * p ? "met" : "MISSED") }'
  ct=$(kv_med "$OUT/checkout-rows.txt" commits/s)
  awk -v c="$co" -v t="$ct" -v p="$pb" 'BEGIN {
    printf "transactions committed during checkout: %s/s = %.1f per order; %.0f %% of pgbench -N tps\n", t, t / c, 100 * t / p }'
  echo
  for f in outbox-rows outbox-complete-rows; do
    sed 's/^/  /' "$OUT/$f.txt"
    p99=$(kv_med "$OUT/$f.txt" p99_ms); at=$(kv_med "$OUT/$f.txt" at_orders/s)
    echo "median outbox latency ($([ $f = outbox-rows ] && echo "checkout flow" || echo "completion alone")): p50 $(kv_med "$OUT/$f.txt" p50_ms) ms, p99 $p99 ms at $at orders/s (budget: p99 < 1000 ms at 500 orders/s: $(awk -v p="$p99" -v o="$at" 'BEGIN {print (o < 500 ? "rate not reached" : (p < 1000 ? "met" : "MISSED"))}'))"
  done
  echo
  cat "$OUT/backlog.txt" | head -1
  cat "$OUT/relay.txt"
  echo "relay budget >= 5000 events/s: $(awk -v r="$RELAY_RATE" 'BEGIN {print (r >= 5000 ? "met" : "MISSED")}') (wall clock from worker launch)"
} | tee -a "$SUMMARY"
echo
echo "raw outputs: $OUT"
