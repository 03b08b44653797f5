#!/usr/bin/env python3
"""torch_text_vae.py - the PyTorch side of bench_cuda_text_vae: the OFFICIAL Wan2.1 UMT5 encoder and
VAE (wan/modules/t5.py, vae.py, loaded as tools/reference/check_against_official.py loads them) on
the same weights and inputs, timed in bf16, and run once in float32 (TF32 off) as the reference the
engine's outputs and PyTorch's bf16 outputs are measured against.

  python3 bench/torch_text_vae.py MODEL_DIR OUT_DIR [--official DIR] [--iters K] [--vae-iters K]
                                  [--no-compile] [--cudnn-benchmark] [--vae-only]
MODEL_DIR: a folder from bench/make_bench_model.py (umt5/vae weights, inputs.safetensors);
OUT_DIR: where bench_cuda_text_vae wrote umt5_<precision>.safetensors and vae_<precision>.safetensors.
UMT5: the 512 ids with an all-ones mask, as the official T5EncoderModel encodes a full-length
prompt; bf16 eager, then torch.compile of each encoder block (one graph, reused by all 24).
VAE: WanVAE_.decode of z as the official WanVAE.decode runs it (one latent frame per chunk with the
causal caches), bf16, cuDNN's default algorithm choice (--cudnn-benchmark autotunes in the warm-up
call instead). torch.compile is not used on the VAE: its streaming decoder recompiles per block and
chunk (42 graphs for the decoder, 90 s of compilation at toy size on a CPU), more than the whole
device call can spend.
FLOP of the VAE: counted by hooks on every Conv2d/Conv3d call of the float32 run (2 Cout Cin/groups
k^d per output element; the per-frame attention at the latent level, under 0.1%, is left out).
Prints "RESULT <kind> <name> torch-<variant> <ms> <TFLOP/s>", "ERROR <kind> <name> <impl> <rel>"
(||x - ref|| / ||ref|| against the float32 run) and "FLOPS <kind> <name> <flop>".
"""
import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_against_official import load_official  # noqa: E402
from ref_umt5 import umt5_from_official  # noqa: E402
from torch_dit import rel, time_ms  # noqa: E402


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def wall_ms(fn, dev):
    """One call, wall clock around synchronisations (for the float32 runs and compilation)."""
    sync(dev)
    t0 = time.perf_counter()
    out = fn()
    sync(dev)
    return out, (time.perf_counter() - t0) * 1e3


def timed(fn, iters, dev):
    return time_ms(fn, iters) if dev.type == "cuda" else wall_ms(fn, dev)[1]


def report_ours(kind, name, out_dir, file_prefix, key, ref, dev):
    for impl in ("fp8", "bf16", "f32"):  # f32: the CPU backend, in a local run
        path = os.path.join(out_dir, f"{file_prefix}_{impl}.safetensors")
        if os.path.exists(path):
            print(f"ERROR {kind} {name} {impl} {rel(load_file(path, device=str(dev))[key], ref):.3e}", flush=True)


def bench_umt5(mods, folder, cfg, ids, out_dir, args, dev):
    n = ids.numel()
    name = f"{n}tok"
    d, inner, layers = cfg["d_model"], cfg["num_heads"] * cfg["d_kv"], cfg["num_layers"]
    flop = layers * (8.0 * n * d * inner + 6.0 * n * d * cfg["d_ff"] + 4.0 * n * n * inner)
    with torch.device("meta"):
        enc = mods["t5"].T5Encoder(cfg["vocab_size"], d, inner, cfg["d_ff"], cfg["num_heads"], layers,
                                   cfg["relative_attention_num_buckets"], shared_pos=False)
    sd = load_file(os.path.join(folder, "umt5.safetensors"), device=str(dev))
    hf_name = {off: hf for hf, off in umt5_from_official({k: k for k in enc.state_dict()}).items()}
    enc.load_state_dict({off: sd.pop(hf).float() for off, hf in hf_name.items()}, assign=True)
    enc.eval().requires_grad_(False)
    del sd
    ids_b = ids.long()[None].to(dev)
    mask = torch.ones_like(ids_b)
    with torch.no_grad():
        enc(ids_b, mask)  # warm-up
        ref, ms = wall_ms(lambda: enc(ids_b, mask)[0].float(), dev)
        print(f"RESULT umt5 {name} torch-f32 {ms:.3f} {flop / (ms * 1e-3) / 1e12:.1f}", flush=True)
        enc.to(torch.bfloat16)
        out = enc(ids_b, mask)[0]
        print(f"ERROR umt5 {name} torch-bf16 {rel(out, ref):.3e}", flush=True)
        ms = timed(lambda: enc(ids_b, mask), args.iters, dev)
        print(f"RESULT umt5 {name} torch-bf16 {ms:.3f} {flop / (ms * 1e-3) / 1e12:.1f}", flush=True)
        if not args.no_compile:
            for block in enc.blocks:
                block.compile()
            out, compile_ms = wall_ms(lambda: enc(ids_b, mask)[0], dev)
            print(f"# umt5 torch.compile (per block): first call {compile_ms / 1e3:.1f} s", flush=True)
            print(f"ERROR umt5 {name} torch-compile {rel(out, ref):.3e}", flush=True)
            ms = timed(lambda: enc(ids_b, mask), args.iters, dev)
            print(f"RESULT umt5 {name} torch-compile {ms:.3f} {flop / (ms * 1e-3) / 1e12:.1f}", flush=True)
    report_ours("umt5", name, out_dir, "umt5", "context", ref, dev)


def count_conv_flop(model):
    """Hooks adding 2 Cout Cin/groups k^d per output element of every conv call into box[0]."""
    box, handles = [0.0], []

    def hook(mod, args, out):
        k = 1
        for s in mod.kernel_size:
            k *= s
        box[0] += 2.0 * out.numel() * (mod.in_channels // mod.groups) * k

    for mod in model.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Conv3d)):
            handles.append(mod.register_forward_hook(hook))
    return box, handles


def bench_vae(mods, folder, cfg, z, out_dir, args, dev):
    _, f, h, w = z.shape
    name = f"{8 * w}x{8 * h}x{1 + 4 * (f - 1)}"
    with torch.device("meta"):
        vae = mods["vae"].WanVAE_(dim=cfg["dim"], z_dim=cfg["z_dim"], dim_mult=cfg["dim_mult"],
                                  num_res_blocks=cfg["num_res_blocks"], attn_scales=[],
                                  temperal_downsample=cfg["temperal_downsample"])
    sd = load_file(os.path.join(folder, "vae.safetensors"), device=str(dev))
    vae.load_state_dict({k: v.float() for k, v in sd.items()}, assign=True)
    vae.eval().requires_grad_(False)
    del sd
    mean = torch.tensor(cfg["latents_mean"], device=dev)
    std = torch.tensor(cfg["latents_std"], device=dev)
    z = z.to(dev)[None]
    box, handles = count_conv_flop(vae)
    with torch.no_grad():
        ref, ms = wall_ms(lambda: vae.decode(z, [mean, 1.0 / std])[0].float().clamp_(-1, 1), dev)
        for hnd in handles:
            hnd.remove()
        flop = box[0]
        print(f"FLOPS vae {name} {flop:.6e}", flush=True)
        print(f"RESULT vae {name} torch-f32 {ms:.1f} {flop / (ms * 1e-3) / 1e12:.1f}", flush=True)
        vae.to(torch.bfloat16)
        zb, scale = z.bfloat16(), [mean.bfloat16(), (1.0 / std).bfloat16()]
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        out = vae.decode(zb, scale)[0].float().clamp_(-1, 1)
        print(f"ERROR vae {name} torch-bf16 {rel(out, ref):.3e}", flush=True)
        del out
        ms = timed(lambda: vae.decode(zb, scale), args.vae_iters, dev)
        print(f"RESULT vae {name} torch-bf16 {ms:.1f} {flop / (ms * 1e-3) / 1e12:.1f}", flush=True)
        if dev.type == "cuda":
            print(f"# vae torch bf16: peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)
    report_ours("vae", name, out_dir, "vae", "video", ref, dev)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--official", default=os.path.join(ROOT, ".official"), help="folder holding wan/")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--vae-iters", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="autotune the VAE's bf16 convolutions")
    ap.add_argument("--vae-only", action="store_true", help="skip the text encoder")
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 references must be float32
    torch.backends.cudnn.allow_tf32 = False
    with open(os.path.join(args.model_dir, "auteur-model.json"), encoding="utf-8") as fh:
        man = json.load(fh)
    inputs = load_file(os.path.join(args.model_dir, "inputs.safetensors"))
    mods = load_official(args.official, names=("t5", "vae"), on_cpu=dev.type != "cuda")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}", flush=True)
    if not args.vae_only:
        bench_umt5(mods, args.model_dir, man["text_encoder"]["config"], inputs["ids"], args.out_dir, args, dev)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    bench_vae(mods, args.model_dir, man["vae"]["config"], inputs["z"], args.out_dir, args, dev)


if __name__ == "__main__":
    main()
