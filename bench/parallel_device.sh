#!/usr/bin/env bash
# bench/parallel_device.sh - the engine's parallel modes (CFG, Ulysses) on a GPU machine, in one call:
#   1. build the engine-only tree ($BUILD_DIR, default build-dev) with the CUDA backend:
#      test_cuda_parallel, test_cuda_eltwise (swap01), test_parallel (two CPU ranks) and bench_parallel;
#   2. run those tests (two processes on one GPU through comm_tcp; two CPU ranks);
#   3. bench_parallel: random 1.3B- and 14B-shaped weights at 832x480x81, one process per GPU
#      joined through NCCL, with NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 so the traffic takes the
#      network path as between two hosts (NVLink multicast stays off: NCCL_NVLS_ENABLE=0);
#      with one GPU only the single-GPU part runs and it says "needs 2 GPUs";
#   4. the table last.
# Logs go to $OUT (the device tool brings that folder back) or /tmp/auteur-parallel; the weights
# to /tmp/auteur-parallel-data (too large to bring back).
# Usage: bench/parallel_device.sh [all|test|bench] [bench_parallel options: --model, --layers, --iters, --grid]
# Carry the team's .deps (jansson) when the machine has no libjansson-dev.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/auteur-parallel}
DATA=/tmp/auteur-parallel-data
BUILD_DIR=${BUILD_DIR:-build-dev}
MODE=${1:-all}
[ $# -gt 0 ] && shift
mkdir -p "$OUT" "$DATA"
LOG_BUILD=$OUT/build.log LOG_TEST=$OUT/tests.log LOG_BENCH=$OUT/bench.log
: >"$LOG_TEST"
: >"$LOG_BENCH"
step() { echo "== $* ($(date +%T))"; }

step environment
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader
nvcc --version | tail -1

step build
targets="au_cuda test_cuda_parallel test_cuda_eltwise test_parallel bench_parallel"
if ! cmake -S . -B "$BUILD_DIR" -DAUTEUR_ENGINE_ONLY=ON -DCMAKE_BUILD_TYPE=Release -DAUTEUR_CUDA_ARCHS="${CUDA_ARCHS:-90a-real}" >"$LOG_BUILD" 2>&1; then
    tail -30 "$LOG_BUILD"
    exit 1
fi
grep -E "NCCL|CUDA:" "$LOG_BUILD"
if ! cmake --build "$BUILD_DIR" --target $targets -j "$(nproc)" >>"$LOG_BUILD" 2>&1; then
    grep -E "error|Error" "$LOG_BUILD" | head -40
    exit 1
fi

status=0
if [ "$MODE" != bench ]; then
    step tests
    for t in test_cuda_eltwise test_cuda_parallel test_parallel; do
        bin=$(find "$BUILD_DIR/tests" -name "$t" -type f | head -1)
        AUTEUR_SOURCE_DIR=$PWD timeout 300 "$bin" >"$OUT/one.log" 2>&1
        rc=$?
        cat "$OUT/one.log" >>"$LOG_TEST"
        grep -E "swap01|PSNR|max rel|cancel|killed|silent|CHECK|FAIL|skipped|checks," "$OUT/one.log" | head -40
        echo "$t: rc $rc"
        [ $rc -ne 0 ] && [ $rc -ne 77 ] && status=1
    done
    rm -f "$OUT/one.log"
fi

if [ "$MODE" != test ]; then
    step "bench_parallel $*"
    NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 NCCL_NVLS_ENABLE=0 NCCL_DEBUG=${NCCL_DEBUG:-WARN} \
        "$BUILD_DIR/bench/bench_parallel" "$DATA" "$@" 2>&1 | tee "$LOG_BENCH"
    [ "${PIPESTATUS[0]}" -ne 0 ] && status=1
fi
exit $status
