#!/usr/bin/env bash
# bench/device.sh - everything the CUDA backend needs checked on a GPU machine, in one call:
#   1. build the engine-only tree (build-dev) with the CUDA backend and its tests/benchmarks,
#   2. run the GPU tests (tests/gpu/test_cuda_*.c: every op against the CPU backend),
#   3. run the benchmarks: bench_cuda_ops / torch_ops.py (GEMMs, attention) and bench_cuda_dit /
#      torch_dit.py (a DiT forward at the 1.3B shape, with relative errors against float32),
#      ours and PyTorch on the same GPU in the same run,
#   4. run the tests again under compute-sanitizer (memcheck; racecheck for the shared-memory kernels),
#   5. print a table of times, TFLOP/s and ratios last.
# Logs go to $OUT (the device tool brings that folder back) or /tmp/auteur-device.
# Usage: bench/device.sh [all|test|bench] [--quick]; SANITIZE=0 skips compute-sanitizer;
# PROFILE=1 adds an Nsight Compute profile of the attention kernel ($OUT/profile.log).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/auteur-device}
mkdir -p "$OUT"
MODE=${1:-all}
QUICK=${2:-}
JOBS=$(nproc)
LOG_BUILD=$OUT/build.log LOG_TEST=$OUT/tests.log LOG_BENCH=$OUT/bench.log SUMMARY=$OUT/summary.txt
: >"$LOG_TEST"
: >"$LOG_BENCH"
step() { echo "== $* ($(date +%T))"; }

step environment
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$SUMMARY"
nvcc --version | tail -1
[ -f /usr/include/jansson.h ] && echo "jansson: system" || echo "jansson: .deps ($(ls .deps/include 2>/dev/null | tr '\n' ' '))"

step build
gpu_tests=$(ls tests/gpu/test_cuda_*.c 2>/dev/null | xargs -n1 basename | sed 's/\.c$//')
benches=$(ls bench/bench_cuda_*.c 2>/dev/null | xargs -n1 basename | sed 's/\.c$//')
if ! cmake -S . -B build-dev -DAUTEUR_ENGINE_ONLY=ON -DCMAKE_BUILD_TYPE=Release -DAUTEUR_CUDA_ARCHS="${CUDA_ARCHS:-90a-real}" >"$LOG_BUILD" 2>&1; then
    tail -30 "$LOG_BUILD"
    exit 1
fi
if ! cmake --build build-dev --target au_cuda $gpu_tests $benches -j "$JOBS" >>"$LOG_BUILD" 2>&1; then
    grep -E "error|Error" "$LOG_BUILD" | head -40
    exit 1
fi
echo "built: au_cuda $gpu_tests $benches"

if [ "$MODE" != bench ]; then
    step tests
    for t in $gpu_tests; do
        timeout 300 "build-dev/tests/$t" >"$OUT/one.log" 2>&1
        rc=$?
        cat "$OUT/one.log" >>"$LOG_TEST"
        grep -E "CHECK|error|skipped" "$OUT/one.log" | head -30
        echo "$t: rc $rc, $(grep -E 'checks,' "$OUT/one.log")" | tee -a "$SUMMARY"
    done
    rm -f "$OUT/one.log"
fi

if [ "$MODE" != test ]; then
    step benchmarks: GEMM and attention
    build-dev/bench/bench_cuda_ops $QUICK 2>&1 | tee -a "$LOG_BENCH"
    PYTHONUNBUFFERED=1 python3 bench/torch_ops.py $QUICK 2>&1 | tee -a "$LOG_BENCH"
    step benchmarks: DiT forward, 1.3B shape, 832x480x81
    dit_dir=/tmp/auteur-dit/1.3B
    mkdir -p "$dit_dir"
    build-dev/bench/bench_cuda_dit "$dit_dir" 2>&1 | tee -a "$LOG_BENCH"
    PYTHONUNBUFFERED=1 python3 bench/torch_dit.py "$dit_dir" 2>&1 | tee -a "$LOG_BENCH"
fi

if [ "$MODE" != test ] && [ "${PROFILE:-0}" = 1 ]; then
    step ncu: the flash kernel at the 1.3B self-attention shape, both variants
    for skip in 0 12; do # launch 0: the default variant (32 per warp), 12: the 16-per-warp one
        timeout 120 ncu --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats \
            --section Occupancy -k regex:flash_kernel --launch-skip $skip --launch-count 1 \
            build-dev/bench/bench_cuda_ops --quick --attn-only >>"$OUT/profile.log" 2>&1
        echo "ncu (flash launch $skip): rc $?"
    done
    grep -E "flash_kernel|Duration|Compute \(SM\) Throughput|Memory Throughput|Registers|Achieved Occupancy|Stall|Issue Slots|Pipe|Shared" "$OUT/profile.log" | head -60
fi

if [ "$MODE" != bench ] && [ "${SANITIZE:-1}" != 0 ]; then
    step compute-sanitizer
    for t in $gpu_tests; do
        api=explicit # test_cuda_oom makes cudaMalloc fail on purpose: only its memory accesses count
        [ "$t" = test_cuda_oom ] && api=no
        # the ranks of test_cuda_parallel run at the sanitizer's pace: a longer comm timeout
        AUTEUR_TEST_COMM_TIMEOUT_MS=60000 timeout 150 compute-sanitizer --tool memcheck --report-api-errors $api --error-exitcode 99 "build-dev/tests/$t" \
            >>"$LOG_TEST" 2>&1
        echo "memcheck $t: rc $? (0 clean, 99 errors, 124 timeout)" | tee -a "$SUMMARY"
    done
    timeout 300 compute-sanitizer --tool racecheck --error-exitcode 99 build-dev/tests/test_cuda_ops >>"$LOG_TEST" 2>&1
    echo "racecheck test_cuda_ops: rc $?" | tee -a "$SUMMARY"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOG_TEST" | sort | uniq -c
fi

step summary
grep -E "^ERROR|^# " "$LOG_BENCH" | tee -a "$SUMMARY"
# RESULT <kind> <name> <impl> <ms> <TFLOP/s>: ours are fp8/bf16, PyTorch's torch-<variant>.
awk '$1 == "RESULT" {
        key = $2 " " $3; if (!(key in seen)) { seen[key] = 1; order[n++] = key }
        ms[key, $4] = $5; tf[key, $4] = $6
    }
    function cell(k, impl) { return (k, impl) in ms ? sprintf("%8.3f %6.0f", ms[k, impl], tf[k, impl]) : sprintf("%8s %6s", "-", "-") }
    function ratio(k, a, b) { return ((k, a) in ms && (k, b) in ms) ? sprintf("%6.2fx", ms[k, b] / ms[k, a]) : sprintf("%7s", "-") }
    END {
        printf "\n%-16s %-15s %-15s %-15s %-15s %-15s  %-7s %-7s %-7s\n", "gemm (ms TF/s)", "ours fp8", "ours bf16",
               "torch fp8", "torch fp8 rw", "torch bf16", "fp8/rw", "fp8/t8", "bf16/tb"
        for (i = 0; i < n; i++) { split(order[i], p, " "); if (p[1] != "gemm") continue; k = order[i]
            printf "%-16s %s %s %s %s %s  %s %s %s\n", p[2], cell(k, "fp8"), cell(k, "bf16"), cell(k, "torch-fp8"),
                   cell(k, "torch-fp8rw"), cell(k, "torch-bf16"), ratio(k, "fp8", "torch-fp8rw"),
                   ratio(k, "fp8", "torch-fp8"), ratio(k, "bf16", "torch-bf16") }
        printf "\n%-16s %-15s %-15s %-15s %-15s  %-7s %-7s\n", "attn (ms TF/s)", "ours 32/warp", "ours 16/warp",
               "torch flash", "torch cudnn", "/flash", "/cudnn"
        for (i = 0; i < n; i++) { split(order[i], p, " "); if (p[1] != "attn") continue; k = order[i]
            printf "%-16s %s %s %s %s  %s %s\n", p[2], cell(k, "fp8"), cell(k, "fp8-mt1"), cell(k, "torch-flash"),
                   cell(k, "torch-cudnn"), ratio(k, "fp8", "torch-flash"), ratio(k, "fp8", "torch-cudnn") }
        for (i = 0; i < n; i++) { split(order[i], p, " "); if (p[1] != "dit") continue; k = order[i]
            if (!hd) { printf "\n%-16s %-15s %-15s %-15s %-15s  %-7s\n", "dit (ms TF/s)", "ours fp8", "ours bf16",
                        "torch bf16", "torch cudnn", "fp8/tc"; hd = 1 }
            printf "%-16s %s %s %s %s  %s\n", p[2], cell(k, "fp8"), cell(k, "bf16"), cell(k, "torch-flash"),
                   cell(k, "torch-cudnn"), ratio(k, "fp8", "torch-cudnn") }
        printf "(ratios: speed of ours over the named reference, >1 = ours faster)\n"
    }' "$LOG_BENCH" | tee -a "$SUMMARY"
