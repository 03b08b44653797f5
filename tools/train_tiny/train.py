#!/usr/bin/env python3
"""Train Auteur-Tiny end to end and export it as a model folder the engine loads.

  train.py --out models/auteur-tiny [--log-dir DIR] [--quick] [--device cuda|cpu] [--init DIR]
           [--amp auto|on|off] [--compile auto|on|off] [--vae-steps N] [--dit-steps N] [--budget S]

Order (config.json holds every number; --quick swaps in its CPU-sized overrides):
  1. scenes     n_clips seeded scenes (world.py), captions_per_clip captions each (captions.py)
  2. tokenizer  SentencePiece Unigram on the captions, umt5-shaped tokenizer.json
                (tools/reference/make_tokenizer.py); every caption must fit in text_len tokens
  3. VAE        Wan2.1 causal 3D VAE as a KL autoencoder on freshly rendered clips:
                loss = L1 + MSE (pixels in [-1, 1], weighted 1 + object_weight where the shapes
                are) + kl_weight * mean KL(N(mu, var) | N(0, 1)); the decoder sees mu + sigma eps.
                Mostly random crops (crop x crop pixels, crop_frames frames), the last
                full_fraction of the time whole clips.
  4. latents    the scenes encoded (mu, as many as encode_max_fraction of the time left allows);
                per-channel mean/std become the manifest's latents_mean/latents_std; the DiT
                trains on (mu - mean) / std.
  5. UMT5 + DiT trained together by flow matching, Wan's convention:
                sigma = shift u / (1 + (shift - 1) u), u ~ U(0, 1);  x_t = (1 - sigma) x0 + sigma eps;
                the DiT sees t = 1000 sigma and predicts v = eps - x0 (the samplers take
                x0 = x - sigma v); loss = MSE(v); the caption is replaced by "" with probability
                caption_dropout (for CFG). AdamW, linear warm-up then cosine, EMA of the weights
                (exported). On CUDA the DiT blocks go through torch.compile.
  6. export     fp16 safetensors with the official key names, tokenizer.json, auteur-model.json
                (periodically during step 5 too, so a cut-off run still leaves a model).
  7. check      the held-out prompts generated from the exported files with the batched modules
                on this device, judged by judge.py, for the guidance/shift/steps of the grid.
--init DIR continues from a model folder instead of starting fresh (config "resume" overrides):
its tokenizer and latent statistics are kept, the VAE encoder is frozen (so the latents the DiT
learnt stay valid) while the decoder trains on, and UMT5 + DiT start from its weights.
Step counts: fixed by --vae-steps/--dit-steps (or the quick config), otherwise each phase runs
for its share of --budget seconds and its learning-rate schedule follows elapsed time.
The log (train.log), summary.json and device_sheet.png go to --log-dir. The device check may
run check_seconds past the budget.
"""
import argparse
import copy
import json
import math
import multiprocessing
import os
import random
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import captions  # noqa: E402
import evaluate  # noqa: E402
import make_tokenizer  # noqa: E402
import nets  # noqa: E402
import world  # noqa: E402
from ref_dit import dit_tensor_shapes  # noqa: E402
from ref_io import save_safetensors  # noqa: E402
from ref_umt5 import umt5_tensor_shapes  # noqa: E402
from ref_vae import vae_tensor_shapes  # noqa: E402

LIMITS = {"max_width": 256, "max_height": 256, "max_frames": 33, "max_steps": 50, "max_prompt_chars": 2000,
          "size_multiple": 16, "sizes": []}


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Log:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8") if path else None
        self.t0 = time.time()

    def __call__(self, msg):
        line = f"[{time.time() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()


class Schedule:
    """Progress of a phase by steps (when total_steps is set) or by elapsed seconds."""

    def __init__(self, total_steps, seconds):
        self.total_steps, self.seconds, self.t0, self.step = total_steps, seconds, time.time(), 0

    def progress(self):
        if self.total_steps:
            return self.step / self.total_steps
        return (time.time() - self.t0) / self.seconds

    def done(self):
        return self.progress() >= 1.0

    def lr(self, base, warmup):
        if self.step < warmup:
            return base * (self.step + 1) / warmup
        p = min(1.0, self.progress())
        return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


# ------------------------------------------------------------------------ data and tokenizer

def _caption_chunk(args):
    scenes, seed, k = args
    rng = random.Random(seed)
    return [[captions.caption(rng, s)[0] for _ in range(k)] for s in scenes]


def make_captions(scenes, k, seed):
    """k captions per scene, deterministic (the chunk at i uses seed + i), in parallel processes."""
    chunk = 2048
    jobs = [(scenes[i:i + chunk], seed * 1000003 + i, k) for i in range(0, len(scenes), chunk)]
    if len(jobs) == 1:
        return _caption_chunk(jobs[0])
    with multiprocessing.get_context("fork").Pool(min(16, os.cpu_count() or 1)) as pool:
        parts = pool.map(_caption_chunk, jobs)
    return [c for part in parts for c in part]


def build_tokenizer(lines, vocab_size):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "corpus.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return make_tokenizer.convert(make_tokenizer.train_spm(path, vocab_size, 1.0))


def tokenize(tok, texts, text_len):
    """texts -> int32 [n, text_len] (ids then 0 = <pad>); every text must fit."""
    out = np.zeros((len(texts), text_len), dtype=np.int32)
    longest = 0
    for i, enc in enumerate(tok.encode_batch(texts)):
        ids = enc.ids
        longest = max(longest, len(ids))
        if len(ids) > text_len:
            raise ValueError(f"caption {texts[i]!r}: {len(ids)} tokens, text_len is {text_len}")
        out[i, :len(ids)] = ids
    return out, longest


def packed_to(packed, device):
    return {k: torch.from_numpy(v).to(device) for k, v in packed.items()}


def render_batch(scenes, size, device, with_coverage=False):
    return world.render(packed_to(world.pack_scenes(scenes), device), size, with_coverage=with_coverage)


# ------------------------------------------------------------------------------- weights

def init_weights(shapes, kind, cfg, gen):
    """Fresh trainable float32 weights for one model (official names)."""
    out = {}
    for name in sorted(shapes):
        shape = shapes[name]
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        t = torch.empty(shape)
        if name.endswith(("gamma", "layer_norm.weight", "norm_q.weight", "norm_k.weight", "norm3.weight",
                          "final_layer_norm.weight")):
            t.fill_(1.0)
        elif name.endswith("bias") and not name.endswith("relative_attention_bias.weight"):
            t.zero_()
        elif kind == "dit" and (name.endswith("modulation") or name.startswith(("time_projection", "head.head"))):
            t.zero_()  # adaLN-zero: every block starts as the identity, the output as zero
        elif kind == "vae" and name.endswith("residual.6.weight"):
            t.zero_()  # residual blocks start as their shortcut
        elif name == "shared.weight":
            t.normal_(0.0, 1.0, generator=gen)
        elif name.endswith("relative_attention_bias.weight"):
            t.normal_(0.0, 0.1, generator=gen)
        elif kind == "umt5" and name.endswith("SelfAttention.q.weight"):
            t.normal_(0.0, (cfg["d_model"] * cfg["d_kv"]) ** -0.5, generator=gen)  # T5 has no 1/sqrt(d)
        else:
            t.normal_(0.0, fan_in ** -0.5, generator=gen)
        out[name] = t
    return out


def to_params(sd, device):
    return {k: v.to(device).requires_grad_() for k, v in sd.items()}


def adamw(params, lr, weight_decay):
    decay = [p for p in params.values() if p.ndim >= 2]
    plain = [p for p in params.values() if p.ndim < 2]
    fused = next(iter(params.values())).is_cuda
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.99), eps=1e-8, fused=fused)


def set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr


# ------------------------------------------------------------------------------------ VAE

def vae_step_batch(rng, cfg, tc, full, device):
    """A batch for one VAE step, whole clips or random crops: (video [B, 3, T, H, W], pixel loss
    weights [B, 1, T, H, W] = 1 + object_weight * object coverage)."""
    size, frames = cfg["size"], cfg["frames"]
    n = tc["full_batch"] if full else tc["batch"]
    video, cover = render_batch([world.sample_scene(rng, size, frames) for _ in range(n)], size, device, True)
    weight = (1.0 + tc["object_weight"] * cover)[:, None]
    if full:
        return video, weight
    c, cf = tc["crop"], tc["crop_frames"]
    crops = []
    for b in range(n):
        y, x = (int(rng.integers(0, (size - c) // 8 + 1)) * 8 for _ in range(2))
        t = int(rng.integers(0, frames - cf + 1))
        crops.append((video[b, :, t:t + cf, y:y + c, x:x + c], weight[b, :, t:t + cf, y:y + c, x:x + c]))
    return torch.stack([v for v, _ in crops]), torch.stack([w for _, w in crops])


def is_decoder_tensor(name):
    return name.startswith(("decoder.", "conv2."))


def train_vae(cfg, vae_cfg, device, log, total_steps, seconds, amp, init=None):
    """init: None (fresh weights, the whole VAE trains) or weights to continue from, in which case
    only the decoder trains: the encoder, and so the latents a DiT was trained on, stay as they are."""
    tc = cfg["vae_train"]
    gen = torch.Generator().manual_seed(cfg["seed"] + 3)
    sd = to_params(init or init_weights(vae_tensor_shapes(vae_cfg), "vae", vae_cfg, gen), device)
    trained = {k: v for k, v in sd.items() if init is None or is_decoder_tensor(k)}
    for k, v in sd.items():
        v.requires_grad_(k in trained)
    opt = adamw(trained, tc["lr"], 0.0)
    rng = np.random.default_rng(cfg["seed"] + 4)
    sched = Schedule(total_steps, seconds)
    torch.manual_seed(cfg["seed"] + 5)
    acc, n_acc, n_full = torch.zeros(3, device=device), 0, 0
    while not sched.done():
        full = sched.progress() >= 1.0 - tc["full_fraction"]
        video, weight = vae_step_batch(rng, cfg, tc, full, device)
        set_lr(opt, sched.lr(tc["lr"], tc["warmup"]))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            mu, logvar = nets.vae_encode_batch(sd, vae_cfg, video)
            logvar = logvar.float().clamp(-30.0, 20.0)
            z = mu.float() + torch.exp(0.5 * logvar) * torch.randn_like(logvar)
            rec = nets.vae_decode_batch(sd, vae_cfg, z).float()
        err = rec - video
        l1 = (err.abs() * weight).mean() / weight.mean()  # weighted means over the pixels
        mse = (err.pow(2) * weight).mean() / weight.mean()
        kl = 0.5 * (mu.float().pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = l1 + mse + tc["kl_weight"] * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(trained.values()), 1.0)
        opt.step()
        sched.step += 1
        n_full += int(full)
        acc += torch.stack([l1.detach(), mse.detach(), kl.detach()])
        n_acc += 1
        if sched.step % 100 == 0 or sched.step <= 3 or sched.done():
            a = (acc / n_acc).tolist()
            log(f"vae step {sched.step} ({'full' if full else 'crop'}): l1 {a[0]:.4f} mse {a[1]:.5f} "
                f"kl {a[2]:.2f} lr {opt.param_groups[0]['lr']:.2e}")
            acc.zero_()
            n_acc = 0
    last = {"l1": float(l1.detach()), "mse": float(mse.detach()), "kl": float(kl.detach())}
    return {k: v.detach() for k, v in sd.items()}, {"steps": sched.step, "full_steps": n_full,
                                                     "trained": "decoder" if init else "all",
                                                     "seconds": round(time.time() - sched.t0, 1), "last": last}


@torch.no_grad()
def encode_scenes(vae, vae_cfg, scenes, size, batch, device, amp, seconds):
    """Raw latent means [n, 16, T', h, w] float32 of the first n scenes (all of them, or as many as
    `seconds` allow) and their per-channel mean/std."""
    chunks = []
    t0 = time.time()
    for i in range(0, len(scenes), batch):
        if i and time.time() - t0 > seconds:
            break
        video = render_batch(scenes[i:i + batch], size, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            mu, _ = nets.vae_encode_batch(vae, vae_cfg, video)
        chunks.append(mu.float())
    lat = torch.cat(chunks)
    mean = lat.mean(dim=(0, 2, 3, 4))
    std = lat.std(dim=(0, 2, 3, 4))
    return lat, mean, std


@torch.no_grad()
def vae_recon_error(vae, vae_cfg, scenes, size, device):
    """Mean |x - decode(encode(x))| on whole clips, float32, decoding the mean."""
    video = render_batch(scenes, size, device)
    mu, _ = nets.vae_encode_batch(vae, vae_cfg, video)
    rec = nets.vae_decode_batch(vae, vae_cfg, mu).clamp(-1, 1)
    return float((rec - video).abs().mean())


# ------------------------------------------------------------------------------------ DiT

def train_dit(cfg, t5_cfg, dit_cfg, lat, id_table, empty, device, log, total_steps, seconds, amp, export_fn,
              init=None, compile_blocks=False):
    """empty: the ids of "" [text_len], the caption of the unconditional (dropped) samples;
    init: None or (t5, dit) weights to continue from; compile_blocks: torch.compile the DiT blocks
    (if compiling fails at the first step, the error is logged and the run goes on eagerly)."""
    tc = cfg["dit_train"]
    gen = torch.Generator().manual_seed(cfg["seed"] + 6)
    t5 = to_params(init[0] if init else init_weights(umt5_tensor_shapes(t5_cfg), "umt5", t5_cfg, gen), device)
    dit = to_params(init[1] if init else init_weights(dit_tensor_shapes(dit_cfg), "dit", dit_cfg, gen), device)
    compiled = None
    if compile_blocks:
        nets.dit_compile_blocks(True)
        compiled = True
    params = {**{"t5:" + k: v for k, v in t5.items()}, **{"dit:" + k: v for k, v in dit.items()}}
    ema = {k: v.detach().clone() for k, v in params.items()}
    opt = adamw(params, tc["lr"], tc["weight_decay"])
    g = torch.Generator(device=device).manual_seed(cfg["seed"] + 7)
    N, K, text_len = id_table.shape
    sched = Schedule(total_steps, seconds)
    B, shift = tc["batch"], tc["shift"]
    edges = torch.tensor([0.25, 0.5, 0.75], device=device)
    acc = torch.zeros(2, 4, device=device)  # loss sums and counts per sigma quarter
    last_export = time.time()
    history = []
    while not sched.done():
        idx = torch.randint(N, (B,), generator=g, device=device)
        kk = torch.randint(K, (B,), generator=g, device=device)
        x0 = lat[idx]
        ids = id_table[idx, kk]
        drop = torch.rand(B, generator=g, device=device) < tc["caption_dropout"]
        ids = torch.where(drop[:, None], empty[None], ids)
        u = torch.rand(B, generator=g, device=device)
        sigma = shift * u / (1 + (shift - 1) * u)
        eps = torch.randn(x0.shape, generator=g, device=device)
        s = sigma.view(B, 1, 1, 1, 1)
        xt = (1 - s) * x0 + s * eps
        set_lr(opt, sched.lr(tc["lr"], tc["warmup"]))

        def forward_backward():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                ctx = nets.umt5_encode_batch(t5, t5_cfg, ids, (ids != 0).long())
                v = nets.dit_forward_batch(dit, dit_cfg, xt, sigma * 1000.0, ctx)
            per = (v.float() - (eps - x0)).pow(2).mean(dim=(1, 2, 3, 4))
            opt.zero_grad(set_to_none=True)
            per.mean().backward()
            return per

        if sched.step == 0 and compiled:
            t0 = time.time()
            try:
                per = forward_backward()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                log(f"dit: blocks compiled, first step {time.time() - t0:.1f} s")
            except Exception as e:  # noqa: BLE001 - logged, recorded in the summary, run goes on eagerly
                log(f"dit: COMPILE FAILED ({type(e).__name__}: {e}); continuing without torch.compile")
                nets.dit_compile_blocks(False)
                compiled = False
                per = forward_backward()
        else:
            per = forward_backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        sched.step += 1
        decay = min(tc["ema"], (1 + sched.step) / (10 + sched.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.values()), [p.detach() for p in params.values()], 1 - decay)
            q = torch.bucketize(sigma, edges)
            acc[0].index_add_(0, q, per.detach())
            acc[1].index_add_(0, q, torch.ones_like(per))
        if sched.step % 100 == 0 or sched.step <= 3 or sched.done():
            sums, counts = acc.tolist()
            quarters = [s_ / max(c, 1) for s_, c in zip(sums, counts)]
            mean = sum(sums) / max(sum(counts), 1)
            history.append({"step": sched.step, "loss": round(mean, 5)})
            rate = sched.step / (time.time() - sched.t0)
            log(f"dit step {sched.step}: loss {mean:.4f} (sigma quarters " +
                " ".join(f"{x:.3f}" for x in quarters) + f") lr {opt.param_groups[0]['lr']:.2e} {rate:.2f} it/s")
            acc.zero_()
        if tc["export_every_seconds"] and time.time() - last_export > tc["export_every_seconds"]:
            export_fn(split_ema(ema), f"step {sched.step}")
            last_export = time.time()
    nets.dit_compile_blocks(False)  # evaluation runs other shapes eagerly
    info = {"steps": sched.step, "seconds": round(time.time() - sched.t0, 1), "batch": B, "history": history,
            "compiled": compiled, "continued": init is not None}
    return split_ema(ema), info


def split_ema(ema):
    t5 = {k[3:]: v for k, v in ema.items() if k.startswith("t5:")}
    dit = {k[4:]: v for k, v in ema.items() if k.startswith("dit:")}
    return t5, dit


# --------------------------------------------------------------------------------- export

def to_f16(sd, what):
    out = {}
    for k, v in sd.items():
        m = float(v.detach().abs().max())
        if not math.isfinite(m) or m > 60000.0:
            raise ValueError(f"{what}: tensor {k}: max |x| = {m}, not representable in float16")
        out[k] = v.detach().to("cpu", torch.float16).contiguous()
    return out


def export_model(out, tok_json, t5_cfg, dit_cfg, vae_cfg, t5, dit, vae, cfg, description):
    """Write the model folder (tok_json: the tokenizer.json text); each file goes to a temporary
    name first, then is renamed into place."""
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, ".part")
    meta = {"generator": "tools/train_tiny/train.py", "model": "auteur-tiny"}
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(tok_json)
    os.replace(tmp, os.path.join(out, "tokenizer.json"))
    for name, sd in (("umt5", t5), ("dit", dit), ("vae", vae)):
        save_safetensors(tmp, to_f16(sd, name), {**meta, "part": name})
        os.replace(tmp, os.path.join(out, name + ".safetensors"))
    d = cfg["defaults"]
    manifest = {
        "format": "auteur-model/1", "name": "auteur-tiny", "description": description,
        "tokenizer": "tokenizer.json",
        "text_encoder": {"file": "umt5.safetensors", "config": t5_cfg},
        "dit": {"file": "dit.safetensors", "config": dit_cfg},
        "vae": {"file": "vae.safetensors", "config": vae_cfg},
        "defaults": {"width": cfg["size"], "height": cfg["size"], "frames": cfg["frames"], "fps": cfg["fps"],
                     "steps": d["steps"], "guidance_scale": d["guidance_scale"], "shift": d["shift"],
                     "sampler": d["sampler"], "negative_prompt": ""},
        "limits": LIMITS,
    }
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.replace(tmp, os.path.join(out, "auteur-model.json"))


def device_check(out, cfg, device, log, deadline, sheet_path):
    """Held-out pass rates of the exported model, batched on this device (judge of evaluate.py),
    for each (guidance, shift, steps) of the grid while time is left before `deadline`; a contact
    sheet of the first configuration's first 8 clips goes to sheet_path."""
    ec = cfg["device_eval"]
    prompts = captions.eval_prompts()[:ec.get("n_prompts", len(captions.HELD_OUT))]
    results = []
    for guidance, shift, steps in ec["grid"]:
        if time.time() > deadline:
            log(f"device check: no time left for guidance {guidance} shift {shift} steps {steps}")
            continue
        t0 = time.time()
        frames = evaluate.generate_batch(out, [p["prompt"] for p in prompts],
                                         [1000 + i for i in range(len(prompts))], steps, guidance, shift, device)
        verdicts = [evaluate.judge(f, p["color"], p["direction"]) for f, p in zip(frames, prompts)]
        n_ok = sum(v["ok"] for v in verdicts)
        results.append({"guidance": guidance, "shift": shift, "steps": steps, "passed": n_ok,
                        "total": len(prompts), "seconds": round(time.time() - t0, 1),
                        "failures": [[p["prompt"], v["reason"]] for p, v in zip(prompts, verdicts) if not v["ok"]]})
        log(f"device check: guidance {guidance} shift {shift} steps {steps}: {n_ok}/{len(prompts)} pass "
            f"({results[-1]['seconds']} s)")
        if len(results) == 1:
            evaluate.contact_sheet([(p["prompt"], f) for p, f in zip(prompts[:8], frames)], sheet_path)
    return results


def load_init(folder, cfg):
    """A model folder to continue from: tokenizer, configurations and float32 weights."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    with open(os.path.join(folder, "auteur-model.json"), encoding="utf-8") as f:
        man = json.load(f)
    if (man["defaults"]["width"], man["defaults"]["frames"]) != (cfg["size"], cfg["frames"]):
        raise ValueError(f"--init {folder}: made for {man['defaults']['width']} px x {man['defaults']['frames']} "
                         f"frames, the config trains {cfg['size']} x {cfg['frames']}")
    with open(os.path.join(folder, man["tokenizer"]), encoding="utf-8") as f:
        tok_json = f.read()
    out = {"tokenizer": Tokenizer.from_str(tok_json), "tokenizer_json": tok_json,
           "t5_cfg": man["text_encoder"]["config"], "dit_cfg": man["dit"]["config"], "vae_cfg": man["vae"]["config"]}
    for key, part in (("t5", "text_encoder"), ("dit", "dit"), ("vae", "vae")):
        out[key] = {k: v.float() for k, v in load_file(os.path.join(folder, man[part]["file"])).items()}
    return out


# ----------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "auteur-tiny"))
    ap.add_argument("--log-dir", help="train.log and summary.json (default: the --out folder's parent)")
    ap.add_argument("--config", default=os.path.join(HERE, "config.json"))
    ap.add_argument("--quick", action="store_true", help="a few steps of everything, for a CPU smoke run")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--budget", type=float, help="seconds for the whole run (default from the config)")
    ap.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                    help="bf16 autocast (auto: on for CUDA); 'on' on the CPU tests the mixed-precision code paths")
    ap.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                    help="torch.compile the DiT blocks (auto: on for CUDA)")
    ap.add_argument("--init", help="continue from this model folder (same architecture): its tokenizer, "
                                   "weights and latent statistics; the VAE encoder stays frozen")
    ap.add_argument("--vae-steps", type=int)
    ap.add_argument("--dit-steps", type=int)
    a = ap.parse_args()
    t_start = time.time()
    with open(a.config, encoding="utf-8") as f:
        cfg = json.load(f)
    if a.init:
        cfg = merge(cfg, cfg["resume"])
    if a.quick:
        cfg = merge(cfg, cfg["quick"])
    budget = a.budget or cfg["budget_seconds"]
    log_dir = a.log_dir or os.path.dirname(os.path.abspath(a.out))
    os.makedirs(log_dir, exist_ok=True)
    log = Log(os.path.join(log_dir, "train.log"))
    device = torch.device(a.device)
    amp = a.amp == "on" or (a.amp == "auto" and device.type == "cuda")
    compile_blocks = a.compile == "on" or (a.compile == "auto" and device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(min(4, os.cpu_count() or 1))
    log(f"torch {torch.__version__}, budget {budget:.0f} s, quick {a.quick}, autocast {amp}, "
        f"compile {compile_blocks}, init {a.init}")
    summary = {"config": cfg, "torch": torch.__version__, "init": a.init}

    # 1-2: scenes, captions, tokenizer
    size, frames, dc = cfg["size"], cfg["frames"], cfg["data"]
    rng = np.random.default_rng(cfg["seed"])
    scenes = [world.sample_scene(rng, size, frames) for _ in range(dc["n_clips"])]
    caps = make_captions(scenes, dc["captions_per_clip"], cfg["seed"] + 1)
    init = load_init(a.init, cfg) if a.init else None
    if init:
        tok = init["tokenizer"]
    else:
        corpus_rng = np.random.default_rng(cfg["seed"] + 2)
        corpus = [c[0] for c in make_captions([world.sample_scene(corpus_rng, size, frames) for _ in
                                               range(cfg["tokenizer"]["corpus_lines"])], 1, cfg["seed"] + 2)]
        tok = build_tokenizer(corpus, cfg["tokenizer"]["vocab_size"])
    t5_cfg = dict(vocab_size=tok.get_vocab_size(), **cfg["text_encoder"])
    dit_cfg = dict(cfg["dit"], text_dim=t5_cfg["d_model"])
    if init and (init["t5_cfg"], init["dit_cfg"]) != (t5_cfg, dit_cfg):
        raise ValueError(f"--init {a.init}: its text encoder/DiT configuration differs from {a.config}")
    text_len = dit_cfg["text_len"]
    flat, longest = tokenize(tok, [c for per in caps for c in per], text_len)
    _, longest_eval = tokenize(tok, [p["prompt"] for p in captions.eval_prompts()], text_len)
    id_table = torch.from_numpy(flat).view(len(scenes), dc["captions_per_clip"], text_len).to(device)
    log(f"{len(scenes)} scenes x {dc['captions_per_clip']} captions; vocab {t5_cfg['vocab_size']}; longest caption "
        f"{longest} tokens (held-out prompts {longest_eval}), text_len {text_len}")
    summary["data"] = {"vocab_size": t5_cfg["vocab_size"], "longest_caption_tokens": longest}
    # CUDA starts only now: the caption workers above are forked from a process without it
    summary["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    log(f"device {device} ({summary['device']})")

    def remaining():
        return budget - (time.time() - t_start)

    # 3: VAE
    vae_cfg = init["vae_cfg"] if init else dict(cfg["vae"], latents_mean=[0.0] * 16, latents_std=[1.0] * 16)
    if {k: v for k, v in vae_cfg.items() if not k.startswith("latents_")} != cfg["vae"]:
        raise ValueError(f"--init {a.init}: its VAE configuration differs from {a.config}")
    vae_seconds = min(cfg["vae_train"]["seconds"], 0.3 * remaining())
    vae, vae_info = train_vae(cfg, vae_cfg, device, log, a.vae_steps or cfg["vae_train"].get("steps"),
                              vae_seconds, amp, init["vae"] if init else None)
    check_scenes = [world.sample_scene(np.random.default_rng(cfg["seed"] + 9), size, frames) for _ in range(4)]
    vae_info["recon_l1_full_clips"] = vae_recon_error(vae, vae_cfg, check_scenes, size, device)
    log(f"vae: {vae_info['steps']} steps in {vae_info['seconds']} s; reconstruction L1 on whole clips "
        f"{vae_info['recon_l1_full_clips']:.4f}")
    summary["vae"] = vae_info

    # 4: latents
    t0 = time.time()
    lat, mean, std = encode_scenes(vae, vae_cfg, scenes, size, dc["encode_batch"], device, amp,
                                   dc["encode_max_fraction"] * remaining())
    id_table = id_table[:lat.shape[0]]
    stats = {"latents_mean": [round(float(x), 5) for x in mean], "latents_std": [round(float(x), 5) for x in std]}
    if not init:  # continuing keeps the statistics the DiT was trained with (same encoder)
        vae_cfg.update(stats)
    m_t, s_t = nets.latent_stats_tensors(vae_cfg, device)
    lat = (lat - m_t) / s_t
    log(f"latents {list(lat.shape)} in {time.time() - t0:.1f} s; this set's mean {stats['latents_mean']} "
        f"std {stats['latents_std']}")
    summary["latents"] = {"clips": lat.shape[0], "seconds": round(time.time() - t0, 1)}

    # 5-6: UMT5 + DiT, exporting as it goes
    tok_json = init["tokenizer_json"] if init else tok.to_str(pretty=True)

    def export(t5_dit, note):
        export_model(a.out, tok_json, t5_cfg, dit_cfg, vae_cfg, t5_dit[0], t5_dit[1], vae, cfg,
                     "Auteur-Tiny: a small Wan2.1-architecture text-to-video model trained on a synthetic world of "
                     "moving coloured shapes (tools/train_tiny; see MODEL_CARD.md)")
        log(f"exported {a.out} ({note})")

    dit_seconds = remaining() - cfg["dit_train"]["reserve_seconds"]
    empty = torch.from_numpy(tokenize(tok, [""], text_len)[0][0]).to(device)
    (t5, dit), dit_info = train_dit(cfg, t5_cfg, dit_cfg, lat, id_table, empty, device, log,
                                    a.dit_steps or cfg["dit_train"].get("steps"), dit_seconds, amp, export,
                                    (init["t5"], init["dit"]) if init else None, compile_blocks)
    summary["dit"] = dit_info
    export((t5, dit), "final")
    sizes = {f: os.path.getsize(os.path.join(a.out, f)) for f in sorted(os.listdir(a.out))}
    summary["files"] = sizes
    log(f"files {sizes}, total {sum(sizes.values()) / 2**20:.2f} MiB")

    def write_summary():
        summary["total_seconds"] = round(time.time() - t_start, 1)
        with open(os.path.join(log_dir, "summary.json"), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)

    write_summary()
    # 7: held-out check on this device
    del lat, id_table
    summary["device_check"] = device_check(a.out, cfg, device, log, t_start + budget + cfg["check_seconds"],
                                           os.path.join(log_dir, "device_sheet.png"))
    write_summary()
    log(f"done in {summary['total_seconds']} s")


if __name__ == "__main__":
    main()
