#!/usr/bin/env python3
"""torch_dit_cpu.py - the PyTorch side of bench_dit_cpu: seconds per Wan2.1 DiT forward on the
CPU with the project's float32 reference (tools/reference/ref_dit.py), same configs, latent
[16, 5, 16, 16] and 32-token prompt as bench/bench_dit_cpu.c. Prints one line per config:
`torch <name> <best seconds>`. Usage: torch_dit_cpu.py [repeats] [threads]
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "reference"))
from ref_dit import dit_forward, dit_tensor_shapes  # noqa: E402

CONFIGS = {
    "tiny": dict(dim=256, ffn_dim=512, freq_dim=256, num_heads=2, num_layers=2, in_dim=16, out_dim=16,
                 text_len=512, text_dim=64, patch_size=[1, 2, 2], eps=1e-6),
    "1.3B": dict(dim=1536, ffn_dim=8960, freq_dim=256, num_heads=12, num_layers=30, in_dim=16, out_dim=16,
                 text_len=512, text_dim=4096, patch_size=[1, 2, 2], eps=1e-6),
}


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if threads > 0:
        torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    for name, cfg in CONFIGS.items():
        sd = {}
        for k, shape in dit_tensor_shapes(cfg).items():
            fan_in = 1
            for s in shape[1:]:
                fan_in *= s
            sd[k] = (torch.rand(shape, generator=g) * 2 - 1) * (fan_in ** -0.5 if len(shape) > 1 else 0.1)
        x = torch.randn(16, 5, 16, 16, generator=g)
        ctx = torch.randn(32, cfg["text_dim"], generator=g)
        best = float("inf")
        with torch.inference_mode():
            for _ in range(repeats if name != "tiny" else 5):
                t0 = time.perf_counter()
                dit_forward(sd, cfg, x, 500.0, ctx)
                best = min(best, time.perf_counter() - t0)
        print(f"torch {name} {best:.4f}", flush=True)
        del sd


if __name__ == "__main__":
    main()
