#!/bin/bash
# Syscalls (and context switches) the daemon makes per forwarded request:
# keep-alive 1 KiB GETs in absolute form from wrk through Switchyard to
# nginx, `perf stat` attached to the daemon (all its threads) for one run,
# each count divided by the requests wrk completed. Unlike throughput, these
# figures do not move with the machine's load.
#
# Usage: bench/syscalls.sh [CONNS...]   (default: 50 400)
#   MODE=tunnels  count per new tunnel instead (CONNECT + one 1 KiB GET +
#            close, 50 in flight, bench/loadclient.cc `tunnels`); CONNS is
#            then ignored
#   SECS=N   length of each measured run (default 3)
#   SY_BIN   the daemon to measure (default build/bench/daemon/switchyard;
#            run `make bench` first)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
SECS=${SECS:-3}
bench_need_packages wrk nginx-light linux-perf
bench_init
bench_build_loadclient
bench_start_nginx
bench_start_switchyard ""
lua=$BENCH_DIR/absolute.lua
cat >"$lua" <<LUA
wrk.path = "http://127.0.0.1:$NGINX_PORT/1k"
wrk.headers["Host"] = "127.0.0.1:$NGINX_PORT"
LUA
calls=(read write writev epoll_wait epoll_ctl setsockopt getpeername getsockname socket connect shutdown
  close accept4 ioctl futex)
events=context-switches
for c in "${calls[@]}"; do
  events="$events,syscalls:sys_enter_$c"
done
per_unit() { # $1: units completed, $2: perf output
  awk -F, -v r="$1" '
    $3 ~ /sys_enter_/ { name = $3; sub(/.*sys_enter_/, "", name); total += $1
                        printf "  %-16s %7.3f\n", name, $1 / r }
    $3 == "context-switches" { cs = $1 / r }
    END { printf "  %-16s %7.3f\n  %-16s %7.3f\n", "all syscalls", total / r,
          "context switches", cs }' "$2"
}
if [ "${MODE:-}" = tunnels ]; then
  lc tunnels --target "127.0.0.1:$NGINX_PORT" --proxy "127.0.0.1:$SY_PORT" --conc 50 \
    --seconds 1 --path /1k >/dev/null
  perf stat -x, -e "$events" -p "$SY_PID" -o "$BENCH_DIR/perf.tunnels" &
  perf_pid=$!
  sleep 0.2
  out=$(lc tunnels --target "127.0.0.1:$NGINX_PORT" --proxy "127.0.0.1:$SY_PORT" --conc 50 \
    --seconds "$SECS" --path /1k)
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  done_=$(echo "$out" | tr ' ' '\n' | sed -n 's/^done=//p')
  echo "new tunnels: $out; per tunnel:"
  per_unit "$done_" "$BENCH_DIR/perf.tunnels"
  exit 0
fi
[ $# -gt 0 ] || set -- 50 400
for conns in "$@"; do
  # A first run opens the client connections and fills the upstream pool.
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d1s -s "$lua" "http://127.0.0.1:$SY_PORT/" >/dev/null
  perf stat -x, -e "$events" -p "$SY_PID" -o "$BENCH_DIR/perf.$conns" &
  perf_pid=$!
  sleep 0.2
  out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${SECS}s" -s "$lua" "http://127.0.0.1:$SY_PORT/")
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  requests=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
  echo "$conns connections: $requests requests in ${SECS}s; per request:"
  per_unit "$requests" "$BENCH_DIR/perf.$conns"
done
