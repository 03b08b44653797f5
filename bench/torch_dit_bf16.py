#!/usr/bin/env python3
"""torch_dit_bf16.py - PyTorch bf16 timing of a DiT forward on bench_cuda_dit's weights and inputs,
without the float32 reference of torch_dit.py: for the 14B shape, whose float32 copy (56 GB) does
not fit beside the bf16 weights on an 80 GB GPU.

  python3 bench/torch_dit_bf16.py DIR [--backends cudnn,flash] [--iters K]
DIR holds dit.safetensors, inputs.safetensors and the engine's out_fp8/out_bf16.safetensors
(bench_cuda_dit DIR --model 14B). The forward is torch_dit.py's Dit in bf16 with
scaled_dot_product_attention on the backends named (cudnn was the fastest on the H100 in
bench/NOTES.md). Prints "RESULT dit <name> torch-<backend> <ms> <TFLOP/s>" (name = DIR's last
component) and "ERROR dit <name> <impl>-vs-torch-bf16 <rel>": the engine's outputs against this bf16
forward, a consistency check of the same computation (both sides carry bf16-level error), not an
accuracy figure.
"""
import argparse
import os
import sys

import torch
from safetensors.torch import load_file
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_dit import Dit, dit_flops, rel, time_ms  # noqa: E402

BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--backends", default="cudnn")
    ap.add_argument("--iters", type=int, default=1)
    args = ap.parse_args()
    backends = args.backends.split(",")
    if any(b not in BACKENDS for b in backends):
        raise SystemExit(f"--backends: choose from {', '.join(BACKENDS)}")
    dev = "cuda"
    sd = load_file(os.path.join(args.dir, "dit.safetensors"), device=dev)
    inp = load_file(os.path.join(args.dir, "inputs.safetensors"), device=dev)
    x, ctx, t = inp["x"], inp["context"], float(inp["t"].item())
    d = sd["patch_embedding.weight"].shape[0]
    name = os.path.basename(os.path.normpath(args.dir))
    model = Dit(sd, torch.bfloat16, d // 128)
    del sd
    n = x.shape[1] * x.shape[2] * x.shape[3] // 4
    flops = dit_flops(d, model.w["blocks.0.ffn.0.weight"].shape[0], model.layers, n)
    first = {}  # the first backend's output, kept for the comparison

    def forward():
        y = model.forward(x, t, ctx)
        first.setdefault("out", y)

    with torch.no_grad():
        for b in backends:
            with sdpa_kernel([BACKENDS[b]]):
                torch.cuda.reset_peak_memory_stats()
                ms = time_ms(forward, args.iters)
                print(f"RESULT dit {name} torch-{b} {ms:.1f} {flops / (ms * 1e-3) / 1e12:.1f}", flush=True)
                print(f"# torch {b}: peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)
        out = first["out"]
        for impl in ("fp8", "bf16"):
            path = os.path.join(args.dir, f"out_{impl}.safetensors")
            if os.path.exists(path):
                print(f"ERROR dit {name} {impl}-vs-torch-bf16 {rel(load_file(path, device=dev)['out'], out):.3e}",
                      flush=True)


if __name__ == "__main__":
    main()
