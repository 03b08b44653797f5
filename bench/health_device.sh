#!/usr/bin/env bash
# bench/health_device.sh - the GPU part of the /health report on a GPU machine, beside PyTorch's
# figures for the same copy and GEMMs, in one call:
#   1. bench_health (kernels/health_probe.cu through bench/bench_health.c): a binary built
#      elsewhere for this processor (BENCH_HEALTH=path; its CUDA libraries are looked up in the
#      toolkit and in PyTorch's wheels), else built here in build-dev (engine-only tree);
#   2. bench/torch_health.py on its JSON: PyTorch's figures, the ratios, exit 1 outside 10%.
# Output: $OUT/health_gpu.json (the report part) and $OUT/health_torch.txt (the comparison).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/auteur-health}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader

bin=${BENCH_HEALTH:-}
missing() { ldd "$1" | grep -q "not found"; }
if [ -n "$bin" ] && missing "$bin"; then
    extra=$(python3 -c 'import glob, os, nvidia; print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/**/lib*.so*", recursive=True)})))' 2>/dev/null)
    export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${extra}:${LD_LIBRARY_PATH:-}
fi
if [ -z "$bin" ] || missing "$bin"; then
    [ -n "$bin" ] && { echo "carried $bin cannot load:"; ldd "$bin" | grep "not found"; }
    echo "building bench_health here"
    cmake -S . -B build-dev -DAUTEUR_ENGINE_ONLY=ON -DCMAKE_BUILD_TYPE=Release -DAUTEUR_CUDA_ARCHS="${CUDA_ARCHS:-90a-real}" >"$OUT/build.log" 2>&1 &&
        cmake --build build-dev --target bench_health -j "$(nproc)" >>"$OUT/build.log" 2>&1 ||
        { tail -30 "$OUT/build.log"; exit 1; }
    bin=build-dev/bench/bench_health
fi

"$bin" >"$OUT/health_gpu.json"
echo "bench_health: exit $? (0 = every check passed)"
cat "$OUT/health_gpu.json"
PYTHONUNBUFFERED=1 python3 bench/torch_health.py "$OUT/health_gpu.json" 2>&1 | tee "$OUT/health_torch.txt"
