#!/usr/bin/env bash
# dit_fullsize.sh - the full-size DiT check, in one device call:
#   1. build the engine-only tree ($BUILD_DIR, default build-dev) against the carried OpenBLAS,
#      with the dit_fullsize program,
#   2. bench/dit_fullsize_ref.py: T2V-1.3B-shaped random weights with --layers blocks, one
#      832x480x81 latent (32760 tokens), and the official WanModel's output on the GPU in float32
#      (TF32 off) and float64,
#   3. dit_fullsize: the same forward on the CPU engine (--threads, default 16), relative errors,
#   4. a short table last. Logs under $OUT (default /tmp/auteur-fullsize); the model and io files
#      under /tmp/auteur-fullsize-data (too large to bring back).
# Before the call, on the development machine: bench/dit_fullsize.sh --prepare copies what the
# device lacks into git-ignored folders the call carries: .official/wan (the official Python
# code), .blas (this machine's OpenBLAS, its cblas.h, libgfortran and libquadmath, gzipped); the
# jansson header and library are the team's .deps. Carry .official, .blas and .deps.
# Usage: bench/dit_fullsize.sh [--layers N] [--threads N] [--small | --frames F] [--device cuda|cpu]
#        bench/dit_fullsize.sh --prepare
# Local run of the same steps: BUILD_DIR=build-x bench/dit_fullsize.sh --small --device cpu --threads 2
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/auteur-fullsize}
DATA=/tmp/auteur-fullsize-data
BLAS_DIR=/tmp/auteur-blas
BUILD_DIR=${BUILD_DIR:-build-dev}
LAYERS=2 THREADS=16 SIZE="" DEVICE=cuda
step() { echo "== $* ($(date +%T))"; }

prepare() {
    local mirror=/work/.mirror/Wan-Video+Wan2.1/repo ml=/usr/lib/x86_64-linux-gnu
    grep -qxF /.official/ .git/info/exclude 2>/dev/null || echo /.official/ >>.git/info/exclude
    grep -qxF /.blas/ .git/info/exclude || echo /.blas/ >>.git/info/exclude
    rm -rf .official .blas
    mkdir -p .official .blas/lib .blas/include
    git -C "$mirror" archive HEAD wan | tar -x -C .official
    for lib in "$ml/libopenblas.so.0" "$ml/libgfortran.so.5" "$ml/libquadmath.so.0"; do
        gzip -9 -c "$(readlink -f "$lib")" >".blas/lib/$(basename "$lib").gz"
    done
    cp "$(dirname "$(readlink -f /usr/include/x86_64-linux-gnu/cblas.h)")"/{cblas.h,openblas_config.h} .blas/include/
    du -sh .official .blas .deps
}

while [ $# -gt 0 ]; do
    case $1 in
    --prepare) prepare; exit 0 ;;
    --layers) LAYERS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --small) SIZE=--small ;;
    --frames) SIZE="--frames $2"; shift ;;
    --device) DEVICE=$2; shift ;;
    *) echo "usage: $0 [--layers N] [--threads N] [--small | --frames F] [--device cuda|cpu] | --prepare" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$OUT" "$DATA" "$BLAS_DIR/lib" "$BLAS_DIR/include"

step environment
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; fi
echo "system jansson.h: $(ls /usr/include/jansson.h 2>/dev/null || echo missing, using .deps)"
echo "system OpenBLAS: $(ls /usr/lib/x86_64-linux-gnu/libopenblas* 2>/dev/null | tr '\n' ' ' || true)(using .blas)"

step "OpenBLAS from .blas into $BLAS_DIR"
for gz in .blas/lib/*.gz; do gunzip -c "$gz" >"$BLAS_DIR/lib/$(basename "$gz" .gz)"; done
ln -sf libopenblas.so.0 "$BLAS_DIR/lib/libopenblas.so"
cp .blas/include/*.h "$BLAS_DIR/include/"
export LD_LIBRARY_PATH=$BLAS_DIR/lib:$ROOT/.deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

step "build ($BUILD_DIR)"
if ! cmake -S . -B "$BUILD_DIR" -DAUTEUR_ENGINE_ONLY=ON -DAUTEUR_CUDA=OFF -DCMAKE_BUILD_TYPE=Release \
    -DBLA_VENDOR=OpenBLAS -DCMAKE_PREFIX_PATH="$BLAS_DIR" -DCMAKE_C_FLAGS="-I$BLAS_DIR/include" >"$OUT/build.log" 2>&1; then
    tail -30 "$OUT/build.log"
    exit 1
fi
blas=$(sed -n 's/^BLAS_openblas_LIBRARY:FILEPATH=//p' "$BUILD_DIR/CMakeCache.txt")
if [ "$blas" != "$BLAS_DIR/lib/libopenblas.so" ]; then
    echo "CMake found OpenBLAS at '$blas', not in $BLAS_DIR: the C engine would not run on it" >&2
    exit 1
fi
if ! cmake --build "$BUILD_DIR" --target dit_fullsize -j "$(nproc)" >>"$OUT/build.log" 2>&1; then
    grep -E "error|Error" "$OUT/build.log" | head -40
    exit 1
fi
prog=$(find "$BUILD_DIR" -name dit_fullsize -type f -perm -u+x | head -1)
echo "built $prog; $(ldd "$prog" | grep -E 'openblas|jansson' | awk '{print $1 " -> " $3}' | tr '\n' ' ')"

step "official PyTorch model: weights, inputs, float32 and float64 outputs ($DEVICE)"
rm -f "$DATA"/*.safetensors
ref_rc=0
PYTHONUNBUFFERED=1 timeout 300 python3 bench/dit_fullsize_ref.py --official .official --out-dir "$DATA" \
    --layers "$LAYERS" --device "$DEVICE" $SIZE 2>&1 | tee "$OUT/ref.log" || ref_rc=$?
# io.safetensors holds the float32 output before the float64 run starts: a failure of that run
# still leaves the main comparison to make (and the verdict says FAIL).
if [ ! -f "$DATA/io.safetensors" ]; then
    echo "dit_fullsize_ref.py failed (rc $ref_rc) before writing its io file" >&2
    exit 1
fi

step "C engine, CPU backend, $THREADS threads"
rc=0
timeout 420 "$prog" --weights "$DATA/weights.safetensors" --io "$DATA/io.safetensors" --threads "$THREADS" \
    --out "$DATA/out.safetensors" 2>&1 | tee "$OUT/c.log" || rc=$?

step summary
kv() { awk -v k="$1" '$1 == "KV" && $2 == k {print $3}' "$OUT/ref.log" "$OUT/c.log"; }
{
    echo "| full-size DiT check ($LAYERS of 30 layers, $(kv c_tokens) tokens) | value |"
    echo "| --- | --- |"
    echo "| PyTorch official, $DEVICE float32 (TF32 off), forward | $(kv torch_f32_s) s (first call $(kv torch_f32_first_s) s) |"
    echo "| PyTorch official, $DEVICE float64, forward | $(kv torch_f64_s) s |"
    echo "| C engine, CPU $THREADS threads, forward | $(kv c_forward_s) s = $(kv c_s_per_layer) s/layer, $(kv c_gflops) GFLOP/s |"
    echo "| C engine, 30 layers (extrapolated: 30 x s/layer) | $(awk -v s="$(kv c_s_per_layer)" 'BEGIN {printf "%.0f", 30 * s}') s |"
    echo "| C engine, load / text conditioning | $(kv c_load_s) s / $(kv c_text_s) s |"
    echo "| C vs PyTorch float32: max rel / l2 rel | $(kv err_f32_max) / $(kv err_f32_l2) |"
    echo "| C vs PyTorch float64: max rel / l2 rel | $(kv err_f64_max) / $(kv err_f64_l2) |"
    echo "| PyTorch float32 vs float64: max rel / l2 rel | $(kv torch_err_f64_max) / $(kv torch_err_f64_l2) |"
    echo "| verdict | $([ "$rc$ref_rc" = 00 ] && echo PASS || echo "FAIL (dit_fullsize rc $rc, ref rc $ref_rc)") |"
} | tee "$OUT/summary.txt"
[ "$rc$ref_rc" = 00 ]
