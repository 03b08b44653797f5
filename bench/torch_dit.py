#!/usr/bin/env python3
"""torch_dit.py - the PyTorch side of bench_cuda_dit: a Wan2.1 DiT forward in PyTorch on the same
weights and inputs, for timing (bf16, scaled_dot_product_attention with the flash and the cuDNN
backends) and as the float32 reference the engine's FP8 and bf16 outputs are measured against.

  python3 bench/torch_dit.py DIR            DIR holds dit.safetensors, inputs.safetensors and the
                                            engine's out_fp8/out_bf16.safetensors (bench_cuda_dit)
  python3 bench/torch_dit.py --selfcheck    compare with tools/reference/ref_dit.py on the tiny model (CPU)

The forward is written here for speed, not copied from the reference: the same math as
tools/reference/ref_dit.py (and the official wan/modules/model.py): float32 residual stream,
LayerNorms, modulation and time embedding; linears and attention in the run dtype; RoPE from a
float64-built cos/sin table applied in float32; attention through SDPA on [1, heads, tokens, 128]
views. Prints "RESULT dit <name> torch-<backend> <ms> <TFLOP/s>" and "ERROR dit <name> <impl> <rel>".
"""
import math
import os
import statistics
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.nn.attention import SDPBackend, sdpa_kernel


def rope_table(head_dim, grid, device):
    """cos, sin [n_tokens, head_dim/2] float32; pairs split c-2(c//3) / c//3 / c//3 over (f, h, w)."""
    c = head_dim // 2
    parts = []
    for axis, k in enumerate([c - 2 * (c // 3), c // 3, c // 3]):
        w = 1.0 / torch.pow(10000.0, torch.arange(0, 2 * k, 2, dtype=torch.float64) / (2 * k))
        ang = torch.arange(grid[axis], dtype=torch.float64)[:, None] * w[None, :]
        shape = [1, 1, 1, k]
        shape[axis] = grid[axis]
        parts.append(ang.view(shape).expand(*grid, k))
    ang = torch.cat(parts, dim=-1).reshape(-1, c)
    return torch.cos(ang).float().to(device), torch.sin(ang).float().to(device)


def rope(x, cos, sin):
    """x [n, heads, d] (pairs 2i, 2i+1) rotated, in float32."""
    xf = x.float().unflatten(-1, (-1, 2))
    re, im = xf[..., 0], xf[..., 1]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack([re * c - im * s, re * s + im * c], dim=-1).flatten(-2)


class Dit:
    def __init__(self, sd, dtype, num_heads, eps=1e-6):
        self.dtype, self.nh, self.eps = dtype, num_heads, eps
        keep_f32 = ("modulation", "norm", "time_", "head.")
        self.w = {k: (v.float() if any(s in k for s in keep_f32) or v.dim() == 1 else v.to(dtype)) for k, v in sd.items()}
        self.dim = self.w["patch_embedding.weight"].shape[0]
        self.layers = sum(1 for k in self.w if k.endswith(".modulation") and k.startswith("blocks."))

    def lin(self, name, x, out_f32=False):
        w, b = self.w[name + ".weight"], self.w[name + ".bias"]
        y = F.linear(x.to(w.dtype), w, b.to(w.dtype))
        return y.float() if out_f32 else y

    def attn(self, p, xq, xkv, cs):
        n, d = xq.shape
        hd = d // self.nh
        q = self.lin(p + ".q", xq, True)
        k = self.lin(p + ".k", xkv, True)
        v = self.lin(p + ".v", xkv)
        q = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + self.eps) * self.w[p + ".norm_q.weight"]
        k = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + self.eps) * self.w[p + ".norm_k.weight"]
        q, k, v = q.view(n, self.nh, hd), k.view(-1, self.nh, hd), v.view(-1, self.nh, hd)
        if cs is not None:
            q, k = rope(q, *cs), rope(k, *cs)
        q, k, v = (t.to(self.dtype).transpose(0, 1)[None] for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v)
        return self.lin(p + ".o", o[0].transpose(0, 1).reshape(n, d), True)

    def forward(self, x, t, context):
        w, eps, d = self.w, self.eps, self.dim
        pt, ph, pw = w["patch_embedding.weight"].shape[2:]
        tok = F.conv3d(x[None].to(self.dtype), w["patch_embedding.weight"], w["patch_embedding.bias"].to(self.dtype),
                       stride=(pt, ph, pw))[0]
        grid = list(tok.shape[1:])
        h = tok.flatten(1).t().float()
        cs = rope_table(d // self.nh, grid, x.device)
        half = w["time_embedding.0.weight"].shape[1] // 2
        fr = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half) * float(t)
        sinus = torch.cat([torch.cos(fr), torch.sin(fr)]).float().to(x.device)
        e = self.lin("time_embedding.2", F.silu(self.lin("time_embedding.0", sinus, True)), True)
        e0 = self.lin("time_projection.1", F.silu(e), True).view(6, d)
        text_len = 512
        ctx = torch.cat([context.float(), context.new_zeros(text_len - context.shape[0], context.shape[1]).float()])
        ctx = self.lin("text_embedding.2", F.gelu(self.lin("text_embedding.0", ctx, True), approximate="tanh"))
        for i in range(self.layers):
            b = f"blocks.{i}."
            m = w[b + "modulation"][0] + e0
            y = F.layer_norm(h, (d,), eps=eps) * (1 + m[1]) + m[0]
            h = h + self.attn(b + "self_attn", y, y, cs) * m[2]
            y = F.layer_norm(h, (d,), w[b + "norm3.weight"], w[b + "norm3.bias"], eps)
            h = h + self.attn(b + "cross_attn", y, ctx, None)
            y = F.layer_norm(h, (d,), eps=eps) * (1 + m[4]) + m[3]
            h = h + self.lin(b + "ffn.2", F.gelu(self.lin(b + "ffn.0", y), approximate="tanh"), True) * m[5]
        n = w["head.modulation"][0] + e
        out = self.lin("head.head", F.layer_norm(h, (d,), eps=eps) * (1 + n[1]) + n[0], True)
        f, gh, gw = grid
        c = out.shape[1] // (pt * ph * pw)
        out = out.view(f, gh, gw, pt, ph, pw, c).permute(6, 0, 3, 1, 4, 2, 5)
        return out.reshape(c, f * pt, gh * ph, gw * pw)


def dit_flops(d, ffn, layers, n, text_len=512):
    per = 12 * n * d * d + 4 * n * d * ffn + 4 * n * n * d + 4 * n * text_len * d
    return layers * per


def rel(a, b):
    a, b = a.double(), b.double()
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item()


def selfcheck():
    """The tiny model on the CPU: this forward against tools/reference/ref_dit.py."""
    root = os.path.join(os.path.dirname(__file__), "..")
    sys.path.insert(0, os.path.join(root, "tools", "reference"))
    import json
    import ref_dit
    cfg = json.load(open(os.path.join(root, "models", "tiny-random", "auteur-model.json")))["dit"]["config"]
    sd = load_file(os.path.join(root, "models", "tiny-random", "dit.safetensors"))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(cfg["in_dim"], 3, 8, 12, generator=g)
    ctx = torch.randn(7, cfg["text_dim"], generator=g)
    ref = ref_dit.dit_forward(sd, cfg, x, 321.0, ctx)
    out = Dit(sd, torch.float32, cfg["num_heads"]).forward(x, 321.0, ctx)
    r = rel(out, ref)
    print(f"selfcheck: torch_dit vs ref_dit on tiny-random, rel {r:.2e}")
    return 0 if r < 1e-5 else 1


def time_ms(fn, iters):
    fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        runs.append(a.elapsed_time(b))
    return statistics.median(runs)


def main(folder):
    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 reference must be float32
    torch.backends.cudnn.allow_tf32 = False
    sd = load_file(os.path.join(folder, "dit.safetensors"), device=dev)
    inp = load_file(os.path.join(folder, "inputs.safetensors"), device=dev)
    x, ctx, t = inp["x"], inp["context"], float(inp["t"].item())
    d = sd["patch_embedding.weight"].shape[0]
    heads, name = d // 128, os.path.basename(os.path.normpath(folder))
    iters = int(os.environ.get("DIT_ITERS", "3"))
    with torch.no_grad():
        ref_model = Dit(sd, torch.float32, heads)
        with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
            ref = ref_model.forward(x, t, ctx)
        del ref_model
        torch.cuda.empty_cache()
        model = Dit(sd, torch.bfloat16, heads)
        n = x.shape[1] * x.shape[2] * x.shape[3] // 4
        flops = dit_flops(d, sd["blocks.0.ffn.0.weight"].shape[0], model.layers, n)
        for variant, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            with sdpa_kernel([backend]):
                out = model.forward(x, t, ctx)
                print(f"ERROR dit {name} torch-{variant} {rel(out, ref):.3e}", flush=True)
                torch.cuda.reset_peak_memory_stats()
                ms = time_ms(lambda: model.forward(x, t, ctx), iters)
                peak = torch.cuda.max_memory_allocated() / 2**30
                print(f"RESULT dit {name} torch-{variant} {ms:.1f} {flops / (ms * 1e-3) / 1e12:.1f}", flush=True)
                print(f"# torch {variant}: peak GPU memory {peak:.1f} GiB", flush=True)
        for impl in ("fp8", "bf16"):
            path = os.path.join(folder, f"out_{impl}.safetensors")
            if os.path.exists(path):
                print(f"ERROR dit {name} {impl} {rel(load_file(path, device=dev)['out'], ref):.3e}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--selfcheck":
        sys.exit(selfcheck())
    if len(sys.argv) < 2 or not os.path.isdir(sys.argv[1]):
        print("usage: torch_dit.py DIR | --selfcheck", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
