# shellcheck shell=bash
# Shared by bench/proxy.sh and bench/compare.sh: packages, the origin
# (nginx), the proxies under test, the load client and the measurements.
# Sourced, not run. Every process started here is remembered by PID and
# stopped by PID on exit.
#
# Placement: the proxy under test runs on CPU 0, the origin and every client
# on CPU 1 (taskset), so a direct run and a proxied run put the same work on
# CPU 1 and the proxy's own cost shows up as the difference.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROXY_CPU=0
CLIENT_CPU=1
BENCH_PIDS=()

# Installs the Debian packages named, only those missing; silent when all
# are present.
bench_need_packages() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${BENCH_DIR:-}" ] && [ -z "${BENCH_KEEP:-}" ]; then
    rm -rf "$BENCH_DIR"
  fi
}

bench_init() {
  BENCH_DIR=$(mktemp -d /tmp/sybench.XXXXXX)
  chmod 755 "$BENCH_DIR"
  mkdir -p "$BENCH_DIR/res"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  HARD_NOFILE=$(ulimit -Hn)
  ulimit -n "$HARD_NOFILE"
}

# The load client, built with the system compiler next to the Release tree.
bench_build_loadclient() {
  LOADCLIENT=$BENCH_ROOT/build/bench/loadclient
  if [ ! -x "$LOADCLIENT" ] || [ "$BENCH_ROOT/bench/loadclient.cc" -nt "$LOADCLIENT" ]; then
    mkdir -p "$BENCH_ROOT/build/bench"
    "${CXX:-clang++}" -std=c++20 -O2 -Wall -Wextra -o "$LOADCLIENT" "$BENCH_ROOT/bench/loadclient.cc"
  fi
}

lc() { "${RT_CMD[@]}" taskset -c "$CLIENT_CPU" "$LOADCLIENT" "$@"; }

# Waits until something accepts on 127.0.0.1:$1.
bench_wait_port() {
  local i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# nginx on CPU 1: a plain port serving /1k, /256m, /1g (sparse files: the
# bytes are zeros and come from the page cache, no disk).
bench_start_nginx() {
  local d=$BENCH_DIR/nginx
  mkdir -p "$d/www" "$d/tmp"
  head -c 1024 /dev/urandom >"$d/www/1k"
  truncate -s 256M "$d/www/256m"
  truncate -s 1G "$d/www/1g"
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
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000000;
  keepalive_timeout 3600s;
  client_header_timeout 3600s;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    root $d/www;
  }
}
EOF
  taskset -c "$CLIENT_CPU" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" &
  NGINX_PID=$!
  BENCH_PIDS+=("$NGINX_PID")
  bench_wait_port "$NGINX_PORT"
  # Read the big files once so that the first download does not pay for it.
  cat "$d/www/1g" "$d/www/256m" >/dev/null
}

# Switchyard (Release, build/bench, or $SY_BIN) on CPU 0 with the hard
# open-files limit. $1: a suffix for its directory when starting a second one.
bench_start_switchyard() {
  local d=$BENCH_DIR/switchyard${1:-}
  mkdir -p "$d"
  SY_BIN=${SY_BIN:-$BENCH_ROOT/build/bench/daemon/switchyard}
  cat >"$d/switchyard.yaml" <<EOF
listen: ["127.0.0.1:0"]
inherit_env: false
access:
  connect_ports: [$NGINX_PORT]
limits:
  max_connections: 100000
  max_connections_per_client: 100000
  idle_timeout: 1h
${BUSY_POLL:+  busy_poll: $BUSY_POLL
}${SPLICE:+  splice: $SPLICE
}log:
  level: info
  decisions: $d/decisions.log
EOF
  bench_launch_switchyard "$d"
}

# Checks $1/switchyard.yaml, starts the daemon on CPU 0 with it (and the
# words of $SY_DAEMON_ENV as environment), and sets SY_PID and SY_PORT once
# it logs the address it listens on.
bench_launch_switchyard() {
  local d=$1
  "$SY_BIN" check --config "$d/switchyard.yaml" >/dev/null
  local extra_env=()
  read -ra extra_env <<<"${SY_DAEMON_ENV:-}"
  env ${extra_env[@]+"${extra_env[@]}"} taskset -c "$PROXY_CPU" "$SY_BIN" run \
    --config "$d/switchyard.yaml" 2>"$d/stderr" &
  SY_PID=$!
  BENCH_PIDS+=("$SY_PID")
  local i
  SY_PORT=
  for i in $(seq 1 100); do
    SY_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$d/stderr" | head -1)
    [ -n "$SY_PORT" ] && break
    sleep 0.1
  done
  if [ -z "$SY_PORT" ]; then
    echo "switchyard did not start:" >&2
    cat "$d/stderr" >&2
    return 1
  fi
}

# Squid on CPU 0 in the foreground (-N), no cache, its access log on and
# written by squid itself (stdio:, no logging helper process), one process.
bench_start_squid() {
  local d=$BENCH_DIR/squid
  mkdir -p "$d"
  chown proxy:proxy "$d"
  SQUID_PORT=$("$LOADCLIENT" freeport)
  cat >"$d/squid.conf" <<EOF
http_port 127.0.0.1:$SQUID_PORT
http_access allow all
cache deny all
cache_mem 8 MB
max_filedescriptors $HARD_NOFILE
pid_filename $d/squid.pid
cache_log $d/cache.log
access_log stdio:$d/access.log squid
coredump_dir $d
shutdown_lifetime 0 seconds
client_lifetime 1 day
read_timeout 1 hour
request_timeout 1 hour
EOF
  taskset -c "$PROXY_CPU" squid -N -f "$d/squid.conf" &
  SQUID_PID=$!
  BENCH_PIDS+=("$SQUID_PID")
  bench_wait_port "$SQUID_PORT"
}

# The floor: loadclient's minimal CONNECT relay on CPU 0 (tunnel paths only).
bench_start_relay() {
  local out=$BENCH_DIR/relay.out
  taskset -c "$PROXY_CPU" "$LOADCLIENT" relay --target "127.0.0.1:$NGINX_PORT" >"$out" &
  RELAY_PID=$!
  BENCH_PIDS+=("$RELAY_PID")
  local i
  RELAY_PORT=
  for i in $(seq 1 50); do
    RELAY_PORT=$(sed -n 's/^port=//p' "$out" 2>/dev/null || true)
    [ -n "$RELAY_PORT" ] && break
    sleep 0.1
  done
  [ -n "$RELAY_PORT" ]
}

# ---------------------------------------------------------------------------
# Measurements. Each prints one number (or "p50 p99") on stdout.

# Keep-alive 1 KiB GETs with wrk, $1 connections for $2 seconds, direct or
# through the proxy on port $3 (absolute-form requests: wrk sends whatever
# request line the Lua script builds).
m_wrk() {
  local conns=$1 secs=$2 port=${3:-}
  local out
  if [ -z "$port" ]; then
    out=$("${RT_CMD[@]}" taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$NGINX_PORT/1k")
  else
    local lua=$BENCH_DIR/forward.lua
    cat >"$lua" <<EOF
wrk.path = "http://127.0.0.1:$NGINX_PORT/1k"
wrk.headers["Host"] = "127.0.0.1:$NGINX_PORT"
EOF
    out=$("${RT_CMD[@]}" taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${secs}s" -s "$lua" "http://127.0.0.1:$port/")
  fi
  if echo "$out" | grep -q "Non-2xx"; then
    echo "wrk saw non-2xx answers:" >&2
    echo "$out" >&2
  fi
  echo "$out" | awk '/^Requests\/sec:/ {print $2}'
}

# One download of $1 (path), bytes/s, through a CONNECT tunnel on port $2
# when given. Plain HTTP inside the tunnel.
m_curl() {
  local path=$1 port=${2:-}
  local proxy=()
  [ -n "$port" ] && proxy=(-p -x "http://127.0.0.1:$port")
  "${RT_CMD[@]}" taskset -c "$CLIENT_CPU" curl -sS --fail "${proxy[@]}" -o /dev/null -w '%{speed_download}\n' \
    "http://127.0.0.1:$NGINX_PORT$path"
}

# $1 parallel downloads of $2, aggregate bytes/s (all bytes / wall time).
m_curl_parallel() {
  local n=$1 path=$2 port=${3:-}
  local proxy=()
  [ -n "$port" ] && proxy=(-p -x "http://127.0.0.1:$port")
  local size
  size=$(stat -c %s "$BENCH_DIR/nginx/www${path}")
  local t0 t1 i pids=()
  t0=$(date +%s.%N)
  for i in $(seq 1 "$n"); do
    "${RT_CMD[@]}" taskset -c "$CLIENT_CPU" curl -sS --fail "${proxy[@]}" -o /dev/null \
      "http://127.0.0.1:$NGINX_PORT$path" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do
    wait "$i"
  done
  t1=$(date +%s.%N)
  awk -v n="$n" -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", n * s / (b - a)}'
}

# New tunnels per second: CONNECT, one 1 KiB GET, close ($1 seconds, $2
# parallel workers); direct: connect, GET, close.
m_tunnels() {
  local secs=$1 conc=$2 port=${3:-}
  local proxy=()
  [ -n "$port" ] && proxy=(--proxy "127.0.0.1:$port")
  lc tunnels --target "127.0.0.1:$NGINX_PORT" "${proxy[@]}" --conc "$conc" --seconds "$secs" \
    --path /1k | tr ' ' '\n' | sed -n 's/^per_second=//p'
}

# Latency of sequential keep-alive 1 KiB GETs on one connection: "p50 p99"
# in µs. Through the proxy in absolute form, or with "tunnel" as $3 inside
# one CONNECT tunnel.
m_latency() {
  local count=$1 port=${2:-} mode=${3:-}
  local args=()
  [ -n "$port" ] && args=(--proxy "127.0.0.1:$port")
  [ "$mode" = tunnel ] && args+=(--tunnel)
  lc latency --target "127.0.0.1:$NGINX_PORT" "${args[@]}" --count "$count" --path /1k |
    tr ' ' '\n' | awk -F= '$1=="p50_us"{a=$2} $1=="p99_us"{b=$2} END {print a, b}'
}


# ---------------------------------------------------------------------------
# The driver shared by proxy.sh and compare.sh.

# Appends a value to the result series $1 (one line per round).
record() { echo "${2:-0}" >>"$BENCH_DIR/res/$1"; }

# Median of a file of numbers, one a line.
median_of() {
  sort -g "$1" | awk '{v[NR]=$1} END {
    if (NR == 0) { print "nan" } else if (NR % 2) { print v[(NR+1)/2] } else { print (v[NR/2]+v[NR/2+1])/2 } }'
}

med() { median_of "$BENCH_DIR/res/$1"; }

# Median over rounds of the per-round ratio $1/$2 (round r against round r).
median_ratio() {
  paste "$BENCH_DIR/res/$1" "$BENCH_DIR/res/$2" | awk '$2 > 0 {print $1/$2}' >"$BENCH_DIR/res/.tmp"
  median_of "$BENCH_DIR/res/.tmp"
}

# The spread of the per-round ratios (or differences) computed last:
# "min–max" formatted with printf format $1.
spread() {
  sort -g "$BENCH_DIR/res/.tmp" | awk -v f="$1" 'NR == 1 {lo = $1} {hi = $1} END {
    if (NR > 0) printf "(" f "–" f ")", lo, hi }'
}

# "median× (min–max)" of the per-round ratios $1/$2.
ratio_cell() {
  local m
  m=$(median_ratio "$1" "$2")
  printf '%.2f× %s' "$m" "$(spread '%.2f')"
}

# "+median µs (min–max)" of the per-round differences $1 − $2.
diff_cell() {
  local m
  m=$(median_diff "$1" "$2")
  printf '%+.0f µs %s' "$m" "$(spread '%+.0f')"
}

# Median over rounds of the per-round difference $1 − $2.
median_diff() {
  paste "$BENCH_DIR/res/$1" "$BENCH_DIR/res/$2" | awk '{print $1-$2}' >"$BENCH_DIR/res/.tmp"
  median_of "$BENCH_DIR/res/.tmp"
}

load_note() { uptime | sed 's/.*load average: *//'; }

# The Release tree (make bench), unless --no-build: then the binary already
# in build/bench is measured as it is (its time is printed in the header).
bench_build() {
  if [ -n "$BUILD" ]; then
    (cd "$BENCH_ROOT" && make -s bench >/dev/null)
  fi
  if [ ! -x "$BENCH_ROOT/build/bench/daemon/switchyard" ]; then
    echo "no build/bench/daemon/switchyard: run make bench" >&2
    exit 1
  fi
}

# Options common to both scripts.
bench_parse_args() {
  ROUNDS=7
  SECS=3
  LAT_COUNT=5000
  WITH_FLOOR=
  BOOST=1
  BUILD=1
  TESTS=$ALL_TESTS
  SKIP_IDLE=
  : "$WITH_FLOOR"  # read by proxy.sh and compare.sh
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) ROUNDS=3; SECS=2; LAT_COUNT=3000 ;;
      --rounds) ROUNDS=$2; shift ;;
      --seconds) SECS=$2; shift ;;
      --floor) WITH_FLOOR=1 ;;
      --no-boost) BOOST= ;;
      --no-build) BUILD= ;;
      --tests) TESTS=$2; SKIP_IDLE=1; shift ;;
      --busy-poll) BUSY_POLL=$2; shift ;;
      --no-splice) SPLICE=false ;;
      -h|--help)
        sed -n '2,/^set /p' "$0" | sed -n 's/^# \{0,1\}//p'
        exit 0 ;;
      *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
  done
  if [ "$ROUNDS" -lt 3 ]; then
    echo "at least 3 rounds" >&2
    exit 2
  fi
  # Other work shares this machine. Unless --no-boost, the benchmark runs at
  # nice -20 and its rounds under SCHED_FIFO (see rt_on).
  if [ -n "$BOOST" ] && [ "$(id -u)" = 0 ] && [ "$(nice)" != -20 ]; then
    renice -n -20 -p $$ >/dev/null
  fi
  [ "$(id -u)" = 0 ] || BOOST=
}

# The rounds run with the proxies, nginx and every client under SCHED_FIFO
# when boosting (rt_on ... rt_off): a wake-up then preempts whatever else
# runs on that CPU at once. Under the default scheduler a woken proxy waits
# for the running task's slice, and the figures swing by 2× with the load.
RT_CMD=()
rt_on() {
  [ -n "$BOOST" ] || return 0
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    chrt -a -f -p 50 "$pid" >/dev/null 2>&1 || true
  done
  RT_CMD=(chrt -f 50)
}
rt_off() {
  [ -n "$BOOST" ] || return 0
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    chrt -a -o -p 0 "$pid" >/dev/null 2>&1 || true
  done
  RT_CMD=()
}

# Which tests a target takes part in: the floor relay only speaks CONNECT.
applies() {
  local test=$1 target=$2
  case "$target" in
    relay) case "$test" in ka50|ka400|lat) return 1 ;; esac ;;
  esac
  [ "$target" != direct ] || [ "$test" != lat_t ]
}

port_of() {
  case "$1" in
    direct) echo "" ;;
    switchyard) echo "$SY_PORT" ;;
    squid) echo "$SQUID_PORT" ;;
    relay) echo "$RELAY_PORT" ;;
  esac
}

# One measurement of test $1 for target $2, recorded.
measure() {
  local test=$1 target=$2
  local port
  port=$(port_of "$target")
  local v
  case "$test" in
    ka50) v=$(m_wrk 50 "$SECS" "$port") ;;
    ka400) v=$(m_wrk 400 "$SECS" "$port") ;;
    dl1g) v=$(m_curl /1g "$port") ;;
    dl8) v=$(m_curl_parallel 8 /256m "$port") ;;
    tun) v=$(m_tunnels "$SECS" 50 "$port") ;;
    lat|lat_t)
      local mode=
      [ "$test" = lat_t ] && mode=tunnel
      v=$(m_latency "$LAT_COUNT" "$port" $mode)
      record "$test.p50.$target" "${v% *}"
      record "$test.p99.$target" "${v#* }"
      return ;;
  esac
  if [ -z "$v" ]; then
    echo "warning: $test via $target gave no figure" >&2
    v=0
  fi
  record "$test.$target" "$v"
}

ALL_TESTS="ka50 ka400 dl1g dl8 tun lat lat_t"

# Idle tunnels: N = (hard open-files limit − 500) / 2, each costing the
# proxy two descriptors. Measured on the freshly started proxy, before the
# load rounds have grown its heap.
measure_idle() {
  local target=$1 pid=$2
  local out
  out=$(lc idle --target "127.0.0.1:$NGINX_PORT" --proxy "127.0.0.1:$(port_of "$target")" \
    --pid "$pid" --n "$IDLE_N" --batch 100 --hold 2) || true
  echo "$out" >"$BENCH_DIR/res/idle.$target"
  echo "  idle $target: $out" >&2
  sleep 2  # let the proxy close the tunnels before the next test
}

idle_field() { tr ' ' '\n' <"$BENCH_DIR/res/idle.$1" | sed -n "s/^$2=//p"; }

bench_header() {
  echo "# $1"
  echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "command:  $BENCH_COMMAND"
  echo "commit:   $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH_ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "machine:  $(nproc) CPUs, $(uname -r); proxy on CPU $PROXY_CPU, nginx + clients on CPU $CLIENT_CPU"
  echo "rounds:   $ROUNDS interleaved (direct and proxies back to back per test, order reversed every other round); ${SECS}s per wrk/tunnel run, $LAT_COUNT latency samples"
  echo "binary:   build/bench/daemon/switchyard, built $(date -u -r "$BENCH_ROOT/build/bench/daemon/switchyard" '+%Y-%m-%d %H:%M UTC')$([ -n "$BUILD" ] || echo ' (--no-build)')"
  echo "priority: $([ -n "$BOOST" ] && echo 'rounds under SCHED_FIFO 50 (proxies, nginx, clients), setup at nice -20' || echo 'normal (--no-boost)')"
  echo "config:   limits.busy_poll ${BUSY_POLL:-as shipped (200us)}, limits.splice ${SPLICE:-as shipped (true)} (see docs/CONFIG.md)"
  # A VM guest's idle loop: with halt polling off (0), every wake-up of a
  # sleeping CPU is a VM exit and entry, tens of µs (BENCHMARKS.md).
  local hp=/sys/module/haltpoll/parameters/guest_halt_poll_ns
  echo "cpuidle:  $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)$([ -r "$hp" ] && echo ", guest_halt_poll_ns $(cat "$hp")")"
  echo "origin:   $(nginx -v 2>&1 | sed 's/.*: //'), 1 worker, sendfile; tunnels carry plain HTTP"
}

# Runs every round and prints the table. $@: the proxies ("switchyard",
# "squid", "relay").
bench_run() {
  local proxies=("$@")
  local load_start
  load_start=$(load_note)
  BENCH_T0=$SECONDS
  IDLE_N=$(((HARD_NOFILE - 500) / 2))
  echo "load:     $load_start (1/5/15-min load averages at start)"
  echo "idle N:   $IDLE_N tunnels (hard open-files limit $HARD_NOFILE)"
  local target
  [ -n "$SKIP_IDLE" ] && proxies_idle=() || proxies_idle=("${proxies[@]}")
  for target in ${proxies_idle[@]+"${proxies_idle[@]}"}; do
    case "$target" in
      switchyard) measure_idle switchyard "$SY_PID" ;;
      squid) measure_idle squid "$SQUID_PID" ;;
      relay) measure_idle relay "$RELAY_PID" ;;
    esac
  done
  rt_on
  # Warm-up: first connections, page cache, the proxies' pools.
  for target in direct "${proxies[@]}"; do
    applies ka50 "$target" && m_wrk 50 1 "$(port_of "$target")" >/dev/null
    m_curl /256m "$(port_of "$target")" >/dev/null
    m_tunnels 1 50 "$(port_of "$target")" >/dev/null
  done
  local r test order
  for r in $(seq 1 "$ROUNDS"); do
    echo "  round $r/$ROUNDS (load $(load_note))" >&2
    order=(direct "${proxies[@]}")
    if [ $((r % 2)) = 0 ]; then
      mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
    fi
    for test in $TESTS; do
      for target in "${order[@]}"; do
        applies "$test" "$target" && measure "$test" "$target"
      done
    done
  done
  rt_off
  echo "load end: $(load_note); took $((SECONDS - BENCH_T0)) s"
  echo
  print_table "${proxies[@]}"
  echo
  echo "Ratios and added latencies: median over the rounds of each round's figure against the"
  echo "direct run next to it, (min–max) over the rounds. Figures in MiB/s and /s: medians."
}

# Formats a figure of test $1 for humans.
human() {
  local test=$1 v=$2
  case "$test" in
    ka50|ka400|tun) awk -v v="$v" 'BEGIN {printf "%.0f/s", v}' ;;
    dl1g|dl8) awk -v v="$v" 'BEGIN {printf "%.0f MiB/s", v / 1048576}' ;;
    *) echo "$v" ;;
  esac
}

verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN {
  if (v == "nan" || v == "") { print "-"; exit }
  ok = dir == ">=" ? v >= t : v <= t; print ok ? "meets" : "MISSES" }'; }

# Whether test $1 was among the measured ones (--tests).
ran() { [[ " $TESTS " == *" $1 "* ]]; }

print_table() {
  local proxies=("$@")
  local has_squid=
  local p
  for p in "${proxies[@]}"; do [ "$p" = squid ] && has_squid=1; done
  local hdr="| measurement | target | direct"
  local sep="|---|---|---:"
  for p in "${proxies[@]}"; do
    hdr="$hdr | $p | $p/direct"
    sep="$sep|---:|---:"
  done
  [ -n "$has_squid" ] && { hdr="$hdr | switchyard/squid"; sep="$sep|---:"; }
  echo "$hdr | switchyard vs target |"
  echo "$sep|---|"
  local names=(
    "ka50:keep-alive 1 KiB GETs, 50 conns:≥ 0.75×:0.75"
    "ka400:keep-alive 1 KiB GETs, 400 conns:≥ 0.75×:0.75"
    "dl1g:1 GiB CONNECT download:≥ 0.95×:0.95"
    "dl8:8 × 256 MiB CONNECT downloads:≥ 0.9×:0.9"
    "tun:new tunnels/s (CONNECT + GET + close, 50 workers):≥ 0.6×:0.6"
  )
  local entry test label target_text target_val row
  for entry in "${names[@]}"; do
    IFS=: read -r test label target_text target_val <<<"$entry"
    ran "$test" || continue
    row="| $label | $target_text | $(human "$test" "$(med "$test.direct")")"
    for p in "${proxies[@]}"; do
      if applies "$test" "$p"; then
        row="$row | $(human "$test" "$(med "$test.$p")") | $(ratio_cell "$test.$p" "$test.direct")"
      else
        row="$row | n/a | n/a"
      fi
    done
    if [ -n "$has_squid" ]; then
      row="$row | $(ratio_cell "$test.switchyard" "$test.squid")"
    fi
    echo "$row | $(verdict "$(median_ratio "$test.switchyard" "$test.direct")" "$target_val" ">=") |"
  done
  # Latency: added µs over direct, p50 and p99, forward path and tunnel.
  local q lt label2 limit
  for lt in lat lat_t; do
    ran "$lt" || continue
    for q in p50 p99; do
      if [ "$lt" = lat ]; then
        label2="added latency $q, one keep-alive conn (absolute-form GET)"
      else
        label2="added latency $q, one keep-alive conn inside a CONNECT tunnel"
      fi
      [ "$q" = p50 ] && limit=60 || limit=150
      row="| $label2 | $([ "$lt" = lat ] && echo "≤ $limit µs" || echo "(info)") | $(med "lat.$q.direct") µs"
      for p in "${proxies[@]}"; do
        if applies "$lt" "$p"; then
          row="$row | $(med "$lt.$q.$p") µs | $(diff_cell "$lt.$q.$p" "lat.$q.direct")"
        else
          row="$row | n/a | n/a"
        fi
      done
      if [ -n "$has_squid" ]; then
        row="$row | $(diff_cell "$lt.$q.switchyard" "$lt.$q.squid")"
      fi
      if [ "$lt" = lat ]; then
        row="$row | $(verdict "$(median_diff "lat.$q.switchyard" "lat.$q.direct")" "$limit" "<=") |"
      else
        row="$row | |"
      fi
      echo "$row"
    done
  done
  [ -z "$SKIP_IDLE" ] || return 0
  row="| RSS per idle tunnel, N = $IDLE_N | ≤ 8 KiB | -"
  local per ok
  for p in "${proxies[@]}"; do
    per=$(idle_field "$p" per_tunnel_bytes)
    ok=$(idle_field "$p" ok)
    row="$row | $(awk -v b="${per:-0}" 'BEGIN {printf "%.1f KiB", b / 1024}') | ${ok:-0}/$IDLE_N open"
  done
  if [ -n "$has_squid" ]; then
    row="$row | $(awk -v a="$(idle_field switchyard per_tunnel_bytes)" -v b="$(idle_field squid per_tunnel_bytes)" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "-"}')"
  fi
  per=$(idle_field switchyard per_tunnel_bytes)
  ok=$(idle_field switchyard ok)
  if [ "${ok:-0}" = "$IDLE_N" ]; then
    echo "$row | $(verdict "$(awk -v b="${per:-0}" 'BEGIN {print b / 1024}')" 8 "<=") |"
  else
    echo "$row | MISSES (not all $IDLE_N tunnels opened) |"
  fi
}
