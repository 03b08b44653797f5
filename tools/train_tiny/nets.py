"""Batched, differentiable forms of the Wan2.1 modules, for training Auteur-Tiny.

The PyTorch reference in tools/reference/ runs one sample at a time in float32, streaming the
VAE chunk by chunk with its causal cache, exactly like the official code and the C engine.
Training needs batches, autocast and fused attention, so this file computes the same
functions over the same state dicts (official key names) in one pass per batch:

  UMT5   ids [B, L] + mask [B, L] -> [B, L, d_model]; padded keys masked out of attention,
         padded rows zeroed (so the rows of real tokens equal ref_umt5.umt5_encode on them).
  DiT    x [B, 16, F, H, W], t [B], context [B, text_len, text_dim] (real rows then zeros,
         as the pipeline pads) -> velocity [B, 16, F, H, W]; attention through SDPA.
  VAE    whole clips at once. Streaming the decoder one latent frame at a time with 2-frame
         causal caches equals one causal pass over the whole sequence, except at the temporal
         resamples, which the stream special-cases and which are written out here:
           down3d: out[0] = in[0]; out[1:] = Conv3d(k_t 3, stride 2, no padding) over all frames
           up3d:   out[0] = in[0]; frames 1.. go through the causal time conv (history zero,
                   it never sees frame 0) and each becomes two frames.
         So encode: [B, 3, 1+4k, H, W] -> (mu, logvar) [B, 16, 1+k, H/8, W/8] (not normalised),
         decode: raw latent (mu scale) -> [B, 3, 1+4k, 8h, 8w] (not clamped).
test_train_tiny.py checks all three against the reference on random weights.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from ref_dit import rope_angles  # noqa: E402
from ref_umt5 import rel_bucket  # noqa: E402
from ref_vae import vae_layout  # noqa: E402


# ----------------------------------------------------------------------------------- UMT5

def _t5_rms(x, w, eps):
    return w * (x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype))


def umt5_encode_batch(sd, cfg, ids, mask):
    """ids, mask: [B, L] int -> [B, L, d_model] with padded rows zero."""
    eps = cfg.get("layer_norm_epsilon", 1e-6)
    nh, dk = cfg["num_heads"], cfg["d_kv"]
    B, L = ids.shape
    x = sd["shared.weight"][ids.long()]
    pos = torch.arange(L, device=ids.device)
    buckets = rel_bucket(pos[None, :] - pos[:, None], cfg["relative_attention_num_buckets"],
                         cfg.get("relative_attention_max_distance", 128))  # [L, L]
    key_bias = torch.zeros(B, 1, 1, L, device=ids.device, dtype=torch.float32)
    key_bias = key_bias.masked_fill(mask[:, None, None, :] == 0, -1e9)
    for i in range(cfg["num_layers"]):
        a = f"encoder.block.{i}.layer.0."
        f = f"encoder.block.{i}.layer.1."
        h = _t5_rms(x, sd[a + "layer_norm.weight"], eps)
        q, k, v = (F.linear(h, sd[a + f"SelfAttention.{p}.weight"]).view(B, L, nh, dk).transpose(1, 2)
                   for p in "qkv")
        bias = sd[a + "SelfAttention.relative_attention_bias.weight"][buckets].permute(2, 0, 1)  # [nh, L, L]
        att_mask = (bias[None].float() + key_bias).to(q.dtype)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=att_mask, scale=1.0)
        x = x + F.linear(att.transpose(1, 2).reshape(B, L, nh * dk), sd[a + "SelfAttention.o.weight"])
        h = _t5_rms(x, sd[f + "layer_norm.weight"], eps)
        gate = F.gelu(F.linear(h, sd[f + "DenseReluDense.wi_0.weight"]), approximate="tanh")
        x = x + F.linear(gate * F.linear(h, sd[f + "DenseReluDense.wi_1.weight"]), sd[f + "DenseReluDense.wo.weight"])
    out = _t5_rms(x, sd["encoder.final_layer_norm.weight"], eps)
    return out * mask[..., None].to(out.dtype)


# ------------------------------------------------------------------------------------ DiT

def _lin(sd, name, x):
    return F.linear(x, sd[name + ".weight"], sd[name + ".bias"])


def _rms(x, w, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


_TABLES = {}  # (kind, sizes, device) -> tensors: computed once, so a training step copies nothing to the device


def rope_tables(head_dim, grid, device):
    """(cos, sin) [n_tokens, head_dim/2] float32 for a (f, h, w) token grid."""
    key = ("rope", head_dim, tuple(grid), str(device))
    if key not in _TABLES:
        ang = rope_angles(head_dim, grid)
        _TABLES[key] = torch.cos(ang).float().to(device), torch.sin(ang).float().to(device)
    return _TABLES[key]


def _rope(x, cos, sin):
    """x: [B, n, heads, hd] -> rotated pairs (x[2j], x[2j+1])."""
    xf = x.float().unflatten(-1, (-1, 2))
    re, im = xf[..., 0], xf[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([re * c - im * s, re * s + im * c], dim=-1).flatten(-2).to(x.dtype)


def sinusoid_batch(t, freq_dim):
    """t: [B] -> [B, freq_dim] float32, computed in float64 like ref_dit.sinusoid (cos half, sin half)."""
    half = freq_dim // 2
    key = ("freq", freq_dim, str(t.device))
    if key not in _TABLES:
        _TABLES[key] = torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                                 -torch.arange(half, dtype=torch.float64) / half).to(t.device)
    w = _TABLES[key]
    ang = t.detach().double()[:, None] * w[None, :]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1).float()


def _attn(sd, p, x_q, x_kv, nh, eps, rope):
    B, nq, d = x_q.shape
    q = _rms(_lin(sd, p + ".q", x_q), sd[p + ".norm_q.weight"], eps).view(B, nq, nh, d // nh)
    k = _rms(_lin(sd, p + ".k", x_kv), sd[p + ".norm_k.weight"], eps).view(B, -1, nh, d // nh)
    v = _lin(sd, p + ".v", x_kv).view(B, -1, nh, d // nh)
    if rope is not None:
        q, k = _rope(q, *rope), _rope(k, *rope)
    q, k = q.to(v.dtype), k.to(v.dtype)  # under autocast the norms and RoPE leave float32
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return _lin(sd, p + ".o", o.transpose(1, 2).reshape(B, nq, d))


def _ln(x, eps, w=None, b=None):
    return F.layer_norm(x, x.shape[-1:], w, b, eps)


def _dit_block(w, h, e0, ctx, rope, nh, eps):
    """One DiT block; w holds its tensors without the "blocks.N." prefix."""
    m = (w["modulation"] + e0)[:, :, None, :]  # [B, 6, 1, dim]
    y = _ln(h, eps) * (1 + m[:, 1]) + m[:, 0]
    h = h + _attn(w, "self_attn", y, y, nh, eps, rope) * m[:, 2]
    y = _ln(h, eps, w["norm3.weight"], w["norm3.bias"])
    h = h + _attn(w, "cross_attn", y, ctx, nh, eps, None)
    y = _ln(h, eps) * (1 + m[:, 4]) + m[:, 3]
    return h + _lin(w, "ffn.2", F.gelu(_lin(w, "ffn.0", y), approximate="tanh")) * m[:, 5]


_BLOCK = {"fn": _dit_block}


def dit_compile_blocks(enable=True):
    """Run the DiT blocks through torch.compile from now on (or, enable=False, eagerly again): one
    compiled function serves every block of a shape, fusing the element-wise work that dominates
    a training step. Compilation happens at the first call."""
    _BLOCK["fn"] = torch.compile(_dit_block, dynamic=False) if enable else _dit_block


def dit_forward_batch(sd, cfg, x, t, context):
    """x: [B, in_dim, F, H, W], t: [B] float, context: [B, text_len, text_dim] -> [B, out_dim, F, H, W]."""
    d, nh, eps = cfg["dim"], cfg["num_heads"], cfg.get("eps", 1e-6)
    pt, ph, pw = cfg["patch_size"]
    B = x.shape[0]
    tok = F.conv3d(x, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=(pt, ph, pw))
    grid = list(tok.shape[2:])
    h = tok.flatten(2).transpose(1, 2)  # [B, n, dim]
    rope = rope_tables(d // nh, grid, x.device)
    sin_t = sinusoid_batch(t, cfg["freq_dim"])
    e = _lin(sd, "time_embedding.2", F.silu(_lin(sd, "time_embedding.0", sin_t)))  # [B, dim]
    e0 = _lin(sd, "time_projection.1", F.silu(e)).view(B, 6, d)
    if context.shape[1] != cfg["text_len"]:
        raise ValueError(f"dit: context has {context.shape[1]} rows, expected text_len {cfg['text_len']}")
    ctx = _lin(sd, "text_embedding.2", F.gelu(_lin(sd, "text_embedding.0", context), approximate="tanh"))
    for i in range(cfg["num_layers"]):
        b = f"blocks.{i}."
        w = {k[len(b):]: v for k, v in sd.items() if k.startswith(b)}
        h = _BLOCK["fn"](w, h, e0, ctx, rope, nh, eps)
    n = (sd["head.modulation"] + e[:, None, :])[:, :, None, :]  # [B, 2, 1, dim]
    out = _lin(sd, "head.head", _ln(h, eps) * (1 + n[:, 1]) + n[:, 0])  # [B, n, pt·ph·pw·c]
    f, gh, gw = grid
    c = cfg["out_dim"]
    out = out.view(B, f, gh, gw, pt, ph, pw, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return out.reshape(B, c, f * pt, gh * ph, gw * pw)


# ------------------------------------------------------------------------------------ VAE

def _vrms(x, gamma):
    return F.normalize(x, dim=1) * (x.shape[1] ** 0.5) * gamma


def _cconv(sd, name, x):
    """Causal Conv3d over the whole sequence: time padding all in the past."""
    w, b = sd[name + ".weight"], sd[name + ".bias"]
    kt, kh, kw = w.shape[2:]
    x = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2, kt - 1, 0))
    return F.conv3d(x, w, b)


def _frames(x, fn):
    """Apply a 2D map to every frame: [B, C, T, H, W] -> [B, C', T, H', W']."""
    B, C, T, H, W = x.shape
    y = fn(x.transpose(1, 2).reshape(B * T, C, H, W))
    return y.view(B, T, *y.shape[1:]).transpose(1, 2)


def _vres(sd, p, x):
    h = _cconv(sd, p + ".shortcut", x) if (p + ".shortcut.weight") in sd else x
    y = _cconv(sd, p + ".residual.2", F.silu(_vrms(x, sd[p + ".residual.0.gamma"])))
    y = _cconv(sd, p + ".residual.6", F.silu(_vrms(y, sd[p + ".residual.3.gamma"])))
    return y + h


def _vattn(sd, p, x):
    def frame(f):  # [N, C, H, W]
        N, C, H, W = f.shape
        y = _vrms(f, sd[p + ".norm.gamma"])
        qkv = F.conv2d(y, sd[p + ".to_qkv.weight"], sd[p + ".to_qkv.bias"]).view(N, 3 * C, H * W)
        q, k, v = (qkv[:, i * C:(i + 1) * C].transpose(1, 2)[:, None] for i in range(3))  # [N, 1, HW, C]
        a = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(N, C, H, W)
        return F.conv2d(a, sd[p + ".proj.weight"], sd[p + ".proj.bias"])
    return _frames(x, frame) + x


def _vdown(sd, p, kind, x):
    w, b = sd[p + ".resample.1.weight"], sd[p + ".resample.1.bias"]
    x = _frames(x, lambda f: F.conv2d(F.pad(f, (0, 1, 0, 1)), w, b, stride=2))
    if kind == "down3d" and x.shape[2] > 1:
        rest = F.conv3d(x, sd[p + ".time_conv.weight"], sd[p + ".time_conv.bias"], stride=(2, 1, 1))
        x = torch.cat([x[:, :, :1], rest], dim=2)
    return x


def _vup(sd, p, kind, x):
    if kind == "up3d" and x.shape[2] > 1:
        c = x.shape[1]
        y = _cconv(sd, p + ".time_conv", x[:, :, 1:])  # [B, 2C, T-1, H, W]
        y = torch.stack([y[:, :c], y[:, c:]], dim=3).flatten(2, 3)
        x = torch.cat([x[:, :, :1], y], dim=2)
    w, b = sd[p + ".resample.1.weight"], sd[p + ".resample.1.bias"]
    return _frames(x, lambda f: F.conv2d(F.interpolate(f, scale_factor=2.0, mode="nearest-exact"), w, b, padding=1))


def _vrun(sd, layout, x):
    for p, kind, _, _ in layout:
        if kind == "conv":
            x = _cconv(sd, p, x)
        elif kind == "res":
            x = _vres(sd, p, x)
        elif kind == "attn":
            x = _vattn(sd, p, x)
        elif kind == "head":
            x = _cconv(sd, p + ".2", F.silu(_vrms(x, sd[p + ".0.gamma"])))
        elif kind.startswith("down"):
            x = _vdown(sd, p, kind, x)
        else:
            x = _vup(sd, p, kind, x)
    return x


def vae_encode_batch(sd, cfg, video):
    """video [B, 3, 1+4k, H, W] in [-1, 1] -> (mu, logvar) [B, z_dim, 1+k, H/8, W/8], raw scale."""
    if (video.shape[2] - 1) % 4:
        raise ValueError(f"vae: {video.shape[2]} frames, expected 1+4k")
    enc, _ = vae_layout(cfg)
    h = F.conv3d(_vrun(sd, enc, video), sd["conv1.weight"], sd["conv1.bias"])
    z = cfg["z_dim"]
    return h[:, :z], h[:, z:]


def vae_decode_batch(sd, cfg, z):
    """Raw latent [B, z_dim, T, h, w] (the encoder's mu scale) -> video [B, 3, 1+4(T-1), 8h, 8w]."""
    _, dec = vae_layout(cfg)
    return _vrun(sd, dec, F.conv3d(z, sd["conv2.weight"], sd["conv2.bias"]))


def latent_stats_tensors(cfg, device):
    mean = torch.tensor(cfg["latents_mean"], dtype=torch.float32, device=device).view(1, -1, 1, 1, 1)
    std = torch.tensor(cfg["latents_std"], dtype=torch.float32, device=device).view(1, -1, 1, 1, 1)
    return mean, std
