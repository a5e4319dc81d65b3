#!/bin/bash
# Switchyard and Debian's squid (5.7) measured the same way in one run: each
# figure a ratio to a direct connection, plus Switchyard's ratio to squid.
#
# Usage: bench/compare.sh [--quick] [--rounds N] [--seconds S] [--floor] [--no-boost] [--no-build] [--tests LIST] [--busy-poll D] [--no-splice]
#   (options as in bench/proxy.sh)
#
# Installs squid, wrk and nginx-light when missing. Squid runs in the
# foreground (-N) on an ephemeral port with a minimal config: no cache, its
# access log on, every client and port allowed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC2034  # read by bench_header in lib.sh
BENCH_COMMAND="bench/compare.sh $*"
bench_parse_args "$@"
bench_need_packages wrk nginx-light curl squid
bench_build
bench_init
bench_build_loadclient
bench_start_nginx
bench_start_switchyard ""
bench_start_squid
proxies=(switchyard squid)
if [ -n "$WITH_FLOOR" ]; then
  bench_start_relay
  proxies+=(relay)
fi
bench_header "Switchyard and squid vs direct"
echo "squid:    $(squid -v | head -1)"
bench_run "${proxies[@]}"
