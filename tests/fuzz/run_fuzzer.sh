#!/bin/sh
# run_fuzzer.sh BINARY CORPUS_DIR WORK_DIR SECONDS [DICT]
# Runs one libFuzzer target for SECONDS over a copy of its seed corpus; any
# crash, leak or timeout makes libFuzzer exit non-zero, which fails the test.
set -eu
bin=$1 corpus=$2 work=$3 secs=$4 dict=${5:-}
rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
[ -d "$corpus" ] && cp -r "$corpus"/. "$work/corpus/" 2>/dev/null || true
set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/"
[ -n "$dict" ] && [ -f "$dict" ] && set -- "$@" -dict="$dict"
exec "$bin" "$@" "$work/corpus"
