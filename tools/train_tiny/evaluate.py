#!/usr/bin/env python3
"""Prompt following of Auteur-Tiny on the held-out prompts, and the contact sheet.

  evaluate.py --model models/auteur-tiny [--engine reference|batch|auteur] [--auteur-bin build/auteur]
              [--set heldout|validation] [--steps N --guidance G --shift S] [--n N] [--via-mp4]
              [--json OUT] [--sheet PNG]

For each held-out prompt (captions.eval_prompts: one object, colour x shape x direction, a
phrasing never used in training) a clip is generated (seed = 1000 + index) by the PyTorch
reference pipeline (tools/reference/wan_ref.py) or by the C engine (`auteur generate`, MP4
decoded back with ffmpeg), then judged by judge.py (colour present, centroid moving within 35
degrees of the requested direction). The pass rate is printed. --set validation swaps in
prompts from training templates, for choosing sampler settings without the held-out set.
The same judge runs in tests/e2e/test_prompt_following.py and in train.py's device check.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
from captions import eval_prompts, validation_prompts  # noqa: E402
from judge import judge_rgb  # noqa: E402

def judge(frames, color, direction):
    """judge.judge_rgb on uint8 frames [T, H, W, 3]."""
    T, H, W, _ = frames.shape
    return judge_rgb(np.ascontiguousarray(frames).tobytes(), T, H, W, color, direction)


def mp4_roundtrip(frames, fps, workdir):
    """Encode uint8 frames with libx264 (yuv420p, as the engine's writer) and decode them back."""
    path = os.path.join(workdir, "roundtrip.mp4")
    T, H, W, _ = frames.shape
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
                    "-r", str(fps), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", path],
                   input=frames.tobytes(), check=True)
    return decode_mp4(path)


def decode_mp4(path):
    """MP4 -> uint8 [T, H, W, 3] through ffprobe (size) and ffmpeg (raw RGB)."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height", "-of", "json", path], check=True, capture_output=True, text=True)
    s = json.loads(probe.stdout)["streams"][0]
    W, H = int(s["width"]), int(s["height"])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, H, W, 3)


def generate_reference(model, prompt, seed, steps, guidance, shift):
    import wan_ref
    r = wan_ref.generate(model, prompt, seed=seed, steps=steps, guidance_scale=guidance, shift=shift)
    return r["frames"].numpy()


def generate_engine(binary, model_dir, prompt, seed, steps, guidance, shift, workdir):
    out = os.path.join(workdir, "clip.mp4")
    cmd = [binary, "generate", "--model", model_dir, "--prompt", prompt, "--seed", str(seed), "-o", out]
    for flag, v in (("--steps", steps), ("--guidance-scale", guidance), ("--shift", shift)):
        if v is not None:
            cmd += [flag, str(v)]
    subprocess.run(cmd, check=True, capture_output=True)
    return decode_mp4(out)


def _clean(text):
    """The reference's prompt cleaning where ftfy is installed; elsewhere (the device machine) only
    text it leaves unchanged is accepted: ASCII, single spaces, no HTML entities."""
    if importlib.util.find_spec("ftfy") is None:
        if not text.isascii() or text != " ".join(text.split()) or "&" in text:
            raise ValueError(f"generate_batch: prompt {text!r} needs ftfy to be cleaned like the reference")
        return text
    import wan_ref
    return wan_ref.clean_text(text)


def _sample_decode(t5, dit, vae, t5_cfg, dit_cfg, vae_cfg, d, ids, B, seeds, steps, guidance, shift, device,
                   decode_batch):
    import torch

    import nets
    import wan_ref
    from sampler_ref import FlowSampler

    ctx = nets.umt5_encode_batch(t5, t5_cfg, ids, (ids != 0).long())  # [B + 1, text_len, d], zero padding rows
    cond, uncond = ctx[:B], ctx[B:].expand(B, -1, -1)
    shape = wan_ref.latent_shape(d["width"], d["height"], d["frames"], dit_cfg["in_dim"])
    x = torch.stack([wan_ref.philox_noise(s, shape) for s in seeds]).to(device)
    sampler = FlowSampler("unipc", steps, shift)
    for i in range(steps):
        t = torch.full((2 * B,), sampler.timestep(i), device=device)
        v = nets.dit_forward_batch(dit, dit_cfg, torch.cat([x, x]), t, torch.cat([cond, uncond]))
        x = sampler.step(i, x, v[B:] + guidance * (v[:B] - v[B:]))
    mean, std = nets.latent_stats_tensors(vae_cfg, device)
    frames = []
    for j in range(0, B, decode_batch):
        video = nets.vae_decode_batch(vae, vae_cfg, x[j:j + decode_batch] * std + mean).clamp(-1, 1)
        frames += [wan_ref.frames_uint8(v_).cpu().numpy() for v_ in video]
    return frames


def generate_batch(model_dir, prompts, seeds, steps, guidance, shift, device, decode_batch=8):
    """The reference pipeline's computation for many prompts at once (train.py's device check):
    the model folder's weights widened to float32, Philox noise of each seed, UniPC with CFG
    against the model's default negative prompt, batched UMT5/DiT/VAE (nets.py), no TF32.
    Without ftfy, prompts must be text the reference's cleaning keeps as is (the grammar's are).
    Returns uint8 frames [T, H, W, 3] per prompt."""
    import torch
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    with open(os.path.join(model_dir, "auteur-model.json"), encoding="utf-8") as f:
        man = json.load(f)
    d = man["defaults"]
    t5_cfg, dit_cfg, vae_cfg = (man[k]["config"] for k in ("text_encoder", "dit", "vae"))
    t5, dit, vae = ({k: v.float().to(device) for k, v in load_file(os.path.join(model_dir, man[k]["file"])).items()}
                    for k in ("text_encoder", "dit", "vae"))
    tok = Tokenizer.from_file(os.path.join(model_dir, man["tokenizer"]))
    texts = [_clean(t) for t in list(prompts) + [d["negative_prompt"]]]
    L = dit_cfg["text_len"]
    ids = torch.zeros(len(texts), L, dtype=torch.long)
    for i, enc in enumerate(tok.encode_batch(texts)):
        if len(enc.ids) > L:
            raise ValueError(f"generate_batch: prompt {texts[i]!r} has {len(enc.ids)} tokens, text_len {L}")
        ids[i, :len(enc.ids)] = torch.tensor(enc.ids)
    ids = ids.to(device)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            frames = _sample_decode(t5, dit, vae, t5_cfg, dit_cfg, vae_cfg, d, ids, len(prompts), seeds, steps,
                                    guidance, shift, device, decode_batch)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    return frames


def contact_sheet(rows, path, n_cols=6, scale=1):
    """rows: [(label, frames uint8 [T, H, W, 3])] -> PNG grid, one clip per row, evenly spaced frames."""
    from PIL import Image, ImageDraw
    H, W = rows[0][1].shape[1:3]
    H, W = H * scale, W * scale
    label_h, pad = 16, 4
    sheet = Image.new("RGB", (n_cols * (W + pad) + pad, len(rows) * (H + label_h + pad) + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames) in enumerate(rows):
        y = pad + r * (H + label_h + pad)
        draw.text((pad, y + 2), label, fill=(230, 230, 230))
        idx = np.linspace(0, frames.shape[0] - 1, n_cols).round().astype(int)
        for c, t in enumerate(idx):
            img = Image.fromarray(frames[t])
            if scale != 1:
                img = img.resize((W, H), Image.NEAREST)
            sheet.paste(img, (pad + c * (W + pad), y + label_h))
    sheet.save(path, optimize=True)


def summarise(results):
    n_ok = sum(r["ok"] for r in results)
    return {"passed": n_ok, "total": len(results), "pass_rate": n_ok / max(1, len(results))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model folder")
    ap.add_argument("--engine", choices=("reference", "batch", "auteur"), default="reference",
                    help="reference: wan_ref.generate per prompt; batch: generate_batch (the same computation "
                         "batched, equal to the reference within one 8-bit level); auteur: the C engine")
    ap.add_argument("--set", choices=("heldout", "validation"), default="heldout",
                    help="the held-out prompts, or validation prompts from training templates (for tuning)")
    ap.add_argument("--sampler-batch", type=int, default=16, help="prompts per batch (engine batch)")
    ap.add_argument("--auteur-bin", help="the auteur binary (engine auteur)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--guidance", type=float)
    ap.add_argument("--shift", type=float)
    ap.add_argument("--n", type=int, help="evaluate only the first N prompts")
    ap.add_argument("--via-mp4", action="store_true", help="reference frames through an MP4 round trip first")
    ap.add_argument("--json", help="write per-prompt verdicts here")
    ap.add_argument("--sheet", help="write a contact sheet of the first --sheet-rows prompts here")
    ap.add_argument("--sheet-rows", type=int, default=8)
    a = ap.parse_args()

    prompts = eval_prompts() if a.set == "heldout" else validation_prompts()
    prompts = prompts[:a.n] if a.n else prompts
    model = None
    batch_frames = {}
    t0 = time.time()
    if a.engine == "batch":
        import torch
        torch.set_num_threads(min(4, os.cpu_count() or 1))
        with open(os.path.join(a.model, "auteur-model.json"), encoding="utf-8") as f:
            d = json.load(f)["defaults"]
        fps = d["fps"]
        steps, guidance = a.steps or d["steps"], d["guidance_scale"] if a.guidance is None else a.guidance
        shift = d["shift"] if a.shift is None else a.shift
        for j in range(0, len(prompts), a.sampler_batch):
            chunk = prompts[j:j + a.sampler_batch]
            frames = generate_batch(a.model, [p["prompt"] for p in chunk], [1000 + j + k for k in range(len(chunk))],
                                    steps, guidance, shift, torch.device("cpu"))
            batch_frames.update({j + k: f for k, f in enumerate(frames)})
    elif a.engine == "reference":
        import torch
        import wan_ref
        torch.set_num_threads(min(4, os.cpu_count() or 1))
        model = wan_ref.WanModelFolder(a.model)
        fps = model.defaults["fps"]
    elif not a.auteur_bin:
        ap.error("--engine auteur needs --auteur-bin")
    results, sheet_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(prompts):
            seed = 1000 + i
            if model is not None or a.engine == "batch":
                frames = batch_frames[i] if a.engine == "batch" else \
                    generate_reference(model, p["prompt"], seed, a.steps, a.guidance, a.shift)
                if a.via_mp4:
                    frames = mp4_roundtrip(frames, fps, tmp)
            else:
                frames = generate_engine(a.auteur_bin, a.model, p["prompt"], seed, a.steps, a.guidance, a.shift, tmp)
            v = judge(frames, p["color"], p["direction"])
            results.append({**p, "seed": seed, **v})
            print(f"{i + 1:3d}/{len(prompts)} {'PASS' if v['ok'] else 'FAIL'}  {p['prompt']!r}: {v['reason']}",
                  flush=True)
            if a.sheet and len(sheet_rows) < a.sheet_rows:
                sheet_rows.append((p["prompt"], frames))
    s = summarise(results)
    s["seconds_per_clip"] = round((time.time() - t0) / max(1, len(prompts)), 2)
    print(f"pass rate {s['passed']}/{s['total']} = {100 * s['pass_rate']:.1f}% "
          f"({a.engine}, {s['seconds_per_clip']} s per clip)")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"summary": s, "results": results}, f, indent=1)
    if a.sheet:
        contact_sheet(sheet_rows, a.sheet)


if __name__ == "__main__":
    main()
