#!/usr/bin/env python3
"""Prove the reference (wan_ref.py and its ref_*.py) computes what the official Wan2.1 modules do.

Usage:
  git -C <Wan2.1 clone> archive HEAD wan | tar -x -C /tmp/wan_official
  python3 tools/reference/check_against_official.py /tmp/wan_official

Loads wan/modules/{t5,model,vae}.py from that directory as they are (nothing is edited) with
run-time stand-ins for what a CPU-only machine lacks: diffusers' ModelMixin/ConfigMixin (plain
nn.Module), the tokenizer module (unused by the encoder), flash attention (float32 softmax
attention honouring k_lens, i.e. what flash_attn computes, without the bf16 cast), CUDA autocast
(a no-op: everything runs in float32) and torch.cuda.current_device (a default argument).
Checks that the reference's tensor tables (names and shapes) equal the official state dicts at the
released sizes (umt5-xxl, T2V-1.3B, the VAE), then, on random weights at small sizes, compares each component and prints the maximum error
relative to the largest output magnitude; exits 1 if any exceeds 1e-5. Needs einops; not run by CI.
"""
import contextlib
import importlib.util
import math
import os
import sys
import types

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from ref_dit import dit_forward, dit_tensor_shapes  # noqa: E402
from ref_init import random_tensor  # noqa: E402
from ref_umt5 import umt5_encode, umt5_from_official, umt5_tensor_shapes  # noqa: E402
from ref_vae import vae_decode, vae_encode, vae_tensor_shapes  # noqa: E402

TOLERANCE = 1e-5
MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


class _NoAutocast(contextlib.ContextDecorator):
    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _flash_attention_f32(q, k, v, q_lens=None, k_lens=None, dropout_p=0.0, softmax_scale=None,
                         q_scale=None, causal=False, window_size=(-1, -1), deterministic=False,
                         dtype=None, version=None):
    """q [B, Lq, N, D], k/v [B, Lk, N, D]; keys at or past k_lens[b] ignored, like varlen flash."""
    if q_lens is not None or causal or window_size != (-1, -1) or q_scale is not None:
        raise NotImplementedError("stand-in covers only what the text-to-video path uses")
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    s = torch.einsum("bqnd,bknd->bnqk", q.float(), k.float()) * scale
    if k_lens is not None:
        keep = torch.arange(k.shape[1])[None, :] < k_lens[:, None]  # [B, Lk]
        s = s.masked_fill(~keep[:, None, None, :], float("-inf"))
    return torch.einsum("bnqk,bknd->bqnd", torch.softmax(s, dim=-1), v.float()).to(q.dtype)


def load_official(root, names=("t5", "model", "vae"), attention=_flash_attention_f32, on_cpu=True):
    """Import the official wan/modules/<names>.py from root under a private package name, with
    stand-ins for diffusers, CUDA autocast and flash attention (`attention`, called like
    flash_attention). on_cpu: also make torch.cuda.current_device answer "cpu"."""
    mod_dir = os.path.join(root, "wan", "modules")
    if not os.path.isdir(mod_dir):
        raise SystemExit(f"{mod_dir}: not found (extract the official 'wan' folder into {root})")

    torch.cuda.amp.autocast = _NoAutocast
    if on_cpu:
        torch.cuda.current_device = lambda: "cpu"

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    stub("diffusers")
    stub("diffusers.configuration_utils", ConfigMixin=object, register_to_config=lambda f: f)
    stub("diffusers.models")
    stub("diffusers.models.modeling_utils", ModelMixin=nn.Module)
    pkg = stub("wan_official")
    pkg.__path__ = [mod_dir]
    stub("wan_official.attention", flash_attention=attention, attention=attention)
    stub("wan_official.tokenizers", HuggingfaceTokenizer=None)

    mods = {}
    for name in names:
        spec = importlib.util.spec_from_file_location(f"wan_official.{name}", os.path.join(mod_dir, name + ".py"))
        m = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = m
        spec.loader.exec_module(m)
        mods[name] = m
    return mods


def randomize(module, seed, gains=None):
    """Overwrite every parameter with ref_init's deterministic draw; returns the state dict."""
    sd = {}
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(random_tensor(name, list(p.shape), seed, gains))
            sd[name] = p.detach().clone()
    return sd


def rel_err(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def check_umt5(mods):
    cfg = {"vocab_size": 300, "d_model": 64, "d_kv": 16, "num_heads": 6, "d_ff": 160, "num_layers": 3,
           "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
           "layer_norm_epsilon": 1e-6}
    enc = mods["t5"].T5Encoder(cfg["vocab_size"], cfg["d_model"], cfg["num_heads"] * cfg["d_kv"], cfg["d_ff"],
                               cfg["num_heads"], cfg["num_layers"], cfg["relative_attention_num_buckets"],
                               shared_pos=False).eval()
    sd = umt5_from_official(randomize(enc, 11))
    g = torch.Generator().manual_seed(1)
    n, padded = 150, 170  # distances past max_distance exercise the clipped buckets
    ids = torch.randint(3, cfg["vocab_size"], (n,), generator=g)
    ids[-1] = 1
    full = torch.cat([ids, torch.zeros(padded - n, dtype=torch.long)])
    mask = (torch.arange(padded) < n).long()
    with torch.no_grad():
        off = enc(full[None], mask[None])[0, :n]
    errs = {"umt5 (padded+mask vs real tokens)": rel_err(umt5_encode(sd, cfg, ids), off),
            "umt5 (same padded input, masked)": rel_err(umt5_encode(sd, cfg, full, mask)[:n], off)}
    return errs


def check_dit(mods):
    cfg = {"dim": 256, "ffn_dim": 384, "freq_dim": 256, "num_heads": 2, "num_layers": 2, "in_dim": 16,
           "out_dim": 16, "text_len": 512, "text_dim": 64, "patch_size": [1, 2, 2], "eps": 1e-6}
    model = mods["model"].WanModel(model_type="t2v", patch_size=(1, 2, 2), text_len=cfg["text_len"],
                                   in_dim=16, dim=cfg["dim"], ffn_dim=cfg["ffn_dim"], freq_dim=cfg["freq_dim"],
                                   text_dim=cfg["text_dim"], out_dim=16, num_heads=cfg["num_heads"],
                                   num_layers=cfg["num_layers"], qk_norm=True, cross_attn_norm=True,
                                   eps=1e-6).eval()
    sd = randomize(model, 12)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 3, 6, 10, generator=g)
    ctx = torch.randn(7, cfg["text_dim"], generator=g)
    errs = {}
    for t in (999.0, 823.0, 3.0):
        with torch.no_grad():
            off = model([x], t=torch.tensor([t]), context=[ctx], seq_len=3 * 3 * 5)[0]
        errs[f"dit t={t:g}"] = rel_err(dit_forward(sd, cfg, x, t, ctx), off)
    with torch.no_grad():  # padded sequence (seq_len above the token count): padding must not leak in
        off = model([x], t=torch.tensor([500.0]), context=[ctx], seq_len=64)[0]
    errs["dit t=500, seq_len padded to 64"] = rel_err(dit_forward(sd, cfg, x, 500.0, ctx), off)
    return errs


def check_vae(mods):
    cfg = {"dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
           "temperal_downsample": [False, True, True], "latents_mean": MEAN, "latents_std": STD}
    model = mods["vae"].WanVAE_(dim=cfg["dim"], z_dim=16, dim_mult=cfg["dim_mult"], num_res_blocks=2,
                                attn_scales=[], temperal_downsample=cfg["temperal_downsample"]).eval()
    sd = randomize(model, 13)
    scale = [torch.tensor(MEAN), 1.0 / torch.tensor(STD)]
    g = torch.Generator().manual_seed(3)
    errs = {}
    z = torch.randn(16, 4, 4, 6, generator=g)
    with torch.no_grad():
        off = model.decode(z[None], scale)[0]
    errs["vae decode (4 latent frames, unclamped)"] = rel_err(vae_decode(sd, cfg, z, clamp=False), off)
    errs["vae decode (clamped)"] = rel_err(vae_decode(sd, cfg, z), off.clamp(-1, 1))
    video = torch.tanh(torch.randn(3, 13, 32, 48, generator=g))
    with torch.no_grad():
        off = model.encode(video[None], scale)[0]
    errs["vae encode (13 frames)"] = rel_err(vae_encode(sd, cfg, video), off)
    return errs


def check_pipeline(mods):
    """tests/golden/pipeline against the official modules on models/tiny-random, composed the way
    text2video.py composes them (T5 on the ids padded to text_len with a mask, cond and uncond DiT
    calls, CFG, decode, clamp), with sampler_ref's UniPC as the scheduler and the golden's noise."""
    import json
    from safetensors.torch import load_file
    import wan_ref
    model = wan_ref.WanModelFolder(os.path.join(ROOT, "models", "tiny-random"))
    gold_dir = os.path.join(ROOT, "tests", "golden", "pipeline")
    with open(os.path.join(gold_dir, "params.json"), encoding="utf-8") as f:
        p = json.load(f)
    gold = load_file(os.path.join(gold_dir, "io.safetensors"))
    c, d, v = model.t5_cfg, model.dit_cfg, model.vae_cfg

    enc = mods["t5"].T5Encoder(c["vocab_size"], c["d_model"], c["num_heads"] * c["d_kv"], c["d_ff"], c["num_heads"],
                               c["num_layers"], c["relative_attention_num_buckets"], shared_pos=False).eval()
    hf_name = {off: hf for hf, off in umt5_from_official({k: k for k in enc.state_dict()}).items()}
    enc.load_state_dict({off: model.t5[hf].float() for off, hf in hf_name.items()})
    dit = mods["model"].WanModel(model_type="t2v", patch_size=tuple(d["patch_size"]), text_len=d["text_len"],
                                 in_dim=d["in_dim"], dim=d["dim"], ffn_dim=d["ffn_dim"], freq_dim=d["freq_dim"],
                                 text_dim=d["text_dim"], out_dim=d["out_dim"], num_heads=d["num_heads"],
                                 num_layers=d["num_layers"], eps=d["eps"]).eval()
    dit.load_state_dict({k: t.float() for k, t in model.dit.items()})
    vae = mods["vae"].WanVAE_(dim=v["dim"], z_dim=v["z_dim"], dim_mult=v["dim_mult"],
                              num_res_blocks=v["num_res_blocks"], temperal_downsample=v["temperal_downsample"]).eval()
    vae.load_state_dict({k: t.float() for k, t in model.vae.items()})

    def encode(text):
        ids = model.tokenize(text).long()
        mask = torch.zeros(d["text_len"], dtype=torch.long)
        mask[:len(ids)] = 1
        full = torch.zeros(d["text_len"], dtype=torch.long)
        full[:len(ids)] = ids
        return enc(full[None], mask[None])[0, :len(ids)]

    with torch.no_grad():
        ctx, ctx_null = encode(p["prompt"]), encode(p["negative_prompt"])
        x = gold["noise"].clone()
        n_tokens = x.shape[1] * x.shape[2] * x.shape[3] // 4
        sched = wan_ref.FlowSampler(p["sampler"], p["steps"], p["shift"])
        for i in range(p["steps"]):
            t = torch.tensor([sched.timesteps[i]])
            cond = dit([x], t=t, context=[ctx], seq_len=n_tokens)[0]
            uncond = dit([x], t=t, context=[ctx_null], seq_len=n_tokens)[0]
            x = sched.step(i, x, uncond + p["guidance_scale"] * (cond - uncond))
        scale = [torch.tensor(v["latents_mean"]), 1.0 / torch.tensor(v["latents_std"])]
        video = vae.decode(x[None], scale)[0].clamp(-1, 1)
    return {"pipeline golden: context": rel_err(gold["context"], ctx),
            "pipeline golden: final latent": rel_err(gold["latent"], x),
            "pipeline golden: video": rel_err(gold["video"], video)}


def check_tables(mods):
    """The reference's tensor tables equal the official state dicts at the released sizes (meta tensors)."""
    t5 = {"vocab_size": 256384, "d_model": 4096, "d_kv": 64, "num_heads": 64, "d_ff": 10240, "num_layers": 24,
          "relative_attention_num_buckets": 32}
    dit = {"dim": 1536, "ffn_dim": 8960, "freq_dim": 256, "num_heads": 12, "num_layers": 30, "in_dim": 16,
           "out_dim": 16, "text_len": 512, "text_dim": 4096, "patch_size": [1, 2, 2]}
    vae = {"dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
           "temperal_downsample": [False, True, True]}
    with torch.device("meta"):
        off = {
            "umt5-xxl encoder": (umt5_from_official(dict(mods["t5"].T5Encoder(
                256384, 4096, 4096, 10240, 64, 24, 32, shared_pos=False).state_dict())), umt5_tensor_shapes(t5)),
            "T2V-1.3B DiT": (mods["model"].WanModel(model_type="t2v", dim=1536, ffn_dim=8960, num_heads=12,
                                                   num_layers=30).state_dict(), dit_tensor_shapes(dit)),
            "Wan2.1 VAE": (mods["vae"].WanVAE_(dim=96, z_dim=16, temperal_downsample=[False, True, True])
                           .state_dict(), vae_tensor_shapes(vae)),
        }
    for what, (sd, table) in off.items():
        got = {k: list(v.shape) for k, v in sd.items()}
        if got != table:
            extra, missing = sorted(set(got) - set(table)), sorted(set(table) - set(got))
            wrong = sorted(k for k in set(got) & set(table) if got[k] != table[k])
            raise SystemExit(f"{what}: tensor table differs: official only {extra[:3]}, reference only "
                             f"{missing[:3]}, shapes {wrong[:3]}")
        print(f"{what:45s} {len(table)} tensors, names and shapes equal")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    torch.manual_seed(0)
    mods = load_official(sys.argv[1])
    check_tables(mods)
    worst = 0.0
    for check in (check_umt5, check_dit, check_vae, check_pipeline):
        for what, err in check(mods).items():
            worst = max(worst, err)
            print(f"{what:45s} max rel err {err:.3e}  {'ok' if err < TOLERANCE else 'FAIL'}")
    print(f"worst {worst:.3e} (tolerance {TOLERANCE:g})")
    return 0 if worst < TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
