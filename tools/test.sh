#!/usr/bin/env bash
# test.sh - builds Auteur and runs the whole test suite (what CI runs, via .ci/run).
#   1. installs what is missing (tools/deps.sh)
#   2. release build (with the CUDA backend when nvcc is present) and every ctest test:
#      unit, parity, e2e (GPU tests say "skipped: no GPU" without one)
#   3. an address+undefined sanitizer build running the unit and end-to-end tests again
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)

tools/deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS"
ctest --test-dir build --output-on-failure -j"$JOBS" --timeout 900

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAUTEUR_SANITIZE=ON -DAUTEUR_CUDA=OFF >/dev/null
cmake --build build-asan -j"$JOBS"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS" -L "unit|e2e" -E prompt_following --timeout 900
