#!/usr/bin/env bash
# cuda_figures.sh - the CUDA figures of issue 4 that bench/device.sh does not take, in one device call:
#   1. build the engine-only tree ($BUILD_DIR, default build-figures): bench_cuda_text_vae,
#      bench_video, bench_cuda_dit;
#   2. bench/make_bench_model.py: a T2V-1.3B-shaped model folder with random bf16 weights (UMT5-XXL,
#      DiT 1.3B, the Wan VAE, the tiny tokenizer, a manifest) and its inputs (512 ids, a
#      832x480x81 latent);
#   3. UMT5-XXL encode of 512 tokens and VAE decode of 832x480x81: ours (bench_cuda_text_vae, FP8 and
#      bf16 both), then the official PyTorch modules on the same weights and inputs
#      (bench/torch_text_vae.py: bf16 eager, torch.compile for UMT5, float32 reference);
#   4. one whole 832x480, 81-frame, 50-step video with CFG through pipeline_open/pipeline_generate
#      (bench_video, FP8): seconds per stage and peak GPU memory; the first job of the opened
#      pipeline (no warm-up job: it would cost a VAE decode, ~17 s, of the call's budget);
#   5. the 14B-shaped DiT forward (dim 5120, 40 heads, 40 layers, FFN 13824, 32760 tokens):
#      bench_cuda_dit --model 14B (FP8 and bf16), then PyTorch bf16 with cuDNN SDPA on the same
#      weights (bench/torch_dit_bf16.py), one after the other;
#   6. the tables (bench/figures_table.py), last.
# Every stage has a time limit, cut to what is left of BUDGET_S (default 540 s from the start); a
# stage with under 20 s left is skipped. Logs and tables under $OUT (default /tmp/auteur-figures-out);
# the model folders under /dev/shm when it has room (no disk writes), else /tmp.
# Carry .official (bench/dit_fullsize.sh --prepare) and .deps.
# Usage: bench/cuda_figures.sh [--small] [--skip parts,video,14b]
#   --small: toy widths and a 96x64x9, 3-step video, for a local run (with DEVICE=cpu on a machine
#   without a GPU: the CPU backend for our side, PyTorch on the CPU; the 14B stage is skipped).
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-/tmp/auteur-figures-out}
BUILD_DIR=${BUILD_DIR:-build-figures}
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-540}
SMALL=0 SKIP=""
while [ $# -gt 0 ]; do
    case $1 in
    --small) SMALL=1 ;;
    --skip) SKIP=$2; shift ;;
    *) echo "usage: $0 [--small] [--skip parts,video,14b]" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$OUT"
LOG=$OUT/figures.log
: >"$LOG"
START=$(date +%s)
export PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=$ROOT/.deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step() { echo "== $* ($(( $(date +%s) - START )) s)" | tee -a "$LOG"; }
skipped() { case ",$SKIP," in *",$1,"*) return 0 ;; esac; return 1; }

# run_stage NAME LIMIT_S CMD...: CMD under min(LIMIT_S, what is left), output into the log.
run_stage() {
    local name=$1 limit=$2
    shift 2
    local left=$(( BUDGET_S - ($(date +%s) - START) ))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 20 ]; then
        echo "SKIPPED $name: ${left} s left of the budget" | tee -a "$LOG"
        return 124
    fi
    step "$name (limit ${limit} s)"
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=$?
    [ "$rc" -ne 0 ] && echo "FAILED $name: rc $rc (124: time limit)" | tee -a "$LOG"
    return "$rc"
}

# A folder for NEED_GB of files: /dev/shm when it has the room, else /tmp.
data_dir() {
    local avail_gb
    avail_gb=$(df -BG --output=avail /dev/shm 2>/dev/null | tail -1 | tr -dc 0-9)
    if [ -n "$avail_gb" ] && [ "$avail_gb" -gt "$(( $2 + 4 ))" ]; then echo "/dev/shm/$1"; else echo "/tmp/$1"; fi
}

step environment
{
    [ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
    echo "cpu: $(nproc) cores; $(free -g | awk '/Mem:/ {print $2 " GiB memory, " $7 " GiB available"}')"
    df -h /dev/shm /tmp | awk 'NR > 1 {print "disk " $6 ": " $4 " free"}'
    python3 -c 'import torch; print("torch", torch.__version__)'
    [ -d .official/wan ] || echo "WARNING: .official/wan missing (bench/dit_fullsize.sh --prepare, then carry .official)"
} 2>&1 | tee -a "$LOG"

targets="bench_cuda_text_vae bench_video"
[ "$DEVICE" = cuda ] && targets="$targets bench_cuda_dit"
step "build ($BUILD_DIR: $targets)"
if ! cmake -S . -B "$BUILD_DIR" -DAUTEUR_ENGINE_ONLY=ON -DCMAKE_BUILD_TYPE=Release -DAUTEUR_CUDA_ARCHS="${CUDA_ARCHS:-90a-real}" >"$OUT/build.log" 2>&1; then
    tail -30 "$OUT/build.log" | tee -a "$LOG"
    exit 1
fi
# one target at a time after the shared libraries: a program that does not build skips its stages only
cmake --build "$BUILD_DIR" --target au_cuda -j "$(nproc)" >>"$OUT/build.log" 2>&1
for t in $targets; do
    if ! cmake --build "$BUILD_DIR" --target "$t" -j "$(nproc)" >>"$OUT/build.log" 2>&1; then
        echo "FAILED build of $t:" | tee -a "$LOG"
        grep -E "error|undefined reference" "$OUT/build.log" | sort -u | head -20 | tee -a "$LOG"
    fi
done
B=$BUILD_DIR/bench

if [ "$SMALL" = 1 ]; then
    model_gb=1 small_flag=--small
    video_args=(--width 96 --height 64 --frames 9 --steps 3)
    dit_args=(--grid 3 8 12 --layers 2)
else
    model_gb=16 small_flag=""
    video_args=()
    dit_args=()
fi
MODEL=$(data_dir auteur-figures-model "$model_gb")
PARTS_OUT=$OUT/parts
rm -rf "$MODEL" "$PARTS_OUT"
mkdir -p "$MODEL" "$PARTS_OUT"
run_stage "model folder $MODEL" 120 python3 bench/make_bench_model.py "$MODEL" $small_flag || exit 1

if ! skipped parts; then
    # ours writes its outputs beside the logs' folder, PyTorch reads them for the errors
    run_stage "UMT5 + VAE: ours" 120 "$B/bench_cuda_text_vae" "$MODEL" "$PARTS_OUT" --device "$DEVICE" \
        --vae-precisions fp8,bf16
    run_stage "UMT5 + VAE: PyTorch (official modules)" 150 python3 bench/torch_text_vae.py "$MODEL" "$PARTS_OUT"
    rm -f "$PARTS_OUT"/*.safetensors # too large to bring back
fi

if ! skipped video; then
    run_stage "whole video (pipeline_generate)" 240 "$B/bench_video" "$MODEL" "${video_args[@]}" \
        --warmup-steps 0 --device "$DEVICE"
fi
rm -rf "$MODEL"

if ! skipped 14b && [ "$DEVICE" = cuda ]; then
    DIT=$(data_dir auteur-figures-dit 30)/14B
    rm -rf "$DIT"
    mkdir -p "$DIT"
    run_stage "DiT 14B shape: ours" 240 "$B/bench_cuda_dit" "$DIT" --model 14B --iters 1 "${dit_args[@]}" &&
        run_stage "DiT 14B shape: PyTorch bf16" 120 python3 bench/torch_dit_bf16.py "$DIT"
    rm -rf "$(dirname "$DIT")"
fi

step tables
python3 bench/figures_table.py "$LOG" | tee "$OUT/tables.md"
echo "total $(( $(date +%s) - START )) s"
