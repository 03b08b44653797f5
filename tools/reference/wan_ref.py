"""Wan2.1 text-to-video reference in PyTorch (float32, CPU): the model folder and the pipeline.

The components live in ref_umt5.py (text encoder), ref_dit.py (diffusion transformer) and
ref_vae.py (video VAE); the samplers and the Philox noise in sampler_ref.py. This file reads
a model folder (auteur-model.json + tokenizer.json + three safetensors files) and runs a job:

  text  -> clean (ftfy fix, HTML unescape twice, whitespace collapsed, stripped)
        -> tokenizer.json (Unigram; the post-processor appends </s>), at most text_len ids
        -> UMT5 -> context [L, d_model] (real tokens only)
  noise -> Philox normals of the seed, shape [16, (F-1)/4+1, H/8, W/8] (or given)
  loop  -> for each step: v = v_u + g (v_c - v_u) (DiT on the prompt and negative prompt
           contexts at the sampler's timestep), x = sampler.step(x, v)
  video -> VAE decode, clamp to [-1, 1]; frames uint8 = trunc((x + 1) / 2 · 255).
"""
import html
import json
import os
import re
import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_dit import dit_forward, dit_tensor_shapes  # noqa: E402
from ref_umt5 import umt5_encode, umt5_from_official, umt5_tensor_shapes  # noqa: E402
from ref_vae import vae_decode, vae_encode, vae_tensor_shapes  # noqa: E402
from sampler_ref import FlowSampler, philox_normal_f32  # noqa: E402

__all__ = ["WanModelFolder", "generate", "clean_text", "latent_shape", "philox_noise", "frames_uint8",
           "check_shapes", "umt5_encode", "umt5_from_official", "umt5_tensor_shapes", "dit_forward",
           "dit_tensor_shapes", "vae_decode", "vae_encode", "vae_tensor_shapes", "FlowSampler"]

VAE_STRIDE = (4, 8, 8)


def clean_text(text):
    """The official prompt cleaning ('whitespace' mode of Wan's HuggingfaceTokenizer)."""
    import ftfy  # only needed for text; the component checks run without it
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def check_shapes(sd, shapes, what):
    """Fail naming the first missing or mis-shaped tensor."""
    for name, shape in shapes.items():
        if name not in sd:
            raise KeyError(f"{what}: tensor {name} missing")
        if list(sd[name].shape) != list(shape):
            raise ValueError(f"{what}: tensor {name}: expected {shape}, found {list(sd[name].shape)}")


class WanModelFolder:
    """A model folder loaded in float32: manifest, tokenizer, UMT5, DiT, VAE."""

    def __init__(self, folder):
        with open(os.path.join(folder, "auteur-model.json"), encoding="utf-8") as f:
            self.manifest = json.load(f)
        m = self.manifest
        if m.get("format") != "auteur-model/1":
            raise ValueError(f"{folder}: format {m.get('format')!r}, expected 'auteur-model/1'")
        self.tokenizer = Tokenizer.from_file(os.path.join(folder, m["tokenizer"]))
        self.t5_cfg = m["text_encoder"]["config"]
        self.dit_cfg = m["dit"]["config"]
        self.vae_cfg = m["vae"]["config"]
        self.tokenizer.enable_truncation(self.dit_cfg["text_len"])
        self.t5 = load_file(os.path.join(folder, m["text_encoder"]["file"]))
        self.dit = load_file(os.path.join(folder, m["dit"]["file"]))
        self.vae = load_file(os.path.join(folder, m["vae"]["file"]))
        check_shapes(self.t5, umt5_tensor_shapes(self.t5_cfg), "text_encoder")
        check_shapes(self.dit, dit_tensor_shapes(self.dit_cfg), "dit")
        check_shapes(self.vae, vae_tensor_shapes(self.vae_cfg), "vae")
        self.defaults = m["defaults"]

    def tokenize(self, text):
        """Cleaned text -> int32 ids [L] ending in </s>."""
        return torch.tensor(self.tokenizer.encode(clean_text(text)).ids, dtype=torch.int32)

    def encode_text(self, text):
        ids = self.tokenize(text)
        return ids, umt5_encode(self.t5, self.t5_cfg, ids)


def latent_shape(width, height, frames, z_dim=16):
    if (frames - 1) % VAE_STRIDE[0] or width % 16 or height % 16:
        raise ValueError(f"size {width}x{height}x{frames}: need frames = 4k+1 and sides multiple of 16")
    return [z_dim, (frames - 1) // VAE_STRIDE[0] + 1, height // VAE_STRIDE[1], width // VAE_STRIDE[2]]


def philox_noise(seed, shape):
    n = 1
    for s in shape:
        n *= s
    return torch.from_numpy(philox_normal_f32(seed, 0, n)).view(shape)


def frames_uint8(video):
    """[3, T, H, W] in [-1, 1] -> uint8 [T, H, W, 3], truncating like the official saver."""
    v = ((video.clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8)
    return v.permute(1, 2, 3, 0).contiguous()


def generate(model, prompt, negative_prompt=None, width=None, height=None, frames=None, steps=None,
             guidance_scale=None, shift=None, sampler=None, seed=0, noise=None, progress=None):
    """One text-to-video job; unset arguments come from the model defaults.

    Returns a dict: ids, ids_neg, context, context_neg, noise, timesteps, latent (final, before
    the VAE), video ([3, T, H, W] in [-1, 1]), frames (uint8 [T, H, W, 3]).
    """
    d = model.defaults
    negative_prompt = d["negative_prompt"] if negative_prompt is None else negative_prompt
    width, height = width or d["width"], height or d["height"]
    frames, steps = frames or d["frames"], steps or d["steps"]
    guidance_scale = d["guidance_scale"] if guidance_scale is None else guidance_scale
    shift = d["shift"] if shift is None else shift
    sampler = sampler or d["sampler"]

    shape = latent_shape(width, height, frames, model.dit_cfg["in_dim"])
    ids, ctx = model.encode_text(prompt)
    ids_neg, ctx_neg = model.encode_text(negative_prompt)
    x = philox_noise(seed, shape) if noise is None else noise.float().clone()
    if list(x.shape) != shape:
        raise ValueError(f"noise: expected {shape}, found {list(x.shape)}")
    x0 = x.clone()

    s = FlowSampler(sampler, steps, shift)
    for i in range(steps):
        t = s.timestep(i)
        v_c = dit_forward(model.dit, model.dit_cfg, x, t, ctx)
        v_u = dit_forward(model.dit, model.dit_cfg, x, t, ctx_neg)
        x = s.step(i, x, v_u + guidance_scale * (v_c - v_u))
        if progress:
            progress(i + 1, steps)
    video = vae_decode(model.vae, model.vae_cfg, x)
    return {"ids": ids, "ids_neg": ids_neg, "context": ctx, "context_neg": ctx_neg, "noise": x0,
            "timesteps": torch.from_numpy(s.timesteps.copy()), "latent": x, "video": video,
            "frames": frames_uint8(video)}


def main():
    import argparse
    import time
    ap = argparse.ArgumentParser(description="Run the Wan2.1 reference pipeline on a model folder.")
    ap.add_argument("model", help="model folder with auteur-model.json")
    ap.add_argument("prompt")
    ap.add_argument("--negative-prompt")
    ap.add_argument("--size", help="WIDTHxHEIGHT")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--guidance", type=float)
    ap.add_argument("--shift", type=float)
    ap.add_argument("--sampler", choices=("unipc", "euler"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write io tensors (latent, video, frames) to this .safetensors")
    a = ap.parse_args()
    w = h = None
    if a.size:
        w, h = (int(v) for v in a.size.lower().split("x"))
    t0 = time.time()
    model = WanModelFolder(a.model)
    r = generate(model, a.prompt, a.negative_prompt, w, h, a.frames, a.steps, a.guidance, a.shift,
                 a.sampler, a.seed)
    print(f"{len(r['ids'])} prompt tokens, latent {list(r['latent'].shape)}, video {list(r['video'].shape)}, "
          f"video mean {r['video'].mean():.4f} std {r['video'].std():.4f}, {time.time() - t0:.2f} s")
    if a.out:
        from safetensors.torch import save_file
        save_file({k: r[k].contiguous() for k in ("noise", "latent", "video", "frames")}, a.out)


if __name__ == "__main__":
    main()
