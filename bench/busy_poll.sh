#!/bin/bash
# What limits.busy_poll buys and costs: one keep-alive connection of
# absolute-form 1 KiB GETs from bench/loadclient.cc through Switchyard to
# nginx, paced with a pause between requests (0: back to back; 100 µs;
# 1 ms; 10 ms), for busy_poll 0 (off), the shipped 200us and 1ms. For each,
# the added latency p50 against a direct run at the same pace just before,
# and the daemon's CPU time (utime + stime, /proc/PID/stat) as a share of
# one core over the run. The spin is worth it where the added latency falls;
# the CPU column is its price, and should stay near the off figure where
# traffic is sparser than the window.
#
# Usage: bench/busy_poll.sh [GAP_US...]   (default: 0 100 1000 10000)
#   COUNT=N  requests per run (default 2000; the 10 ms pace takes N/100 s)
#   SY_BIN   the daemon to measure (default build/bench/daemon/switchyard;
#            run `make bench` first)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
COUNT=${COUNT:-2000}
bench_need_packages nginx-light
bench_init
bench_build_loadclient
bench_start_nginx
[ $# -gt 0 ] || set -- 0 100 1000 10000
tick=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

echo "machine:  $(nproc) CPUs, $(uname -r); proxy on CPU $PROXY_CPU, nginx + client on CPU $CLIENT_CPU"
hp=/sys/module/haltpoll/parameters/guest_halt_poll_ns
echo "cpuidle:  $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)$([ -r "$hp" ] && echo ", guest_halt_poll_ns $(cat "$hp")")"
echo "commit:   $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null); $COUNT requests per run"
echo
echo "| busy_poll | pause between requests | direct p50 | added p50 | added p99 | daemon CPU (share of a core) |"
echo "|---|---:|---:|---:|---:|---:|"
for bp in 0 200us 1ms; do
  BUSY_POLL=$bp bench_start_switchyard "-$bp"
  for gap in "$@"; do
    common=(--target "127.0.0.1:$NGINX_PORT" --count "$COUNT" --gap-us "$gap" --path /1k)
    direct=$(lc latency "${common[@]}")
    before=$(cpu_ticks "$SY_PID")
    proxied=$(lc latency "${common[@]}" --proxy "127.0.0.1:$SY_PORT")
    used=$(($(cpu_ticks "$SY_PID") - before))
    awk -v bp="$bp" -v gap="$gap" -v t="$tick" -v used="$used" \
      -v d50="$(echo "$direct" | field p50_us)" -v p50="$(echo "$proxied" | field p50_us)" \
      -v d99="$(echo "$direct" | field p99_us)" -v p99="$(echo "$proxied" | field p99_us)" \
      -v secs="$(echo "$proxied" | field seconds)" \
      'BEGIN { printf "| %s | %s µs | %.1f µs | %+.0f µs | %+.0f µs | %.0f%% |\n",
               bp, gap, d50, p50 - d50, p99 - d99, 100 * used / t / secs }'
  done
  kill "$SY_PID"
  wait "$SY_PID" 2>/dev/null || true
done
