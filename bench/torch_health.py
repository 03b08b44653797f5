#!/usr/bin/env python3
"""torch_health.py - PyTorch's figures for the /health benchmarks, beside ours from the same run.

Measures what kernels/health_probe.cu measures, the same way (2 warm-up calls, then 3 batches
of 5 calls between CUDA events, a call's time the median batch mean; random inputs):
  copy      dst.copy_(src) over 512 MiB; GB/s = 2 * bytes / time (read + written)
  fp16      F.linear(x[m,k], w[n,k]), fp16 in and out (cuBLAS)
  fp8       torch._scaled_mm(x_e4m3, w_e4m3.t(), scale 1, scale 1, bf16 out), no fast accumulation
Shapes: 8192^3 and the Wan2.1-1.3B linears at 32760 tokens (1536x1536 six times per block,
1536->8960, 8960->1536), combined as total flops over total time.
Usage: torch_health.py OURS.json (the output of bench_health, or a whole GET /health report): prints
a table of ours, PyTorch's and the ratio, and exits 1 when a ratio leaves [0.9, 1.1].
"""
import json
import statistics
import sys

import torch
import torch.nn.functional as F

WARMUP, ITERS, REPEATS = 2, 5, 3
COPY_BYTES = 512 << 20
SHAPES = [("square", 8192, 8192, 8192, 0), ("wan13b_qkvo", 32760, 1536, 1536, 6),
          ("wan13b_ffn_up", 32760, 8960, 1536, 1), ("wan13b_ffn_down", 32760, 1536, 8960, 1)]


def time_ms(fn):
    for _ in range(WARMUP):
        fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(REPEATS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(ITERS):
            fn()
        b.record()
        b.synchronize()
        runs.append(a.elapsed_time(b) / ITERS)
    return statistics.median(runs)


def copy_gbs():
    src = torch.randn(COPY_BYTES // 2, device="cuda", dtype=torch.float16)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src))
    return 2.0 * COPY_BYTES / (ms * 1e-3) / 1e9


def gemm_ms(precision, m, n, k):
    x = torch.rand(m, k, device="cuda", dtype=torch.float16) * 2 - 1
    w = torch.rand(n, k, device="cuda", dtype=torch.float16) * 2 - 1
    if precision == "fp16":
        return time_ms(lambda: F.linear(x, w))
    x8, w8 = (x * 8).to(torch.float8_e4m3fn), (w * 8).to(torch.float8_e4m3fn)
    one = torch.ones((), device="cuda", dtype=torch.float32)
    return time_ms(lambda: torch._scaled_mm(x8, w8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16,
                                            use_fast_accum=False))


def main():
    ours = json.load(open(sys.argv[1]))
    if "ranks" in ours:  # a whole /health report: rank 0 holds the same fields
        ours = ours["ranks"][0]
    checks = {c["name"]: c for c in ours["checks"]}
    torch_vals = {"memory_bandwidth": copy_gbs()}
    per_shape = {}
    for precision in ("fp16", "fp8"):
        flops = ms_total = 0.0
        for name, m, n, k, per_block in SHAPES:
            ms = gemm_ms(precision, m, n, k)
            per_shape[(precision, name)] = 2.0 * m * n * k / (ms * 1e-3) / 1e12
            if per_block:
                flops += per_block * 2.0 * m * n * k
                ms_total += per_block * ms
            else:
                torch_vals["gemm_" + precision] = per_shape[(precision, name)]
        torch_vals["gemm_%s_wan13b" % precision] = flops / (ms_total * 1e-3) / 1e12
        torch.cuda.empty_cache()

    print("%s, torch %s, CUDA %s" % (torch.cuda.get_device_name(), torch.__version__, torch.version.cuda))
    print("%-20s %12s %12s %8s" % ("check", "ours", "torch", "ratio"))
    bad = 0
    for name, theirs in torch_vals.items():
        mine = checks[name]["value"]
        unit = checks[name]["unit"]
        if mine is None:
            print("%-20s %12s %12.1f %8s  (%s)" % (name, "-", theirs, "-", checks[name]["reason"]))
            bad += 1
            continue
        ratio = mine / theirs
        bad += not 0.9 <= ratio <= 1.1
        print("%-20s %9.1f %-2s %9.1f %-2s %8.3f" % (name, mine, unit[:2], theirs, unit[:2], ratio))
    print("%-20s %12s %12s %8s" % ("gemm shape", "ours TF/s", "torch TF/s", "ratio"))
    for g in ours["gemm"]:
        theirs = per_shape[(g["precision"], g["name"])]
        print("%-20s %12.1f %12.1f %8.3f" % (g["precision"] + " " + g["name"], g["tflops"], theirs,
                                            g["tflops"] / theirs))
    json.dump({k: round(v, 3) for k, v in torch_vals.items()}, sys.stderr)
    sys.stderr.write("\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
