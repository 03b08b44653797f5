#!/usr/bin/env python3
"""torch_ops.py - the PyTorch side of bench_cuda_ops: the same GEMMs and attention, same GPU, same run.

GEMMs (tokens x in . in x out, Wan2.1 1.3B and 14B block shapes at 32760 tokens):
  bf16   torch.nn.functional.linear(x, w, b), bf16 in and out (cuBLAS)
  fp8    torch._scaled_mm(x_f8, w_f8.t(), per-tensor scales, bias, out bf16) (cuBLASLt), and
  fp8rw  the same with per-row x scales and per-column w scales (rowwise), when supported.
Attention (32760 tokens, 12 or 40 heads of 128; self and 512-key cross, twice: cross77 is the
row ours runs with a 77-token prompt's rows only), bf16,
scaled_dot_product_attention restricted to the flash and the cuDNN backends, q/k/v as strided
[B, H, N, D] views of [N, H*D] tensors, the layout the model has.
Timing: CUDA events around ITERS calls after warm-up, median of REPEATS such runs; random inputs.
Prints "RESULT <kind> <name> torch-<variant> <ms> <TFLOP/s>" lines for device.sh.
Flags: --quick (fewer iterations), --attn-only (skip the GEMMs).
"""
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

QUICK = "--quick" in sys.argv
ITERS, REPEATS = (5, 3) if QUICK else (10, 5)

GEMMS = [("1.3B.qkvo", 32760, 1536, 1536), ("1.3B.ffn0", 32760, 1536, 8960), ("1.3B.ffn2", 32760, 8960, 1536),
         ("14B.qkvo", 32760, 5120, 5120), ("14B.ffn0", 32760, 5120, 13824), ("14B.ffn2", 32760, 13824, 5120)]
# 1.3B.cross77: a 77-token prompt padded to 512 rows, what the official model attends over
# (bench_cuda_ops runs it on 78 rows, the padding row counted 435 times).
ATTNS = [("1.3B.self", 32760, 32760, 12, 128), ("1.3B.cross", 32760, 512, 12, 128),
         ("1.3B.cross77", 32760, 512, 12, 128), ("14B.self", 32760, 32760, 40, 128)]


def time_ms(fn):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(REPEATS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(ITERS):
            fn()
        b.record()
        torch.cuda.synchronize()
        runs.append(a.elapsed_time(b) / ITERS)
    return statistics.median(runs)


def report(kind, name, variant, ms, flops):
    print(f"RESULT {kind} {name} torch-{variant} {ms:.3f} {flops / (ms * 1e-3) / 1e12:.1f}", flush=True)


def bench_gemms():
    dev = "cuda"
    for name, m, k, n in GEMMS:
        flops = 2.0 * m * n * k
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.05
        b = torch.randn(n, device=dev, dtype=torch.bfloat16) * 0.1
        report("gemm", name, "bf16", time_ms(lambda: F.linear(x, w, b)), flops)
        xf8 = x.to(torch.float8_e4m3fn)
        wf8 = (w * 20).to(torch.float8_e4m3fn)
        one = torch.ones((), device=dev, dtype=torch.float32)
        report("gemm", name, "fp8", time_ms(
            lambda: torch._scaled_mm(xf8, wf8.t(), scale_a=one, scale_b=one, bias=b, out_dtype=torch.bfloat16)), flops)
        sa = torch.rand(m, 1, device=dev, dtype=torch.float32) + 0.5
        sb = torch.rand(1, n, device=dev, dtype=torch.float32) + 0.5
        try:
            report("gemm", name, "fp8rw", time_ms(
                lambda: torch._scaled_mm(xf8, wf8.t(), scale_a=sa, scale_b=sb, bias=b, out_dtype=torch.bfloat16)),
                flops)
        except RuntimeError as e:
            print(f"# fp8 rowwise not available: {str(e).splitlines()[0]}")
        del x, w, b, xf8, wf8
        torch.cuda.empty_cache()


def bench_attention():
    dev = "cuda"
    for name, nq, nk, h, d in ATTNS:
        flops = 4.0 * nq * nk * h * d
        q = torch.randn(nq, h * d, device=dev, dtype=torch.bfloat16).view(1, nq, h, d).transpose(1, 2)
        k = torch.randn(nk, h * d, device=dev, dtype=torch.bfloat16).view(1, nk, h, d).transpose(1, 2)
        v = torch.randn(nk, h * d, device=dev, dtype=torch.bfloat16).view(1, nk, h, d).transpose(1, 2)
        for variant, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([backend]):
                    report("attn", name, variant, time_ms(lambda: F.scaled_dot_product_attention(q, k, v)), flops)
            except RuntimeError as e:
                print(f"# sdpa {variant} not available for {name}: {str(e).splitlines()[0]}")
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    if "--attn-only" not in sys.argv:
        bench_gemms()
    bench_attention()
