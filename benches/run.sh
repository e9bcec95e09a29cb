#!/usr/bin/env bash
# Benchmarks a release build of Jangteo on this machine: cold start, idle RSS, wrk on
# the catalog, RSS under 500 connections, and the loadgen browse -> cart -> checkout
# mix. Everything runs on 127.0.0.1 against a throw-away data folder.
#
#   benches/run.sh                      # the whole thing (~4 min after the build)
#   REPEAT=3 benches/run.sh             # every wrk measurement three times
#   SKIP_BUILD=1 benches/run.sh         # reuse target/release binaries
#
# Knobs (environment): REPEAT (1), STARTS (3: fresh starts and restarts measured),
# WRK_DURATION (15s), WARMUP (3s), SEED_PRODUCTS
# (1000), SEED_VARIANTS (4), MIX_USERS (50), MIX_DURATION (20s), MIX_EXTRA (1: also
# run the cart-only and checkout-only flows for 10 s each), SKIP_BUILD (0), OUT
# (target/bench-results/<timestamp>), BENCH_RUST_LOG (info: the server's log level),
# WAIT_QUIET (0; 1: before each measurement wait until no rustc/cargo runs, for
# machines shared with builds).
#
# Every measurement also records CPU use: the server's (from /proc/PID/stat) and
# everything else's (from /proc/stat: mostly the load generator), in % of one core.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REPEAT=${REPEAT:-1}
STARTS=${STARTS:-3}
WRK_DURATION=${WRK_DURATION:-15s}
WARMUP=${WARMUP:-3s}
SEED_PRODUCTS=${SEED_PRODUCTS:-1000}
SEED_VARIANTS=${SEED_VARIANTS:-4}
MIX_USERS=${MIX_USERS:-50}
MIX_DURATION=${MIX_DURATION:-20s}
MIX_EXTRA=${MIX_EXTRA:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
WAIT_QUIET=${WAIT_QUIET:-0}
OUT=${OUT:-$ROOT/target/bench-results/$(date +%Y%m%d-%H%M%S)}

BIN=$ROOT/target/release/jangteo
LOADGEN=$ROOT/target/release/loadgen
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"

say() { printf '\n== %s\n' "$*"; }
note() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
now_us() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }

# --- machine -----------------------------------------------------------------------
say "machine"
note "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
note "nproc:    $(nproc)"
note "cpu:      $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
note "memory:   $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
note "kernel:   $(uname -sr)"
note "uptime:   $(uptime)"

# --- build -------------------------------------------------------------------------
if [ "$SKIP_BUILD" != 1 ]; then
  say "cargo build --release -p jangteo-server -p jangteo-loadgen"
  cargo build --release -p jangteo-server -p jangteo-loadgen
fi
[ -x "$BIN" ] || die "$BIN is missing (build it, or drop SKIP_BUILD)"
[ -x "$LOADGEN" ] || die "$LOADGEN is missing (build it, or drop SKIP_BUILD)"

# --- wrk ---------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  say "installing wrk"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update && apt-get install -y wrk || true
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update && sudo apt-get install -y wrk || true
  fi
fi
if command -v wrk >/dev/null 2>&1; then
  HAVE_WRK=1
  note "wrk:      $(wrk --version 2>&1 | head -1 | cut -c1-60)"
else
  HAVE_WRK=0
  note "wrk:      not available; using 'loadgen get' instead (figures are not comparable)"
fi

# --- server lifecycle --------------------------------------------------------------
# A port nobody listens on (connection refused), picked at random below the kernel's
# ephemeral range (so no outgoing connection holds it either).
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
if [ "${EPHEMERAL_LOW:-0}" -gt 12000 ]; then PORT_LOW=10000; PORT_SPAN=$((EPHEMERAL_LOW - 10000)); else PORT_LOW=61000; PORT_SPAN=4000; fi
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((PORT_LOW + RANDOM % PORT_SPAN))
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      continue
    fi
    echo "$p"
    return 0
  done
  die "no free port found"
}
STORE_PORT=$(free_port)
ADMIN_PORT=$(free_port)
while [ "$ADMIN_PORT" = "$STORE_PORT" ]; do ADMIN_PORT=$(free_port); done
STORE=http://127.0.0.1:$STORE_PORT
ADMIN=http://127.0.0.1:$ADMIN_PORT
DATA=$(mktemp -d "${TMPDIR:-/tmp}/jangteo-bench.XXXXXX")
SERVER_PID=
SAMPLER_PID=

cleanup() {
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

# True once GET /health/ready answers 200. Pure bash, so polling costs no fork.
ready() {
  local line=
  { printf 'GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
      IFS= read -r -t 2 line <&3; } 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$STORE_PORT" || return 1
  [[ $line == "HTTP/1.1 200"* ]]
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

# start_server NAME: starts the server and sets START_MS (launch to first 200 of
# /health/ready, measured here) and SELF_MS (what the server reports).
start_server() {
  local name=$1 t0 t1 deadline
  t0=$(now_us)
  RUST_LOG=${BENCH_RUST_LOG:-info} "$BIN" serve --demo --data-dir "$DATA" \
    --store-addr "127.0.0.1:$STORE_PORT" --admin-addr "127.0.0.1:$ADMIN_PORT" \
    >"$OUT/server-$name.log" 2>&1 &
  SERVER_PID=$!
  deadline=$((t0 + 30000000))
  until ready; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      cat "$OUT/server-$name.log" >&2
      if grep -q "Address already in use" "$OUT/server-$name.log" && [ "${PORT_RETRIES:-0}" -lt 3 ]; then
        # Someone took a port between the check and the bind: new ports, try again.
        PORT_RETRIES=$((${PORT_RETRIES:-0} + 1))
        STORE_PORT=$(free_port)
        ADMIN_PORT=$(free_port)
        while [ "$ADMIN_PORT" = "$STORE_PORT" ]; do ADMIN_PORT=$(free_port); done
        STORE=http://127.0.0.1:$STORE_PORT
        ADMIN=http://127.0.0.1:$ADMIN_PORT
        echo "(port taken; retrying on $STORE_PORT / $ADMIN_PORT)"
        # The failed process may have set the folder up already; a fresh start
        # must start from nothing.
        case $name in fresh*) rm -rf "$DATA" && mkdir -p "$DATA" ;; esac
        start_server "$name"
        return
      fi
      die "the server exited"
    fi
    [ "$(now_us)" -lt "$deadline" ] || die "the server was not ready within 30 s"
    sleep 0.002
  done
  t1=$(now_us)
  START_MS=$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.0f", d/1000}')
  sleep 0.2
  SELF_MS=$(sed -n 's/.*Jangteo is running (\([0-9]*\) ms).*/\1/p' "$OUT/server-$name.log" | head -1)
}

stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

# --- CPU accounting ----------------------------------------------------------------
TICKS=$(getconf CLK_TCK)
cpu_total() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
cpu_server() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
cpu_begin() { C0_TOT=$(cpu_total); C0_SRV=$(cpu_server); C0_T=$(now_us); }
# Sets SRV_CPU and OTHER_CPU (% of one core since cpu_begin).
cpu_end() {
  local tot srv t
  tot=$(cpu_total); srv=$(cpu_server); t=$(now_us)
  SRV_CPU=$(awk -v d=$((srv - C0_SRV)) -v us=$((t - C0_T)) -v hz="$TICKS" 'BEGIN {printf "%.0f", d / hz / (us / 1e6) * 100}')
  OTHER_CPU=$(awk -v d=$((tot - C0_TOT - srv + C0_SRV)) -v us=$((t - C0_T)) -v hz="$TICKS" 'BEGIN {printf "%.0f", d / hz / (us / 1e6) * 100}')
}

# When WAIT_QUIET=1, waits (at most 20 min) until the machine has been quiet for 5 s:
# no rustc / cargo process and less than 15% of one core busy (the idle server
# included).
wait_quiet() {
  [ "$WAIT_QUIET" = 1 ] || return 0
  local calm=0 waited=0 t0 t1
  while [ "$calm" -lt 5 ] && [ "$waited" -lt 1200 ]; do
    t0=$(cpu_total)
    sleep 1
    t1=$(cpu_total)
    if pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null ||
      [ $(((t1 - t0) * 100 / TICKS)) -ge 15 ]; then
      calm=0
    else
      calm=$((calm + 1))
    fi
    waited=$((waited + 1))
  done
  [ "$waited" -le 5 ] || echo "(waited ${waited} s for a quiet machine)"
}

# --- wrk runs ----------------------------------------------------------------------
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.2f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else print v }'
}

# load NAME PATH CONNECTIONS: one measurement; appends a row to the summary.
load() {
  local name=$1 path=$2 conns=$3 f rps p50 p90 p99 non2xx sockerr
  f=$OUT/$name.txt
  wait_quiet
  cpu_begin
  if [ "$HAVE_WRK" = 1 ]; then
    wrk -t1 -c"$conns" -d"$WRK_DURATION" --latency "$STORE$path" >"$f" 2>&1
    cat "$f"
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$f")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
    p90=$(to_ms "$(awk '$1 == "90%" {print $2}' "$f")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$f")
    sockerr=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$f")
  else
    "$LOADGEN" get --url "$STORE" --path "$path" --connections "$conns" \
      --duration "$WRK_DURATION" --json "$f.json" | tee "$f"
    rps=$(jq -r '.rps | floor' "$f.json")
    p50=$(jq -r .p50_ms "$f.json")
    p90=$(jq -r .p90_ms "$f.json")
    p99=$(jq -r .p99_ms "$f.json")
    non2xx=$(jq -r '[.error_breakdown | to_entries[] | select(.key | test("^[0-9]+$")) | .value] | add // 0' "$f.json")
    sockerr=$(jq -r '[.error_breakdown | to_entries[] | select(.key | test("^[0-9]+$") | not) | .value] | add // 0' "$f.json")
  fi
  cpu_end
  echo "CPU: server ${SRV_CPU}%, everything else ${OTHER_CPU}% (of one core)"
  printf '%-26s %5s %10s %9s %9s %9s %8s %8s %6s %6s\n' "$name" "$conns" "${rps:-?}" "${p50:-?}" \
    "${p90:-?}" "${p99:-?}" "${non2xx:-0}" "${sockerr:-0}" "$SRV_CPU" "$OTHER_CPU" >>"$OUT/load-rows.txt"
}

# mix NAME ARGS...: one loadgen mix run, with CPU accounting.
mix() {
  local name=$1
  shift
  wait_quiet
  cpu_begin
  "$LOADGEN" mix --store "$STORE" --users "$MIX_USERS" --json "$OUT/$name.json" "$@" | tee "$OUT/$name.txt"
  cpu_end
  echo "CPU: server ${SRV_CPU}%, everything else ${OTHER_CPU}% (of one core)" | tee -a "$OUT/$name.txt"
  echo "$name $SRV_CPU $OTHER_CPU" >>"$OUT/mix-cpu.txt"
}

# --- the run -----------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# Fresh starts: each on an empty data folder, so each runs the migrations, loads the
# demo catalog and hashes the demo admin's password. The last one stays up.
FRESH=()
FRESH_SELF=()
for i in $(seq 1 "$STARTS"); do
  say "start $i/$STARTS: fresh data folder, --demo (migrations, demo catalog, demo admin)"
  rm -rf "$DATA"
  mkdir -p "$DATA"
  wait_quiet
  start_server "fresh$i"
  FRESH+=("$START_MS")
  FRESH_SELF+=("${SELF_MS:-0}")
  echo "ready after ${START_MS} ms (server reports ${SELF_MS} ms)"
  [ "$i" = "$STARTS" ] || stop_server
done
sleep 2
FRESH_RSS=$(rss_kib)
echo "idle RSS $(mib "$FRESH_RSS") MiB"

say "seeding $SEED_PRODUCTS products x $SEED_VARIANTS variants"
"$LOADGEN" seed --admin "$ADMIN" --products "$SEED_PRODUCTS" --variants "$SEED_VARIANTS" | tee "$OUT/seed.txt"

# Restarts on the seeded folder: the boot alone (migrations already applied, demo
# data already there). The last one serves the measurements.
RESTART=()
RESTART_SELF=()
for i in $(seq 1 "$STARTS"); do
  say "restart $i/$STARTS on the seeded data folder"
  stop_server
  wait_quiet
  start_server "restart$i"
  RESTART+=("$START_MS")
  RESTART_SELF+=("${SELF_MS:-0}")
  echo "ready after ${START_MS} ms (server reports ${SELF_MS} ms)"
done
sleep 2
IDLE_RSS=$(rss_kib)
echo "idle RSS $(mib "$IDLE_RSS") MiB"

PRODUCT_ID=$(curl -fsS "$STORE/store/products?limit=1" | jq -r '.products[0].id')
[ -n "$PRODUCT_ID" ] && [ "$PRODUCT_ID" != null ] || die "no product in the listing"
echo "product for the detail runs: $PRODUCT_ID"
curl -fsS -o /dev/null -w 'listing body: %{size_download} bytes\n' "$STORE/store/products?limit=20"
curl -fsS -o /dev/null -w 'detail body:  %{size_download} bytes\n' "$STORE/store/products/$PRODUCT_ID"

: >"$OUT/load-rows.txt"
if [ "$HAVE_WRK" = 1 ]; then
  say "warm-up: wrk -c50 -d$WARMUP on the listing (not recorded)"
  wrk -t1 -c50 -d"$WARMUP" "$STORE/store/products?limit=20" >/dev/null 2>&1 || true
fi

PEAK_RSS=0
for i in $(seq 1 "$REPEAT"); do
  say "[$i/$REPEAT] GET /store/products?limit=20, 50 connections"
  load "list-c50-run$i" "/store/products?limit=20" 50

  say "[$i/$REPEAT] GET /store/products?country=ID&limit=20, 50 connections (listing filtered by Indonesia's rules)"
  load "list-id-c50-run$i" "/store/products?country=ID&limit=20" 50

  say "[$i/$REPEAT] GET /store/products?limit=20, 500 connections (RSS sampled every 100 ms)"
  (
    max=0
    while kill -0 "$SERVER_PID" 2>/dev/null; do
      r=$(rss_kib || echo 0)
      if [ "${r:-0}" -gt "$max" ]; then max=$r; echo "$max" >"$OUT/peak-rss-run$i"; fi
      sleep 0.1
    done
  ) &
  SAMPLER_PID=$!
  load "list-c500-run$i" "/store/products?limit=20" 500
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
  r=$(cat "$OUT/peak-rss-run$i" 2>/dev/null || echo 0)
  echo "peak RSS during the 500-connection run: $(mib "$r") MiB"
  if [ "$r" -gt "$PEAK_RSS" ]; then PEAK_RSS=$r; fi

  say "[$i/$REPEAT] GET /store/products/{id}, 50 connections"
  load "product-c50-run$i" "/store/products/$PRODUCT_ID" 50
done

: >"$OUT/mix-cpu.txt"
say "loadgen mix: $MIX_USERS users, $MIX_DURATION, browse -> cart -> checkout"
mix mix-full --duration "$MIX_DURATION"
if [ "$MIX_EXTRA" = 1 ]; then
  say "loadgen mix --flow cart: $MIX_USERS users, 10s (cart create + add line only)"
  mix mix-cart --duration 10s --flow cart
  say "loadgen mix --flow checkout: $MIX_USERS users, 10s (cart, line, address, complete)"
  mix mix-checkout --duration 10s --flow checkout
fi

# "Idle" means idle: after the load the server still drains the event backlog (the
# in-process consumers run behind the order rate), so wait until it has used at most
# 2 ticks (20 ms) of CPU in each of 2 consecutive seconds (at most 60 s), then give the
# server's idle memory release (crates/server/src/memory.rs) 2 s to run.
QUIET_S=0; CALM=0
while [ "$CALM" -lt 2 ] && [ "$QUIET_S" -lt 60 ]; do
  T0=$(cpu_server); sleep 1; T1=$(cpu_server); QUIET_S=$((QUIET_S + 1))
  if [ $((T1 - T0)) -le 2 ]; then CALM=$((CALM + 1)); else CALM=0; fi
done
sleep 2
AFTER_RSS=$(rss_kib)
echo "server quiet after ${QUIET_S} s; idle RSS $(mib "$AFTER_RSS") MiB"
HWM=$(hwm_kib)
note "uptime after the load: $(uptime)"
stop_server

# --- summary -----------------------------------------------------------------------
say "summary (also in $SUMMARY)"
{
  echo
  echo "cold start, fresh data folder + demo load: median $(median "${FRESH[@]}") ms of ${FRESH[*]} (server reports $(median "${FRESH_SELF[@]}") ms)"
  echo "cold start, restart with seeded data:      median $(median "${RESTART[@]}") ms of ${RESTART[*]} (server reports $(median "${RESTART_SELF[@]}") ms)"
  echo "idle RSS after the fresh start:            $(mib "$FRESH_RSS") MiB"
  echo "idle RSS after the restart (seeded):       $(mib "$IDLE_RSS") MiB"
  echo "peak RSS during 500 connections:           $(mib "$PEAK_RSS") MiB"
  echo "idle RSS after all load:                   $(mib "$AFTER_RSS") MiB, quiet after ${QUIET_S} s (VmHWM $(mib "$HWM") MiB)"
  echo
  printf '%-26s %5s %10s %9s %9s %9s %8s %8s %6s %6s\n' run conns req/s "p50 ms" "p90 ms" "p99 ms" non-2xx sockerr "srv%" "oth%"
  cat "$OUT/load-rows.txt"
  if [ "$REPEAT" -gt 1 ]; then
    echo
    echo "medians of $REPEAT runs (errors: total non-2xx + socket errors over all runs)"
    for sc in list-c50 list-c500 product-c50; do
      grep "^$sc-run" "$OUT/load-rows.txt" | awk -v sc="$sc" '
        { n++; rps[n] = $3; p50[n] = $4; p99[n] = $6; err += $7 + $8 }
        function med(a,   i, j, t) {
          for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
          return a[int((n + 1) / 2)]
        }
        END { printf "%-26s req/s %s  p50 %s ms  p99 %s ms  errors %d\n", sc, med(rps), med(p50), med(p99), err }'
    done
  fi
  echo
  for f in mix-full mix-cart mix-checkout; do
    [ -f "$OUT/$f.json" ] || continue
    if command -v jq >/dev/null 2>&1; then
      jq -r --arg n "$f" '"\($n): \(.flows_per_s) flows/s, \(.orders_per_s) orders/s, errors \(.errors), out_of_stock \(.out_of_stock)"' "$OUT/$f.json"
    fi
  done
  awk '{printf "%s CPU: server %s%%, everything else %s%% (of one core)\n", $1, $2, $3}' "$OUT/mix-cpu.txt"
} | tee -a "$SUMMARY"
echo
echo "raw outputs: $OUT"
