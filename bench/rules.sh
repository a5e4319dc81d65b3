#!/bin/sh
# Rule-engine speed: decide() and the NO_PROXY index, 100 vs 10,000 entries.
# Usage: bench/rules.sh   (builds a Release tree in build/bench first)
set -eu
cd "$(dirname "$0")/.."
make -s bench >/dev/null
for b in decide_bench host_match_bench; do
  echo "== $b"
  build/bench/bench/$b --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.2 2>/dev/null | grep -E "median|Benchmark"
done
