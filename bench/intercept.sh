#!/bin/bash
# Interception speed: HTTPS through a CONNECT tunnel that Switchyard
# intercepts (client TLS to Switchyard's minted leaf, the inner request
# routed by a `direct` rule, TLS again from Switchyard to the origin) against
# the same client doing TLS straight to the origin, measured in the same run,
# interleaved. Prints a markdown table (docs/BENCHMARKS.md, "Interception").
#
# Usage: bench/intercept.sh [--quick] [--rounds N] [--seconds S] [--no-boost] [--no-build]
#   --quick      3 rounds of 2 s runs (~30 s, plus the build)
#   --rounds N   interleaved rounds, at least 3 (default 7)
#   --seconds S  length of each run (default 3)
#   --no-boost   keep normal priority (default as root: the rounds run under
#                SCHED_FIFO, setup at nice -20; other work shares the machine)
#   --no-build   measure build/bench as it is instead of running make bench
#
# Two measurements, both with 50 connections in parallel and a 1 KiB body:
#   handshakes  new TLS connections/s: connect, (CONNECT, read the 200), a
#               full TLS 1.3 handshake, one GET with Connection: close, read
#               the answer, close. The host's leaf is minted before the
#               rounds, so this is the cost of an already-minted host.
#   requests    keep-alive GETs/s: each connection (and its one intercepted
#               tunnel) is opened once, then carries one GET at a time.
# The client is bench/tlsload.cc (OpenSSL, epoll, one thread), built here
# with the system compiler. The origin is nginx with a certificate from a
# throwaway test CA; Switchyard trusts that CA (tls.upstream_ca_file) and
# reaches the origin through a `resolve:` override of origin.test.
# Switchyard runs on CPU 0, nginx and the client on CPU 1 (see lib.sh).
# BENCH_KEEP=1 keeps the temporary directory (raw figures in res/, logs).
# BENCH_PERF=1 also profiles Switchyard (perf record, 999 Hz, no call graph)
# during one more intercepted run of each test after the rounds and prints
# its top symbols.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC2034  # read by bench_header in lib.sh
BENCH_COMMAND="bench/intercept.sh $*"
bench_parse_args "$@"
bench_need_packages nginx openssl libssl-dev
bench_build
bench_init
bench_build_loadclient

ORIGIN_NAME=origin.test
CONNS=50

# The TLS client, rebuilt when its source is newer.
build_tlsload() {
  TLSLOAD=$BENCH_ROOT/build/bench/tlsload
  if [ ! -x "$TLSLOAD" ] || [ "$BENCH_ROOT/bench/tlsload.cc" -nt "$TLSLOAD" ]; then
    "${CXX:-clang++}" -std=c++20 -O2 -Wall -Wextra -o "$TLSLOAD" "$BENCH_ROOT/bench/tlsload.cc" \
      -lssl -lcrypto
  fi
}

# A test CA and an origin.test leaf it signs (P-256, like Switchyard's own
# leaves), and Switchyard's CA.
make_certs() {
  local d=$BENCH_DIR/pki
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=switchyard-bench-test-ca -keyout "$d/test-ca.key" -out "$d/test-ca.crt" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=$ORIGIN_NAME" -keyout "$d/origin.key" -out "$d/origin.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    "$ORIGIN_NAME" >"$d/origin.ext"
  openssl x509 -req -in "$d/origin.csr" -CA "$d/test-ca.crt" -CAkey "$d/test-ca.key" \
    -CAcreateserial -days 2 -extfile "$d/origin.ext" -out "$d/origin.crt" 2>/dev/null
  TEST_CA=$d/test-ca.crt
  "$SY_BIN" ca init --dir "$d/sy-ca" >/dev/null
  SY_CA=$d/sy-ca/ca.crt
}

# nginx on CPU 1 serving /1k over TLS only.
start_tls_nginx() {
  local d=$BENCH_DIR/nginx
  mkdir -p "$d/www" "$d/tmp"
  head -c 1024 /dev/urandom >"$d/www/1k"
  NGINX_PORT=$("$LOADCLIENT" freeport)
  cat >"$d/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $HARD_NOFILE;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $HARD_NOFILE; }
http {
  access_log off;
  default_type application/octet-stream;
  tcp_nodelay on;
  keepalive_requests 1000000000;
  keepalive_timeout 3600s;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl backlog=4096;
    ssl_certificate $BENCH_DIR/pki/origin.crt;
    ssl_certificate_key $BENCH_DIR/pki/origin.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $d/www;
  }
}
EOF
  taskset -c "$CLIENT_CPU" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" &
  NGINX_PID=$!
  BENCH_PIDS+=("$NGINX_PID")
  bench_wait_port "$NGINX_PORT"
}

# Switchyard on CPU 0: one rule, intercept origin.test and send its inner
# requests direct to nginx over verified TLS. Decisions go to a file, as in
# the proxy-core benchmark.
start_intercepting_switchyard() {
  local d=$BENCH_DIR/switchyard
  mkdir -p "$d"
  cat >"$d/switchyard.yaml" <<EOF
listen: ["127.0.0.1:0"]
inherit_env: false
access:
  connect_ports: [$NGINX_PORT]
limits:
  max_connections: 100000
  max_connections_per_client: 100000
  idle_timeout: 1h
log:
  level: info
  decisions: $d/decisions.log
tls:
  ca_dir: "$BENCH_DIR/pki/sy-ca"
  upstream_ca_file: "$TEST_CA"
resolve: { $ORIGIN_NAME: "127.0.0.1" }
rules:
  - name: intercepted
    match: { hosts: "$ORIGIN_NAME" }
    action: direct
    intercept: true
EOF
  bench_launch_switchyard "$d"
}

# One run of tlsload mode $1 ("handshakes" or "requests") for $2 seconds,
# direct or (target "switchyard") through the intercepting proxy; prints
# "per_second done".
m_tls() {
  local mode=$1 secs=$2 target=$3
  local args=(--target "127.0.0.1:$NGINX_PORT" --name "$ORIGIN_NAME" --seconds "$secs"
    --path /1k)
  if [ "$mode" = handshakes ]; then args+=(--conc "$CONNS"); else args+=(--conns "$CONNS"); fi
  if [ "$target" = switchyard ]; then
    args+=(--proxy "127.0.0.1:$SY_PORT" --ca "$SY_CA")
  else
    args+=(--ca "$TEST_CA")
  fi
  "${RT_CMD[@]}" taskset -c "$CLIENT_CPU" "$TLSLOAD" "$mode" "${args[@]}" |
    tr ' ' '\n' | awk -F= '$1=="per_second"{p=$2} $1=="done"{d=$2} END {print p, d}'
}

# CPU time (user + system, in clock ticks) Switchyard has used so far.
sy_ticks() { awk '{print $14 + $15}' "/proc/$SY_PID/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# One measurement of test $1 for target $2, recorded; through Switchyard
# also its CPU time per operation (µs), which other load on the machine
# does not inflate the way it can the rates.
measure_tls() {
  local test=$1 target=$2 mode v t0 t1
  [ "$test" = hs ] && mode=handshakes || mode=requests
  t0=$(sy_ticks)
  v=$(m_tls "$mode" "$SECS" "$target")
  t1=$(sy_ticks)
  if [ -z "${v% *}" ]; then
    echo "warning: $test via $target gave no figure" >&2
    v="0 0"
  fi
  record "$test.$target" "${v% *}"
  if [ "$target" = switchyard ] && [ "${v#* }" -gt 0 ]; then
    record "$test.cpu" "$(((t1 - t0) * TICK_US / ${v#* }))"
  fi
}

SY_BIN=${SY_BIN:-$BENCH_ROOT/build/bench/daemon/switchyard}
build_tlsload
make_certs
start_tls_nginx
start_intercepting_switchyard

echo "# Switchyard interception vs direct TLS"
echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "command:  $BENCH_COMMAND"
echo "commit:   $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH_ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
echo "machine:  $(nproc) CPUs, $(uname -r); proxy on CPU $PROXY_CPU, nginx + client on CPU $CLIENT_CPU"
echo "rounds:   $ROUNDS interleaved (direct and intercepted back to back per test, order reversed every other round); ${SECS}s per run"
echo "binary:   build/bench/daemon/switchyard, built $(date -u -r "$SY_BIN" '+%Y-%m-%d %H:%M UTC')$([ -n "$BUILD" ] || echo ' (--no-build)')"
echo "priority: $([ -n "$BOOST" ] && echo 'rounds under SCHED_FIFO 50 (proxy, nginx, client), setup at nice -20' || echo 'normal (--no-boost)')"
echo "origin:   $(nginx -v 2>&1 | sed 's/.*: //'), 1 worker, TLS 1.2/1.3, $(openssl version | cut -d' ' -f1-2)"
echo "client:   bench/tlsload.cc, $CONNS connections, full handshakes (no resumption), P-256 leaves on both paths"
echo "load:     $(load_note) (1/5/15-min load averages at start)"
BENCH_T0=$SECONDS
rt_on
# Warm-up: mints origin.test's leaf, fills the page cache and the pools.
for target in direct switchyard; do
  m_tls handshakes 1 "$target" >/dev/null
  m_tls requests 1 "$target" >/dev/null
done
for r in $(seq 1 "$ROUNDS"); do
  echo "  round $r/$ROUNDS (load $(load_note))" >&2
  order=(direct switchyard)
  [ $((r % 2)) = 0 ] && order=(switchyard direct)
  for test in hs rq; do
    for target in "${order[@]}"; do
      measure_tls "$test" "$target"
    done
  done
done
rt_off
echo "load end: $(load_note); took $((SECONDS - BENCH_T0)) s"
echo "decisions: $(wc -l <"$BENCH_DIR/switchyard/decisions.log") lines logged by Switchyard"

# The daemon's hot spots during one intercepted run of tlsload mode $1.
profile() {
  local mode=$1 data=$BENCH_DIR/perf.$1.data
  perf record -q -F 999 -p "$SY_PID" -o "$data" -- sleep "$SECS" 2>/dev/null &
  local perf_pid=$!
  m_tls "$mode" "$SECS" switchyard >/dev/null
  wait "$perf_pid" || true
  echo
  echo "Switchyard's top symbols during intercepted $mode (perf, % of its samples):"
  perf report -q -i "$data" --no-children --sort dso --stdio 2>/dev/null |
    grep -v '^$' | head -6 | sed 's/ *$//; s/^/    /' || true
  perf report -q -i "$data" --no-children --sort dso,symbol --stdio 2>/dev/null |
    grep -v '^$' | head -15 | cut -c1-100 | sed 's/ *$//; s/^/    /' || true
}
if [ -n "${BENCH_PERF:-}" ]; then
  profile handshakes
  profile requests
fi

echo
echo "| measurement | direct TLS | intercepted | intercepted/direct | Switchyard CPU per op |"
echo "|---|---:|---:|---:|---:|"
echo "| new TLS connections/s (CONNECT + handshake + 1 KiB GET + close, $CONNS in parallel) | $(human tun "$(med hs.direct)") | $(human tun "$(med hs.switchyard)") | $(ratio_cell hs.switchyard hs.direct) | $(med hs.cpu) µs |"
echo "| keep-alive 1 KiB GETs/s ($CONNS connections, one intercepted tunnel each) | $(human tun "$(med rq.direct)") | $(human tun "$(med rq.switchyard)") | $(ratio_cell rq.switchyard rq.direct) | $(med rq.cpu) µs |"
echo
echo "Ratios: median over the rounds of each round's figure against the direct run next to it,"
echo "(min–max) over the rounds. Figures in /s and CPU per op (Switchyard's user + system time"
echo "during its runs / operations completed): medians."
