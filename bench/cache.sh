#!/bin/bash
# Module-cache hits: Switchyard as a GOPROXY server answering from its disk
# cache, against Debian's nginx serving the same files from disk, measured
# in the same run, interleaved. Prints a markdown table (docs/BENCHMARKS.md,
# "Cache hits").
#
# Usage: bench/cache.sh [--quick] [--rounds N] [--seconds S] [--no-boost] [--no-build] [--profile]
#   --quick      3 rounds of 2 s runs (~1.5 min, plus the build)
#   --rounds N   interleaved rounds, at least 3 (default 7)
#   --seconds S  length of each wrk run (default 3)
#   --no-boost   keep normal priority (default as root: the rounds run under
#                SCHED_FIFO, setup at nice -20; other work shares the machine)
#   --no-build   measure build/bench as it is instead of running make bench
#   --profile    no rounds: instead, for each server and test, count the
#                server's syscalls, faults and CPU time per request (perf
#                stat) and sample CPU 0 (perf record -g) while wrk runs;
#                prints the counts and the top symbols, keeps the directory
#                (prof/perf.*.data for perf report); PROFILE_SECS=N sets the
#                length of each perf run (default 5)
#
# Generates a GOPROXY tree (a few modules, each a 1 MiB .zip with one stored
# random member, a .mod and a small .info), serves it with nginx (the same
# nginx as bench/proxy.sh: one worker, sendfile, keep-alive), starts the
# daemon with cache.dir set and env.GOPROXY pointing at nginx, fetches every
# file once through the daemon (miss: fetched and stored), checks that the
# next request of each is a hit with the origin's bytes, then runs wrk with
# keep-alive against nginx and against the daemon, the same origin-form
# paths (round-robin over the modules) on both. Both servers run on CPU 0
# (nginx moves there once the cache is filled), wrk on CPU 1. After the
# rounds it checks in the decision log that every request measured was a
# hit.
# BENCH_KEEP=1 keeps the temporary directory (raw figures in res/, logs,
# configs, the cache). SY_DAEMON_ENV="NAME=VALUE ..." adds to the daemon's
# environment only (e.g. GLIBC_TUNABLES=glibc.malloc.trim_threshold=...).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
BENCH_COMMAND="${SY_DAEMON_ENV:+SY_DAEMON_ENV=\"$SY_DAEMON_ENV\" }bench/cache.sh${*:+ $*}"
PROFILE=
args=()
for a in "$@"; do
  if [ "$a" = --profile ]; then PROFILE=1; else args+=("$a"); fi
done
bench_parse_args ${args[@]+"${args[@]}"}
[ -n "$PROFILE" ] && BENCH_KEEP=1
if [ -n "$WITH_FLOOR" ]; then
  echo "--floor has no meaning here (no CONNECT relay for GOPROXY requests)" >&2
  exit 2
fi
bench_need_packages wrk nginx-light curl python3
[ -z "$PROFILE" ] || bench_need_packages linux-perf
bench_build
bench_init
bench_build_loadclient

MODULES=(m1 m2 m3 m4)
MODULE_PREFIX=example.com/bench
VERSION=v1.0.0
ZIP_MEMBER_BYTES=$((1 << 20))
CONNS=(1 8 32)

# Writes the GOPROXY tree for $MODULES under $1: <module>/@v/list,
# <version>.info, .mod and .zip (a valid zip: one stored member of
# $ZIP_MEMBER_BYTES random bytes, so the cache's zip check passes and the
# bytes do not compress).
write_goproxy_tree() {
  python3 - "$1" "$MODULE_PREFIX" "$VERSION" "$ZIP_MEMBER_BYTES" "${MODULES[@]}" <<'EOF'
import json, os, sys, zipfile
root, prefix, version, member_bytes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for name in sys.argv[5:]:
    module = prefix + "/" + name
    d = os.path.join(root, module, "@v")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "list"), "w") as f:
        f.write(version + "\n")
    with open(os.path.join(d, version + ".info"), "w") as f:
        json.dump({"Version": version, "Time": "2026-01-02T03:04:05Z"}, f)
    with open(os.path.join(d, version + ".mod"), "w") as f:
        f.write("module %s\n\ngo 1.18\n" % module)
    with zipfile.ZipFile(os.path.join(d, version + ".zip"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("%s@%s/go.mod" % (module, version), "module %s\n\ngo 1.18\n" % module)
        z.writestr("%s@%s/blob.bin" % (module, version), os.urandom(member_bytes))
EOF
}

# The daemon on CPU 0 as a GOPROXY server: cache.dir set, every miss fetched
# from nginx ($NGINX_PORT), decisions as JSON lines in a file.
start_cache_daemon() {
  local d=$BENCH_DIR/switchyard
  mkdir -p "$d"
  SY_BIN=${SY_BIN:-$BENCH_ROOT/build/bench/daemon/switchyard}
  SY_DECISIONS=$d/decisions.log
  cat >"$d/switchyard.yaml" <<EOF
listen: ["127.0.0.1:0"]
inherit_env: false
env:
  GOPROXY: "http://127.0.0.1:$NGINX_PORT"
  GOSUMDB: "off"
cache:
  dir: "$d/cache"
limits:
  max_connections: 100000
  max_connections_per_client: 100000
  idle_timeout: 1h
log:
  level: info
  format: json
  decisions: "$SY_DECISIONS"
EOF
  bench_launch_switchyard "$d"
}

# Decision-log lines so far, and those with cache=hit.
decisions_total() { wc -l <"$SY_DECISIONS"; }
decisions_hits() { grep -c '"cache":"hit"' "$SY_DECISIONS" || true; }

# Waits until the decision log holds at least $1 lines (it is written by a
# thread of its own, a little after the response).
wait_decisions() {
  local want=$1 i
  for i in $(seq 1 100); do
    [ "$(decisions_total)" -ge "$want" ] && return 0
    sleep 0.1
  done
  echo "the decision log has $(decisions_total) lines, expected $want" >&2
  return 1
}

# Waits until the decision log stops growing (the lines of the requests
# wrk left in flight at the end of its last run), at most 5 s.
decisions_settle() {
  local before after
  after=$(decisions_total)
  for _ in $(seq 1 25); do
    before=$after
    sleep 0.2
    after=$(decisions_total)
    [ "$after" = "$before" ] && return 0
  done
}

# The cacheable paths of the tree (origin-form, the same on both ports).
paths_of() {
  local ext=$1 m
  for m in "${MODULES[@]}"; do
    echo "/$MODULE_PREFIX/$m/@v/$VERSION.$ext"
  done
}

# Fetches every path through the daemon twice: the first is a miss (fetched
# from nginx and stored), the second must be a hit with the same bytes as
# the origin's file. Fails loudly otherwise.
warm_and_check_cache() {
  local www=$BENCH_DIR/nginx/www
  local p n=0 lines
  for p in $(paths_of zip) $(paths_of info) $(paths_of mod); do
    curl -sS --fail -o /dev/null "http://127.0.0.1:$SY_PORT$p"
    n=$((n + 1))
  done
  wait_decisions "$n"
  for p in $(paths_of zip) $(paths_of info) $(paths_of mod); do
    if ! curl -sS --fail "http://127.0.0.1:$SY_PORT$p" | cmp -s - "$www$p"; then
      echo "the daemon's answer for $p differs from the origin's file" >&2
      exit 1
    fi
    n=$((n + 1))
  done
  wait_decisions "$n"
  lines=$(tail -n $((n / 2)) "$SY_DECISIONS")
  if [ "$(grep -c '"cache":"hit"' <<<"$lines")" != $((n / 2)) ]; then
    echo "the second request of each file was not a cache hit:" >&2
    echo "$lines" >&2
    exit 1
  fi
  WARM_LINES=$n
}

# Keep-alive GETs with wrk, $1 connections for $2 seconds on port $3, the
# paths of the Lua script $4 in turn. Prints "requests/s requests".
m_wrk_paths() {
  local conns=$1 secs=$2 port=$3 lua=$4
  local out
  out=$("${RT_CMD[@]}" taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${secs}s" -s "$lua" \
    "http://127.0.0.1:$port/")
  if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
    echo "wrk saw errors on port $port:" >&2
    echo "$out" >&2
  fi
  echo "$out" | awk '/^Requests\/sec:/ {r = $2} / requests in / {n = $1} END {print r, n}'
}

# CPU time (user + system, all threads) of process $1 so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# A wrk script asking for the paths of extension $1 round-robin.
write_lua() {
  local ext=$1 out=$BENCH_DIR/$1.lua
  {
    echo "local paths = {"
    paths_of "$ext" | sed 's/.*/  "&",/'
    echo "}"
    echo "local i = 0"
    echo "request = function()"
    echo "  i = i % #paths + 1"
    echo "  return wrk.format(\"GET\", paths[i])"
    echo "end"
  } >"$out"
}

port_of_target() {
  case "$1" in
    nginx) echo "$NGINX_PORT" ;;
    switchyard) echo "$SY_PORT" ;;
  esac
}

# Body bytes of one file of extension $1 (all modules' are the same size
# within a few bytes).
body_size() { stat -c %s "$BENCH_DIR/nginx/www$(paths_of "$1" | head -1)"; }

cache_header() {
  echo "# Switchyard module-cache hits vs nginx"
  echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "command:  $BENCH_COMMAND"
  echo "commit:   $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH_ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "machine:  $(nproc) CPUs, $(uname -r); switchyard and nginx (each measured alone) on CPU $PROXY_CPU, wrk on CPU $CLIENT_CPU"
  [ -n "$PROFILE" ] && echo "mode:     --profile (perf stat, then perf record -g, ${PROFILE_SECS}s each, per server and test)"
  [ -n "$PROFILE" ] || echo "rounds:   $ROUNDS interleaved (nginx and switchyard back to back per test, order reversed every other round); ${SECS}s per wrk run"
  echo "binary:   build/bench/daemon/switchyard, built $(date -u -r "$SY_BIN" '+%Y-%m-%d %H:%M UTC')$([ -n "$BUILD" ] || echo ' (--no-build)')"
  echo "priority: $([ -n "$BOOST" ] && echo 'rounds under SCHED_FIFO 50 (switchyard, nginx, wrk), setup at nice -20' || echo 'normal (--no-boost)')"
  echo "origin:   $(nginx -v 2>&1 | sed 's/.*: //'), 1 worker, sendfile, keep-alive"
  echo "files:    ${#MODULES[@]} modules round-robin; .zip $(body_size zip) bytes, .info $(body_size info) bytes"
}

run_rounds() {
  local tests=() ext c
  for ext in zip info; do
    for c in "${CONNS[@]}"; do
      tests+=("$ext.$c")
    done
  done
  rt_on
  # Warm-up: connections, page cache, the daemon's pools.
  for ext in zip info; do
    m_wrk_paths 8 1 "$NGINX_PORT" "$BENCH_DIR/$ext.lua" >/dev/null
    m_wrk_paths 8 1 "$SY_PORT" "$BENCH_DIR/$ext.lua" >/dev/null
  done
  local r test target order out t0 t1 pid
  local hz
  hz=$(getconf CLK_TCK)
  for r in $(seq 1 "$ROUNDS"); do
    echo "  round $r/$ROUNDS (load $(load_note))" >&2
    order=(nginx switchyard)
    [ $((r % 2)) = 0 ] && order=(switchyard nginx)
    for test in "${tests[@]}"; do
      for target in "${order[@]}"; do
        [ "$target" = nginx ] && pid=$NGINX_PID || pid=$SY_PID
        t0=$(cpu_ticks "$pid")
        out=$(m_wrk_paths "${test#*.}" "$SECS" "$(port_of_target "$target")" "$BENCH_DIR/${test%.*}.lua")
        t1=$(cpu_ticks "$pid")
        if [ -z "${out% *}" ] || [ -z "${out#* }" ]; then
          echo "warning: $test via $target gave no figure" >&2
          out="0 0"
        fi
        record "$test.$target" "${out% *}"
        # The server's CPU per request (µs): what it costs, whoever limits
        # the rate (wrk on CPU 1 can be the limit for the 1 MiB files).
        record "cpu.$test.$target" "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="${out#* }" \
          'BEGIN {if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print 0}')"
      done
    done
  done
  rt_off
}

# ---------------------------------------------------------------------------
# --profile

PROFILE_SECS=${PROFILE_SECS:-5}

# Profiles server $1 (nginx or switchyard, pid $2) under wrk with $4
# connections on the paths of extension $3, in one wrk run: perf stat on the
# server's threads, then perf record of its CPU (the report keeps the
# server's pid; the rest shows what else ran there). Counts are per
# request, taken as per openat(2): both servers open the file once per
# request (nginx has no open_file_cache here; the daemon opens the entry
# once per hit), which keeps the figures right while perf itself slows wrk
# down.
profile_one() {
  local target=$1 pid=$2 ext=$3 conns=$4
  local name=$target.$ext.$conns
  local dir=$BENCH_DIR/prof
  mkdir -p "$dir"
  # wrk runs until both perf runs are done (attaching to every syscall
  # tracepoint takes perf stat a few seconds), then is stopped.
  "${RT_CMD[@]}" taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d600s \
    -s "$BENCH_DIR/$ext.lua" "http://127.0.0.1:$(port_of_target "$target")/" >/dev/null &
  local wrk_pid=$!
  sleep 1  # wrk's connections are up and busy
  perf stat -x, -e 'task-clock,page-faults,context-switches,syscalls:sys_enter_*' -p "$pid" \
    -o "$dir/$name.stat" -- sleep "$PROFILE_SECS" >/dev/null 2>&1
  perf record -q -g -F 1000 -a -C "$PROXY_CPU" -o "$dir/perf.$name.data" -- sleep "$PROFILE_SECS" \
    >/dev/null 2>&1
  kill "$wrk_pid"
  wait "$wrk_pid" 2>/dev/null || true
  echo
  echo "### $target, .$ext, $conns conns"
  awk -F, -v secs="$PROFILE_SECS" '{v[$3] = $1} END {
    n = v["syscalls:sys_enter_openat"]
    if (n == 0) { print "no requests counted"; exit }
    for (k in v) if (k ~ /^syscalls:/) total += v[k]
    printf "%.0f requests/s under perf stat; per request: %.0f µs CPU, %.2f page faults, %.2f context switches, %.1f syscalls:\n",
      n / secs, v["task-clock"] * 1000 / n, v["page-faults"] / n, v["context-switches"] / n, total / n
    for (k in v) if (k ~ /^syscalls:/ && v[k] / n >= 0.05) {
      c = k; sub("syscalls:sys_enter_", "", c); printf "%s %.2f\n", c, v[k] / n }
  }' "$dir/$name.stat" | {
    IFS= read -r line
    echo "$line"
    sort -k2 -gr | awk '{printf "  %s %s", $1, $2} END {print ""}' | fold -s -w 100
  }
  echo "top symbols in $target (self, % of all samples on CPU $PROXY_CPU):"
  perf report -i "$dir/perf.$name.data" --pid "$pid" --no-children -g none \
    --sort dso,sym --stdio >"$dir/$name.report" 2>"$dir/$name.report.err" || true
  awk '/^ +[0-9.]+%/ && n++ < 15' "$dir/$name.report" | cut -c1-120
}

run_profiles() {
  local target pid ext conns
  for ext in zip info; do
    for conns in 8 32; do
      for target in nginx switchyard; do
        [ "$target" = nginx ] && pid=$NGINX_PID || pid=$SY_PID
        profile_one "$target" "$pid" "$ext" "$conns"
      done
    done
  done
  echo
  echo "kept: $BENCH_DIR (prof/perf.*.data: perf report -i FILE)"
}

# "N MiB/s" for a median of requests/s $1 of files of $2 bytes.
mib_per_s() { awk -v r="$1" -v s="$2" 'BEGIN {
  m = r * s / 1048576; printf (m < 10 ? "%.1f MiB/s" : "%.0f MiB/s"), m }'; }
per_s() { awk -v r="$1" 'BEGIN {printf "%.0f/s", r}'; }

print_cache_table() {
  local zip_size info_size
  zip_size=$(body_size zip)
  info_size=$(body_size info)
  echo "| file | conns | nginx | switchyard | nginx | switchyard | switchyard/nginx | target | CPU per request, nginx / switchyard |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|---:|"
  local ext c size target_text n s ratio
  for ext in zip info; do
    for c in "${CONNS[@]}"; do
      if [ "$ext" = zip ]; then
        size=$zip_size
        target_text="≥ 0.8×: $(verdict "$(median_ratio "$ext.$c.switchyard" "$ext.$c.nginx")" 0.8 ">=")"
      else
        size=$info_size
        target_text="(info)"
      fi
      n=$(med "$ext.$c.nginx")
      s=$(med "$ext.$c.switchyard")
      ratio=$(ratio_cell "$ext.$c.switchyard" "$ext.$c.nginx")
      echo "| .$ext ($size B) | $c | $(per_s "$n") | $(per_s "$s") | $(mib_per_s "$n" "$size") | $(mib_per_s "$s" "$size") | $ratio | $target_text | $(med "cpu.$ext.$c.nginx") / $(med "cpu.$ext.$c.switchyard") µs |"
    done
  done
}

bench_start_nginx
write_goproxy_tree "$BENCH_DIR/nginx/www"
start_cache_daemon
warm_and_check_cache
# From here on nginx is the other server under test, not the daemon's
# origin: it moves to the daemon's CPU, so that wrk has CPU 1 to itself in
# both runs and each server gets one CPU (nginx on CPU 1 would share it with
# wrk and flatter the ratio).
taskset -a -p -c "$PROXY_CPU" "$NGINX_PID" >/dev/null
write_lua zip
write_lua info
cache_header
echo "load:     $(load_note) (1/5/15-min load averages at start)"
if [ -n "$PROFILE" ]; then
  rt_on
  run_profiles
  rt_off
  exit 0
fi
BENCH_T0=$SECONDS
run_rounds
# Every request the daemon answered in the rounds must have been a hit.
decisions_settle
measured_total=$(($(decisions_total) - WARM_LINES))
measured_hits=$(($(decisions_hits) - WARM_LINES / 2))
echo "load end: $(load_note); took $((SECONDS - BENCH_T0)) s"
echo "hits:     $measured_hits of $measured_total requests to switchyard in the rounds (and their warm-up) were cache hits (decision log)"
if [ "$measured_hits" != "$measured_total" ]; then
  echo "warning: not every measured request was a cache hit" >&2
fi
echo
print_cache_table
echo
echo "Requests/s and MiB/s (body bytes): medians over the rounds. Ratio: median over the"
echo "rounds of each round's switchyard figure against the nginx run next to it, (min–max)."
echo "CPU per request: the server's user + system time (/proc/PID/stat, all threads) during"
echo "its run divided by the requests wrk completed, median over the rounds."
