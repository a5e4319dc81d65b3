#!/bin/bash
# Proxy core speed: Switchyard against a direct connection, measured in the
# same run, interleaved. Prints a markdown table (docs/BENCHMARKS.md).
#
# Usage: bench/proxy.sh [--quick] [--rounds N] [--seconds S] [--floor] [--no-boost] [--no-build] [--tests LIST] [--busy-poll D] [--no-splice]
#   --quick      3 rounds of 2 s runs and 3,000 latency samples (~1.5 min,
#                plus the build)
#   --rounds N   interleaved rounds, at least 3 (default 7)
#   --seconds S  length of each wrk and new-tunnel run (default 3)
#   --floor      also measure a minimal CONNECT relay (bench/loadclient.cc
#                `relay`): what any user-space proxy pays on this machine
#   --no-boost   keep normal priority (default as root: the rounds run under
#                SCHED_FIFO, setup at nice -20; other work shares the machine)
#   --no-build   measure build/bench as it is instead of running make bench
#   --tests LIST only these of "ka50 ka400 dl1g dl8 tun lat lat_t" (quoted,
#                space-separated), and no idle-tunnel measurement
#   --busy-poll D  run Switchyard with limits.busy_poll D (e.g. 0 for off,
#                1ms; default: the shipped default, 200us)
#   --no-splice  run Switchyard with limits.splice false (tunnels copy
#                through memory instead of splice(2))
#
# Builds the Release tree (make bench) and the load client, installs wrk and
# nginx-light when missing, starts nginx (origin) and the daemon on ephemeral
# ports in a temporary directory, and stops both on exit (BENCH_KEEP=1 keeps
# the directory: raw per-round figures in res/, logs, configs).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC2034  # read by bench_header in lib.sh
BENCH_COMMAND="bench/proxy.sh $*"
bench_parse_args "$@"
bench_need_packages wrk nginx-light curl
bench_build
bench_init
bench_build_loadclient
bench_start_nginx
bench_start_switchyard ""
proxies=(switchyard)
if [ -n "$WITH_FLOOR" ]; then
  bench_start_relay
  proxies+=(relay)
fi
bench_header "Switchyard proxy core vs direct"
bench_run "${proxies[@]}"
