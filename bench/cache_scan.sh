#!/bin/sh
# Module-cache start-up cost: CacheStore::scan() over 100,000 entries
# written by the real Writer in a temporary directory under /tmp (warm, and
# with each file's pages dropped). Target: well under 2 s warm.
# Usage: bench/cache_scan.sh [--entries N] [--drop-caches] [--dir DIR --keep]
#   BUILD_DIR=build/x bench/cache_scan.sh   uses another Release tree
# --drop-caches also times a scan after dropping the kernel's caches (root;
# it slows the whole machine for a moment).
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build/bench}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_C_COMPILER="${CC:-clang}" \
    -DCMAKE_CXX_COMPILER="${CXX:-clang++}" -DCMAKE_BUILD_TYPE=Release -DSY_TESTS=OFF >/dev/null
fi
cmake --build "$BUILD_DIR" -j 2 --target cache_scan_bench >/dev/null
"$BUILD_DIR/bench/cache_scan_bench" "$@"
