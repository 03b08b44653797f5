#!/usr/bin/env bash
# cuda_vae_figures.sh - the CUDA VAE decode figures of issue 4 in one device call (the VAE part of
# bench/cuda_figures.sh, without the 11 GB text encoder, plus the conv tests and a profile):
#   1. programs: prebuilt ones from $BIN (carried; engine-only, 90a-real) or built into $BUILD_DIR;
#   2. tests: test_cuda_conv, test_cuda_ops, test_cuda_eltwise, test_cuda_models (GPU vs CPU);
#   3. a VAE-only model folder: bench/make_bench_model.py's VAE shapes, draws and inputs (the same
#      z [16, 21, 60, 104] as its full folder), empty stand-ins for the text encoder and DiT files
#      the manifest names (--vae-only reads neither);
#   4. bench_cuda_text_vae --vae-only (FP8 and bf16 backends), then bench/torch_text_vae.py
#      --vae-only: the official VAE in bf16 (cuDNN) and float32, errors of all against float32;
#   5. ncu: device time per kernel of the bf16 decode of the first 2 latent frames (warm-up decode
#      and timed decode both counted), summed by kernel and printed as a table; then the main
#      sections of two windowed conv launches of the second chunk (NCU_SKIP windowed launches first).
# Variant builds, $BIN/bench_cuda_text_vae_<name> when present, are timed after ours (bf16; errors not checked).
# Carry .deps and .official (bench/dit_fullsize.sh --prepare), and $BIN when prebuilt.
# Usage: bench/cuda_vae_figures.sh [--skip tests,bench,ncu]   (OUT, BIN, BUILD_DIR from the environment)
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-/tmp/auteur-vae-out}
BUILD_DIR=${BUILD_DIR:-build-vae-figures}
BIN=${BIN:-}
SKIP=""
[ "${1:-}" = --skip ] && SKIP=$2
mkdir -p "$OUT"
START=$(date +%s)
export PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=$ROOT/.deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step() { echo "== $* ($(($(date +%s) - START)) s)"; }
skipped() { case ",$SKIP," in *",$1,"*) return 0 ;; esac; return 1; }

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
progs="bench_cuda_text_vae test_cuda_conv test_cuda_ops test_cuda_eltwise test_cuda_models"
if [ -z "$BIN" ]; then
    step "build ($BUILD_DIR)"
    cmake -S . -B "$BUILD_DIR" -DAUTEUR_ENGINE_ONLY=ON -DCMAKE_BUILD_TYPE=Release -DAUTEUR_CUDA_ARCHS=90a-real \
        >"$OUT/build.log" 2>&1 && cmake --build "$BUILD_DIR" --target $progs -j "$(nproc)" >>"$OUT/build.log" 2>&1 ||
        { grep -E "error" "$OUT/build.log" | head -20; exit 1; }
    BIN=$OUT/bin
    mkdir -p "$BIN"
    cp "$BUILD_DIR"/bench/bench_cuda_text_vae "$BUILD_DIR"/tests/test_cuda_* "$BIN"/ 2>/dev/null ||
        cp $(find "$BUILD_DIR" -type f \( -name bench_cuda_text_vae -o -name 'test_cuda_*' \) -perm -u+x) "$BIN"/
fi

if ! skipped tests; then
    for t in test_cuda_conv test_cuda_ops test_cuda_eltwise test_cuda_models; do
        step "$t"
        [ -x "$BIN/$t" ] || { echo "$t: not built, skipped"; continue; }
        timeout 120 "$BIN/$t" >"$OUT/$t.log" 2>&1
        echo "$t: rc $? - $(tail -1 "$OUT/$t.log")"
        grep -E "CHECK|failed \(" "$OUT/$t.log" | head -20
    done
fi

MODEL=/dev/shm/auteur-vae-model
SMALL=/dev/shm/auteur-vae-model-2f
PARTS=/dev/shm/auteur-vae-parts
rm -rf "$MODEL" "$SMALL" "$PARTS"
mkdir -p "$MODEL" "$SMALL" "$PARTS"
step "VAE-only model folders"
python3 - "$MODEL" "$SMALL" <<'EOF' || exit 1
import json, os, shutil, sys
sys.path.insert(0, "bench")
import torch
from safetensors.torch import save_file
import make_bench_model as mb

full, small = sys.argv[1], sys.argv[2]
t5, dit, vae = mb.configs(False)
mb.write_random(os.path.join(full, "vae.safetensors"), mb.vae_tensor_shapes(vae), "cuda")
g = torch.Generator().manual_seed(mb.SEED)  # the same draws as make_bench_model.py's inputs
ids = torch.randint(0, t5["vocab_size"], (512,), generator=g, dtype=torch.int32)
z = torch.randn((16, 21, 60, 104), generator=g)
for d, zz in ((full, z), (small, z[:, :2].contiguous())):
    if d != full:
        os.symlink(os.path.join(full, "vae.safetensors"), os.path.join(d, "vae.safetensors"))
    for f in ("umt5.safetensors", "dit.safetensors"):
        open(os.path.join(d, f), "wb").close()
    shutil.copyfile("models/tiny-random/tokenizer.json", os.path.join(d, "tokenizer.json"))
    man = {"format": "auteur-model/1", "name": "bench-vae-random", "tokenizer": "tokenizer.json",
           "text_encoder": {"file": "umt5.safetensors", "config": t5},
           "dit": {"file": "dit.safetensors", "config": dit}, "vae": {"file": "vae.safetensors", "config": vae}}
    with open(os.path.join(d, "auteur-model.json"), "w", encoding="utf-8") as f:
        json.dump(man, f)
    save_file({"ids": ids, "z": zz}, os.path.join(d, "inputs.safetensors"))
EOF

if ! skipped bench; then
    step "VAE decode 832x480x81: ours"
    timeout 150 "$BIN/bench_cuda_text_vae" "$MODEL" "$PARTS" --vae-only --vae-precisions fp8,bf16 2>&1 |
        tee "$OUT/ours.log"
    step "VAE decode 832x480x81: PyTorch (official module)"
    timeout 150 python3 bench/torch_text_vae.py "$MODEL" "$PARTS" --vae-only 2>&1 | tee "$OUT/torch.log"
    rm -f "$PARTS"/*.safetensors
    for variant in "$BIN"/bench_cuda_text_vae_*; do
        [ -x "$variant" ] || continue
        step "VAE decode 832x480x81: variant build $(basename "$variant"), bf16"
        timeout 60 "$variant" "$MODEL" "$PARTS" --vae-only --vae-precisions bf16 2>&1 | grep RESULT
        rm -f "$PARTS"/vae_bf16.safetensors
    done
fi

if ! skipped ncu; then
    step "ncu: bf16 decode of 2 latent frames, time per kernel"
    timeout 150 ncu --metrics gpu__time_duration.sum --print-summary per-kernel --csv \
        "$BIN/bench_cuda_text_vae" "$SMALL" "$PARTS" --vae-only --vae-precisions bf16 >"$OUT/ncu.csv" 2>"$OUT/ncu.err"
    echo "ncu rc $?"
    step "ncu: two windowed conv launches of the second chunk in detail"
    timeout 100 ncu -k regex:conv_window --launch-skip "${NCU_SKIP:-70}" --launch-count 2 --section SpeedOfLight \
        --section LaunchStats --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
        "$BIN/bench_cuda_text_vae" "$SMALL" "$PARTS" --vae-only --vae-precisions bf16 >"$OUT/ncu_detail.txt" 2>&1
    grep -E "conv_window|Grid Size|Duration|Throughput|Registers|Achieved Occupancy|Theoretical Occupancy|Stall|Issue Slots|Executed Ipc|Pipe" \
        "$OUT/ncu_detail.txt" | head -60
    python3 - "$OUT/ncu.csv" <<'EOF'
import csv, sys
from collections import defaultdict
rows = [r for r in csv.reader(open(sys.argv[1], errors="replace")) if len(r) > 5]
head = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
if head is None:
    sys.exit("no ncu table")
h = rows[head]
col = lambda name: next(i for i, c in enumerate(h) if c == name)
kn, inv, unit, avg = col("Kernel Name"), col("Invocations"), col("Metric Unit"), col("Average")
scale = {"nsecond": 1e-6, "ns": 1e-6, "usecond": 1e-3, "us": 1e-3, "msecond": 1.0, "ms": 1.0, "second": 1e3}
tot, cnt = defaultdict(float), defaultdict(int)
for r in rows[head + 1:]:
    try:
        n, a = int(r[inv]), float(r[avg].replace(",", ""))
    except ValueError:
        continue
    name = r[kn].split("(")[0] if not r[kn].startswith("void cu_map") else r[kn]
    tot[name[:110]] += n * a * scale.get(r[unit], 1.0)
    cnt[name[:110]] += n
all_ms = sum(tot.values())
print(f"| kernel | launches | ms | % |\n| --- | --- | --- | --- |")
for k, v in sorted(tot.items(), key=lambda kv: -kv[1])[:30]:
    print(f"| {k} | {cnt[k]} | {v:.1f} | {100 * v / all_ms:.1f} |")
print(f"total {all_ms:.1f} ms of kernels")
EOF
fi
rm -rf "$MODEL" "$SMALL" "$PARTS"
step done
