#!/usr/bin/env bash
# Configure and build. Usage: scripts/build.sh [--asan]
#   default  -> build/       (RelWithDebInfo)
#   --asan   -> build-asan/  (AddressSanitizer + UndefinedBehaviorSanitizer)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build; extra=()
if [ "${1:-}" = "--asan" ]; then dir=build-asan; extra=(-DLF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug); fi
cmake -S . -B "$dir" "${extra[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
