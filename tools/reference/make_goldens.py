#!/usr/bin/env python3
"""Write the golden files under tests/golden/ from the PyTorch reference (deterministic, CPU).

  python3 tools/reference/make_goldens.py [--only umt5,dit,vae,pipeline]

Component folders (umt5/, dit/, vae/) hold config.json (the manifest's config keys),
weights.safetensors (random weights from ref_init, official key names; stored in f16 (umt5) or
bf16 (dit, vae), and the reference computes with exactly those rounded values) and io.safetensors:
  umt5/io:     ids int32 [L], context f32 [L, d_model]; embed, block.N (after each layer)
  dit/io:      x [16, F, H, W], t [1], context [L, text_dim], out [16, F, H, W];
               patch_tokens [n, dim], time_e [dim], time_e0 [6, dim], text_emb_rows [L+1, dim]
               (the embedded text: rows L.. text_len-1 all equal row L), block.N [n, dim],
               head_out [n, 64] (before unpatchify)
  vae/io:      z [16, F, h, w] (normalised latent), video [3, 1+4(F-1), 8h, 8w] = decode(z)
               clamped to [-1, 1]; video_in [3, T, H, W], z_out = encode(video_in)
               (normalised mean)
pipeline/ runs the whole job on models/tiny-random (make tools/make_tiny_model.py first):
  params.json and prompt.txt (the inputs), io.safetensors: noise, latent (final, before the VAE),
  latents [steps, ...] (after each step), timesteps int64, ids, ids_neg (int32), context,
  context_neg, video f32 [3, T, H, W] in [-1, 1], frames uint8 [T, H, W, 3].
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import wan_ref  # noqa: E402
from ref_dit import dit_forward, dit_tensor_shapes  # noqa: E402
from ref_init import random_weights  # noqa: E402
from ref_io import save_safetensors  # noqa: E402
from ref_umt5 import umt5_encode, umt5_tensor_shapes  # noqa: E402
from ref_vae import vae_decode, vae_encode, vae_tensor_shapes  # noqa: E402

LATENTS_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENTS_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
               3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]

UMT5_CFG = {"vocab_size": 300, "d_model": 64, "d_kv": 16, "num_heads": 6, "d_ff": 160, "num_layers": 3,
            "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
            "layer_norm_epsilon": 1e-6}
# head_dim 128 as in the released models; one block keeps the file small (models/tiny-random has two)
DIT_CFG = {"dim": 256, "ffn_dim": 384, "freq_dim": 256, "num_heads": 2, "num_layers": 1, "in_dim": 16,
           "out_dim": 16, "text_len": 512, "text_dim": 64, "patch_size": [1, 2, 2], "eps": 1e-6}
VAE_CFG = {"dim": 4, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
           "temperal_downsample": [False, True, True], "latents_mean": LATENTS_MEAN, "latents_std": LATENTS_STD}

PIPELINE = {"prompt": "A red fox runs through fresh snow in a quiet forest at dawn, cinematic lighting.",
            "width": 64, "height": 48, "frames": 9, "steps": 3, "guidance_scale": 5.0, "shift": 3.0,
            "sampler": "unipc", "seed": 42}


def stored(weights, dtype):
    """Round to the storage dtype; returns (tensors to write, f32 copies the reference uses)."""
    w = {k: v.to(dtype).contiguous() for k, v in weights.items()}
    return w, {k: v.float() for k, v in w.items()}


def write_component(name, cfg, weights, io, meta):
    d = os.path.join(ROOT, "tests", "golden", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    save_safetensors(os.path.join(d, "weights.safetensors"), weights, {"generator": "tools/reference/make_goldens.py"})
    save_safetensors(os.path.join(d, "io.safetensors"), io, meta)
    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)}
    print(f"{name}: " + ", ".join(f"{f} {s / 1024:.0f} KiB" for f, s in sorted(sizes.items())))


def make_umt5():
    w, sd = stored(random_weights(umt5_tensor_shapes(UMT5_CFG), seed=101), torch.float16)
    g = torch.Generator().manual_seed(201)
    n = 150  # > relative_attention_max_distance: the clipped far buckets are used
    ids = torch.randint(3, UMT5_CFG["vocab_size"], (n,), generator=g, dtype=torch.int32)
    ids[-1] = 1  # </s>
    trace = {}
    ctx = umt5_encode(sd, UMT5_CFG, ids, trace=trace)
    io = {"ids": ids, "context": ctx, **trace}
    write_component("umt5", UMT5_CFG, w, io, {"weights_dtype": "F16", "what": "context = umt5_encode(ids)"})


def make_dit():
    w, sd = stored(random_weights(dit_tensor_shapes(DIT_CFG), seed=102), torch.bfloat16)
    g = torch.Generator().manual_seed(202)
    x = torch.randn(16, 3, 6, 10, generator=g)  # tokens: 3 x 3 x 5 = 45
    ctx = torch.randn(7, DIT_CFG["text_dim"], generator=g)
    t = torch.tensor([937.0])
    trace = {}
    out = dit_forward(sd, DIT_CFG, x, float(t[0]), ctx, trace=trace)
    trace["text_emb_rows"] = trace.pop("text_emb")[:ctx.shape[0] + 1]
    io = {"x": x, "t": t, "context": ctx, "out": out, **trace}
    write_component("dit", DIT_CFG, w, io, {"weights_dtype": "BF16", "what": "out = dit_forward(x, t, context)"})


def make_vae():
    w, sd = stored(random_weights(vae_tensor_shapes(VAE_CFG), seed=103), torch.bfloat16)
    g = torch.Generator().manual_seed(203)
    z = torch.randn(16, 4, 4, 6, generator=g)  # 4 latent frames: every cache path of the decoder
    raw = vae_decode(sd, VAE_CFG, z, clamp=False)
    # a smooth moving pattern plus noise, 9 frames of 32x40 (3 encoder chunks)
    tt, yy, xx = torch.meshgrid(torch.arange(9.0), torch.arange(32.0), torch.arange(40.0), indexing="ij")
    base = torch.stack([torch.sin(0.3 * xx + 0.5 * tt), torch.cos(0.25 * yy - 0.4 * tt), torch.sin(0.2 * (xx + yy))])
    video_in = (0.8 * base + 0.2 * torch.randn(3, 9, 32, 40, generator=g)).clamp(-1, 1)
    z_out = vae_encode(sd, VAE_CFG, video_in)
    io = {"z": z, "video": raw.clamp(-1, 1), "video_in": video_in, "z_out": z_out}
    frac = (raw.abs() >= 1).float().mean().item()
    print(f"vae: decoded std {raw.std():.3f}, {100 * frac:.1f}% clamped; z_out std {z_out.std():.3f}")
    write_component("vae", VAE_CFG, w, io, {"weights_dtype": "BF16",
                                            "what": "video = clamp(vae_decode(z)); z_out = vae_encode(video_in)"})


def make_pipeline():
    folder = os.path.join(ROOT, "models", "tiny-random")
    model = wan_ref.WanModelFolder(folder)
    p = dict(PIPELINE, negative_prompt=model.defaults["negative_prompt"])
    latents = []
    r = wan_ref.generate(model, p["prompt"], None, p["width"], p["height"], p["frames"], p["steps"],
                         p["guidance_scale"], p["shift"], p["sampler"], p["seed"])
    # the same run again, step by step, to keep the trajectory (must agree with the run above)
    s = wan_ref.FlowSampler(p["sampler"], p["steps"], p["shift"])
    x = r["noise"].clone()
    for i in range(p["steps"]):
        t = s.timestep(i)
        v_c = dit_forward(model.dit, model.dit_cfg, x, t, r["context"])
        v_u = dit_forward(model.dit, model.dit_cfg, x, t, r["context_neg"])
        x = s.step(i, x, v_u + p["guidance_scale"] * (v_c - v_u))
        latents.append(x)
    if not torch.equal(x, r["latent"]):
        raise RuntimeError("pipeline: step-by-step rerun differs from generate()")
    d = os.path.join(ROOT, "tests", "golden", "pipeline")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "params.json"), "w", encoding="utf-8") as f:
        json.dump(dict(p, model="models/tiny-random"), f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(d, "prompt.txt"), "w", encoding="utf-8") as f:
        f.write(p["prompt"] + "\n")
    io = {k: r[k] for k in ("noise", "latent", "timesteps", "ids", "ids_neg", "context", "context_neg", "video",
                             "frames")}
    io["latents"] = torch.stack(latents)
    meta = {k: str(v) for k, v in p.items()}
    save_safetensors(os.path.join(d, "io.safetensors"), io, meta)
    v = r["video"]
    print(f"pipeline: {len(r['ids'])} + {len(r['ids_neg'])} tokens, latent std {r['latent'].std():.3f}, "
          f"video mean {v.mean():.3f} std {v.std():.3f}, {100 * (v.abs() >= 1).float().mean():.1f}% clamped, "
          f"io {os.path.getsize(os.path.join(d, 'io.safetensors')) / 1024:.0f} KiB")


def main():
    makers = {"umt5": make_umt5, "dit": make_dit, "vae": make_vae, "pipeline": make_pipeline}
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(makers), help="comma-separated subset of " + ",".join(makers))
    a = ap.parse_args()
    torch.set_num_threads(2)
    for name in a.only.split(","):
        if name not in makers:
            raise SystemExit(f"unknown golden {name!r}")
        makers[name]()


if __name__ == "__main__":
    main()
