#!/usr/bin/env python3
"""make_bench_model.py - a Wan2.1-T2V-1.3B-shaped model folder with random weights, for the
CUDA benchmarks of bench/cuda_figures.sh (bench_video, bench_cuda_text_vae, torch_text_vae.py).

Writes into DIR:
  umt5.safetensors      UMT5-XXL encoder shape (vocab 256384, d_model 4096, 64 heads of 64,
                        d_ff 10240, 24 layers; Hugging Face names), bf16, 11.4 GB
  dit.safetensors       DiT T2V-1.3B shape (dim 1536, 12 heads, FFN 8960, 30 layers), bf16
  vae.safetensors       the Wan VAE shape (dim 96, encoder and decoder), bf16
  tokenizer.json        copied from models/tiny-random (its 1051 ids fit the 256384-row table)
  auteur-model.json     configs; defaults and limits left to the engine (the official release's:
                        832x480, 81 frames, 50 UniPC steps, guidance 5, shift 5)
  inputs.safetensors    ids int32 [512] (uniform over the vocabulary) and z float32
                        [16, 21, 60, 104] (N(0, 1): a normalised 832x480x81 latent)
Values follow the scale rules of tools/reference/ref_init.py (N(0,1)/sqrt(fan_in) for matrices,
1 + N(0, 0.1^2) for norm gains, ...), drawn on the GPU per tensor from a generator seeded by the
tensor's name, and streamed to disk one tensor at a time (the header is written first). UMT5's q
and k weights get an extra d_kv^-1/4 each, as T5's own initialisation folds the 1/sqrt(d_kv) its
attention leaves out into q: without it the scores have a standard deviation of 8 at d_kv 64, the
softmax is nearly one-hot and 24 layers turn bf16 rounding into a different output (a relative
difference of 1.0 between PyTorch's own bf16 and float32 runs; 2e-2 with the factor).
--small writes the same layout at toy widths (for a local run of the benchmark programs).
Usage: make_bench_model.py DIR [--small] [--device cuda|cpu]
"""
import argparse
import json
import os
import shutil
import struct
import sys
import time
import zlib

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
from check_against_official import MEAN, STD  # noqa: E402  (the released latent statistics)
from ref_dit import dit_tensor_shapes  # noqa: E402
from ref_umt5 import umt5_tensor_shapes  # noqa: E402
from ref_vae import vae_tensor_shapes  # noqa: E402

SEED = 4242
NORM_SUFFIXES = ("gamma", "layer_norm.weight", "norm_q.weight", "norm_k.weight", "norm3.weight")


def configs(small):
    """(umt5, dit, vae) configs with the manifest's keys; text_len 512 as in Wan2.1."""
    if small:
        t5 = dict(vocab_size=1051, d_model=64, d_kv=16, num_heads=4, d_ff=160, num_layers=2)
        dit = dict(dim=256, ffn_dim=512, num_heads=2, num_layers=2, text_dim=64)
        vae_dim = 8
    else:
        t5 = dict(vocab_size=256384, d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=24)
        dit = dict(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, text_dim=4096)
        vae_dim = 96
    t5.update(relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6)
    dit.update(freq_dim=256, in_dim=16, out_dim=16, text_len=512, patch_size=[1, 2, 2], eps=1e-6)
    vae = dict(dim=vae_dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
               temperal_downsample=[False, True, True], latents_mean=MEAN, latents_std=STD)
    return t5, dit, vae


def draw(name, shape, device, gains):
    """One tensor, float32 on device, with ref_init's scale for its kind of name; gains maps a
    name suffix to a factor on a matrix's scale."""
    g = torch.Generator(device=device)
    g.manual_seed((SEED * 1000003 + zlib.crc32(name.encode())) & 0x7FFFFFFFFFFFFFFF)
    n = torch.randn(shape, generator=g, device=device)
    if name.endswith("relative_attention_bias.weight"):
        return n.mul_(0.5)
    if name == "shared.weight":
        return n
    if name.endswith(NORM_SUFFIXES):
        return n.mul_(0.1).add_(1.0)
    if name.endswith("modulation"):
        return n.mul_(shape[-1] ** -0.5)
    if name.endswith("bias"):
        return n.mul_(0.05)
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    gain = next((g for suffix, g in gains.items() if name.endswith(suffix)), 1.0)
    return n.mul_(gain * fan_in ** -0.5)


def write_random(path, shapes, device, gains=None):
    """Stream bf16 tensors to a safetensors file: header (offsets from the shapes), then data."""
    names = sorted(shapes)
    header, offset = {}, 0
    for name in names:
        size = 2
        for s in shapes[name]:
            size *= s
        header[name] = {"dtype": "BF16", "shape": list(shapes[name]), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in names:
            t = draw(name, shapes[name], device, gains or {}).to(torch.bfloat16)
            f.write(t.view(torch.int16).cpu().numpy().tobytes())
    return offset


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--small", action="store_true", help="toy widths, for a local run")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    t5, dit, vae = configs(args.small)
    t0 = time.perf_counter()
    qk_gain = t5["d_kv"] ** -0.25
    total = write_random(os.path.join(args.dir, "umt5.safetensors"), umt5_tensor_shapes(t5), args.device,
                         {"SelfAttention.q.weight": qk_gain, "SelfAttention.k.weight": qk_gain})
    total += write_random(os.path.join(args.dir, "dit.safetensors"), dit_tensor_shapes(dit), args.device)
    total += write_random(os.path.join(args.dir, "vae.safetensors"), vae_tensor_shapes(vae), args.device)
    shutil.copyfile(os.path.join(ROOT, "models", "tiny-random", "tokenizer.json"),
                    os.path.join(args.dir, "tokenizer.json"))
    manifest = {
        "format": "auteur-model/1",
        "name": "bench-t2v-1.3b-random" if not args.small else "bench-small-random",
        "description": "Wan2.1 T2V-1.3B shape (UMT5-XXL, DiT 1.3B, Wan VAE) with random bf16 weights, "
                       "for benchmarks only (bench/make_bench_model.py)",
        "tokenizer": "tokenizer.json",
        "text_encoder": {"file": "umt5.safetensors", "config": t5},
        "dit": {"file": "dit.safetensors", "config": dit},
        "vae": {"file": "vae.safetensors", "config": vae},
    }
    with open(os.path.join(args.dir, "auteur-model.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)

    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, t5["vocab_size"], (512,), generator=g, dtype=torch.int32)
    z = torch.randn((16, 3, 8, 12) if args.small else (16, 21, 60, 104), generator=g)
    from safetensors.torch import save_file
    save_file({"ids": ids, "z": z}, os.path.join(args.dir, "inputs.safetensors"))
    print(f"model folder {args.dir}: {total / 2**30:.1f} GiB of bf16 weights in {time.perf_counter() - t0:.1f} s "
          f"({args.device})", flush=True)


if __name__ == "__main__":
    main()
