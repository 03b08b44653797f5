#!/usr/bin/env python3
"""dit_fullsize_ref.py - the PyTorch side of the full-size DiT check (bench/dit_fullsize.sh).

Writes a T2V-1.3B-shaped model with random weights and one forward of the OFFICIAL WanModel on it,
for bench/dit_fullsize.c to compare the C engine against:
  weights.safetensors  official key names, bf16 (the values are drawn by tools/reference/ref_init.py
                       and rounded to bf16, so the model below and the C engine see the same numbers)
  io.safetensors       x [16, F, H, W] f32 (N(0, 1)), t [1] f32, context [L, 4096] f32 (N(0, 1)),
                       out [16, F, H, W]: the official model in float32 (TF32 off),
                       out_f64 (unless --no-f64): the same model with float64 weights and activations,
                       a near-exact answer that shows how much of the C-vs-PyTorch difference is
                       float32 rounding on either side.
Full size (default): dim 1536, 12 heads, FFN 8960, latent [16, 21, 60, 104] = 832x480, 81 frames,
32760 tokens (--frames F: F latent frames of 1560 tokens each), a 120-token prompt (padded to 512 by
the model), `--layers` blocks (the real model has 30; fewer keep the CPU side of the check short,
each block being the same computation).
--small: the same widths on a [16, 3, 8, 12] latent (96x64, 9 frames, 72 tokens) for a local run.

The official wan/ package is loaded from --official (a copy of the official repository's `wan`
folder) with run-time stand-ins, as tools/reference/check_against_official.py does: diffusers'
mixins become nn.Module, torch.cuda.amp.autocast a no-op (everything here is already float32 or
float64, and autocast would lower the float64 run), and flash attention a plain softmax attention
in the dtype of v, taken a block of queries at a time so the 32760 x 32760 scores never exist whole.
The float64 run keeps in float32 what the official forward keeps there (see to_float64): the
products, attention and residual stream are float64, while the normed and modulated inputs of each
layer and the RoPE'd q and k are rounded to float32 once, as the official code does (a relative
6e-8 each, not a sum).
Usage: dit_fullsize_ref.py --official DIR --out-dir DIR [--layers N] [--small | --frames F]
                          [--device cuda|cpu] [--no-f64]
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
from check_against_official import load_official  # noqa: E402
from ref_init import random_tensor  # noqa: E402

SCORE_BYTES = 2 << 30  # attention scores per block of queries
T = 937.25             # timestep (a float32 value, as the C engine takes it)
CTX_LEN = 120
SEED = 2024


def _attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0.0, softmax_scale=None, q_scale=None,
               causal=False, window_size=(-1, -1), deterministic=False, dtype=None, version=None):
    """q [B, Lq, N, D], k/v [B, Lk, N, D]; keys at or past k_lens[b] are ignored (varlen flash)."""
    if q_lens is not None or causal or window_size != (-1, -1) or q_scale is not None or dropout_p:
        raise NotImplementedError("stand-in covers only what the text-to-video path uses")
    dt = v.dtype
    b, lq, n, d = q.shape
    lk = k.shape[1]
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d)
    qh = q.to(dt).permute(0, 2, 1, 3)  # [B, N, Lq, D]
    kt = k.to(dt).permute(0, 2, 3, 1)  # [B, N, D, Lk]
    vh = v.permute(0, 2, 1, 3)         # [B, N, Lk, D]
    drop = None
    if k_lens is not None:
        drop = torch.arange(lk, device=q.device)[None, :] >= k_lens.to(q.device)[:, None]
        drop = drop[:, None, None, :] if bool(drop.any()) else None
    out = torch.empty(b, n, lq, d, dtype=dt, device=q.device)
    rows = max(1, SCORE_BYTES // (b * n * lk * v.element_size()))
    for i in range(0, lq, rows):
        s = torch.matmul(qh[:, :, i:i + rows], kt) * scale
        if drop is not None:
            s.masked_fill_(drop, float("-inf"))
        out[:, :, i:i + rows] = torch.matmul(torch.softmax(s, dim=-1), vh)
    return out.permute(0, 2, 1, 3)


def make_weights(model, layers, seed):
    """Every parameter drawn by ref_init and rounded to bf16: name -> bf16 tensor (CPU)."""
    out = {}
    for name, p in model.named_parameters():
        out[name] = random_tensor(name, list(p.shape), seed).to(torch.bfloat16)
    if sum(1 for k in out if k.endswith(".ffn.0.weight")) != layers:
        raise SystemExit(f"model has the wrong number of blocks (expected {layers})")
    return out


def to_float64(model):
    """Float64 weights, except what the official forward keeps in float32: the time embedding and
    the modulation tables (it asserts both) and the LayerNorms (they compute on x.float()). Each
    Linear/Conv3d input is cast to its weight's dtype (the official code hands float32 tensors back
    from its norms and RoPE)."""
    model.double()
    model.time_embedding.float()
    model.time_projection.float()
    for mod in model.modules():
        if isinstance(mod, nn.LayerNorm):
            mod.float()
        if isinstance(getattr(mod, "modulation", None), nn.Parameter):
            mod.modulation.data = mod.modulation.data.float()

    def hook(mod, args):
        dt = mod.weight.dtype
        return tuple(a.to(dt) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv3d)):
            mod.register_forward_pre_hook(hook)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_forward(model, x, t, ctx, seq_len, device):
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model([x], t=t, context=[ctx], seq_len=seq_len)[0]
    sync(device)
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="folder holding the official wan/ package")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="72-token latent instead of 832x480x81")
    ap.add_argument("--frames", type=int, default=21, help="latent frames at 832x480 (21 = 81 frames)")
    ap.add_argument("--device", default="cuda", help="cuda (the device check) or cpu (a local run)")
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 run")
    args = ap.parse_args()
    if args.layers < 1 or args.frames < 1:
        raise SystemExit("--layers and --frames must be >= 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no GPU visible to torch")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    os.makedirs(args.out_dir, exist_ok=True)

    wan = load_official(args.official, names=("model",), attention=_attention, on_cpu=False)["model"]
    lat = (16, 3, 8, 12) if args.small else (16, args.frames, 60, 104)
    seq_len = lat[1] * (lat[2] // 2) * (lat[3] // 2)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__} on {where}; "
          f"allow_tf32 matmul={torch.backends.cuda.matmul.allow_tf32} cudnn={torch.backends.cudnn.allow_tf32}")
    print(f"official WanModel t2v, dim 1536, ffn 8960, 12 heads, {args.layers} layers; latent {list(lat)} "
          f"= {seq_len} tokens; prompt {CTX_LEN} tokens of 4096; t = {T}")

    t0 = time.perf_counter()
    model = wan.WanModel(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=1536,
                         ffn_dim=8960, freq_dim=256, text_dim=4096, out_dim=16, num_heads=12,
                         num_layers=args.layers, qk_norm=True, cross_attn_norm=True, eps=1e-6).eval()
    weights = make_weights(model, args.layers, SEED)
    model.load_state_dict({k: w.float() for k, w in weights.items()})
    save_file(weights, os.path.join(args.out_dir, "weights.safetensors"))
    g = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(*lat, generator=g)
    ctx = torch.randn(CTX_LEN, 4096, generator=g)
    print(f"weights: {sum(w.numel() for w in weights.values()) / 1e6:.1f} M parameters, made and written in "
          f"{time.perf_counter() - t0:.1f} s")
    model.to(device)
    xd, ctxd = x.to(device), ctx.to(device)
    td = torch.tensor([T], device=device)
    out, first_s = timed_forward(model, xd, td, ctxd, seq_len, device)
    out2, second_s = timed_forward(model, xd, td, ctxd, seq_len, device)
    repeat = ((out2 - out).abs().max() / out.abs().max()).item()
    print(f"float32: first forward {first_s:.3f} s, second {second_s:.3f} s "
          f"(repeat max rel diff {repeat:.2e})")
    io = {"x": x, "t": torch.tensor([T]), "context": ctx, "out": out.float().cpu()}
    meta = {"layers": str(args.layers), "torch": torch.__version__, "device": str(device),
            "torch_f32_first_s": f"{first_s:.4f}", "torch_f32_s": f"{second_s:.4f}"}
    o = io["out"]
    print(f"out: mean {o.mean().item():+.4f}, std {o.std().item():.4f}, max |.| {o.abs().max().item():.4f}")
    io_path = os.path.join(args.out_dir, "io.safetensors")
    save_file(io, io_path, metadata=meta)  # the float32 check stands even if the float64 run fails
    print(f"KV torch_f32_s {second_s:.4f}")
    print(f"KV torch_f32_first_s {first_s:.4f}")
    if args.no_f64:
        return 0
    del out2
    to_float64(model)
    out64, f64_s = timed_forward(model, xd.double(), td, ctxd.double(), seq_len, device)
    io["out_f64"] = out64.float().cpu()
    err = ((out.double() - out64.double()).abs().max() / out64.double().abs().max()).item()
    l2 = ((out.double() - out64.double()).norm() / out64.double().norm()).item()
    print(f"float64: forward {f64_s:.3f} s; float32 against it: max rel {err:.3e}, l2 rel {l2:.3e}")
    meta["torch_f64_s"] = f"{f64_s:.4f}"
    save_file(io, io_path, metadata=meta)
    print(f"KV torch_f64_s {f64_s:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
