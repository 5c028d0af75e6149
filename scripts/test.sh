#!/usr/bin/env bash
# Install dependencies, build, and run the whole test suite.
# Usage: scripts/test.sh [--asan] [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
mode=""; dir=build
if [ "${1:-}" = "--asan" ]; then mode=--asan; dir=build-asan; shift; fi
bash scripts/build.sh $mode
if [ -n "$mode" ]; then
  # Leaks are errors; modules stay loaded at exit so their frames resolve.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LF_SANITIZED=1
fi
ctest --test-dir "$dir" --output-on-failure -j2 "$@"
