"""Wan2.1 DiT (text-to-video), float32 reference with the official key names.

One forward: latent x [C_in, F, H, W], timestep t (float), text context [L, text_dim].
  tokens   = Conv3d(patch = stride = (1,2,2))(x) flattened in (f, h, w) order   [n, dim]
  e        = MLP_time(sinusoid(t))  (Linear, SiLU, Linear)                   [dim]
  e0       = Linear(SiLU(e)) split in 6                                      [6, dim]
  ctx      = Linear(gelu_tanh(Linear(pad_zero(context, text_len))))          [text_len, dim]
  per block, m = modulation + e0 (m0..m5):
    x += SelfAttn(LN(x)·(1+m1)+m0) · m2        q,k RMS-normed over dim, then 3D RoPE
    x += CrossAttn(LN_affine(x), ctx)          q,k RMS-normed, no RoPE, all text_len rows
    x += FFN(LN(x)·(1+m4)+m3) · m5             Linear, gelu_tanh, Linear
  out      = Linear(LN(x)·(1+n1)+n0), (n0, n1) = head.modulation + e; unpatchify.
LN = LayerNorm without affine, eps 1e-6. Attention scale 1/sqrt(head_dim).
sinusoid(t): f64, [cos(t·w_i), sin(t·w_i)], w_i = 10000^(-i/half), i < half = freq_dim/2.
RoPE: head_dim d = 2·c pairs (x[2j], x[2j+1]); pairs split c-2(c//3) / c//3 / c//3 between
frame, row and column position; the part of size k pairs uses w_j = 10000^(-2j/(2k)),
angle = pos·w_j, rotation computed in float64.
Unpatchify: token (f,h,w) holds channels ordered (pt, ph, pw, c).

Tensors (weights [out, in] like nn.Linear; every Linear has a bias):
  patch_embedding.{weight [dim, in_dim, 1, 2, 2], bias}
  text_embedding.{0,2}.{weight,bias}     [dim, text_dim], [dim, dim]
  time_embedding.{0,2}.{weight,bias}     [dim, freq_dim], [dim, dim]
  time_projection.1.{weight,bias}        [6·dim, dim]
  blocks.N.modulation                    [1, 6, dim]
  blocks.N.{self_attn,cross_attn}.{q,k,v,o}.{weight,bias}, .norm_q.weight, .norm_k.weight
  blocks.N.norm3.{weight,bias}           [dim]
  blocks.N.ffn.{0,2}.{weight,bias}       [ffn_dim, dim], [dim, ffn_dim]
  head.modulation [1, 2, dim]; head.head.{weight [out_dim·4, dim], bias}
"""
import math

import torch
import torch.nn.functional as F


def dit_tensor_shapes(cfg):
    """Name -> shape of every tensor the DiT reads."""
    d, ffn, pt, ph, pw = cfg["dim"], cfg["ffn_dim"], *cfg["patch_size"]
    s = {
        "patch_embedding.weight": [d, cfg["in_dim"], pt, ph, pw], "patch_embedding.bias": [d],
        "text_embedding.0.weight": [d, cfg["text_dim"]], "text_embedding.0.bias": [d],
        "text_embedding.2.weight": [d, d], "text_embedding.2.bias": [d],
        "time_embedding.0.weight": [d, cfg["freq_dim"]], "time_embedding.0.bias": [d],
        "time_embedding.2.weight": [d, d], "time_embedding.2.bias": [d],
        "time_projection.1.weight": [6 * d, d], "time_projection.1.bias": [6 * d],
        "head.modulation": [1, 2, d],
        "head.head.weight": [cfg["out_dim"] * pt * ph * pw, d],
        "head.head.bias": [cfg["out_dim"] * pt * ph * pw],
    }
    for i in range(cfg["num_layers"]):
        b = f"blocks.{i}."
        s[b + "modulation"] = [1, 6, d]
        for att in ("self_attn", "cross_attn"):
            for p in "qkvo":
                s[f"{b}{att}.{p}.weight"] = [d, d]
                s[f"{b}{att}.{p}.bias"] = [d]
            s[f"{b}{att}.norm_q.weight"] = [d]
            s[f"{b}{att}.norm_k.weight"] = [d]
        s[b + "norm3.weight"] = [d]
        s[b + "norm3.bias"] = [d]
        s[b + "ffn.0.weight"] = [ffn, d]
        s[b + "ffn.0.bias"] = [ffn]
        s[b + "ffn.2.weight"] = [d, ffn]
        s[b + "ffn.2.bias"] = [d]
    return s


def sinusoid(t, freq_dim):
    """t: scalar -> [freq_dim] float64 (cos half, then sin half)."""
    half = freq_dim // 2
    t = torch.as_tensor(t, dtype=torch.float64).reshape(1)
    w = torch.pow(torch.tensor(10000.0, dtype=torch.float64), -torch.arange(half, dtype=torch.float64) / half)
    ang = t[:, None] * w[None, :]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1)[0]


def rope_angles(head_dim, grid):
    """Angles [n_tokens, head_dim/2] float64 for a (f, h, w) token grid."""
    c = head_dim // 2
    sizes = [c - 2 * (c // 3), c // 3, c // 3]
    parts = []
    for axis, k in enumerate(sizes):
        w = 1.0 / torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                            torch.arange(0, 2 * k, 2, dtype=torch.float64) / (2 * k))
        pos = torch.arange(grid[axis], dtype=torch.float64)
        ang = pos[:, None] * w[None, :]  # [grid[axis], k]
        shape = [1, 1, 1, k]
        shape[axis] = grid[axis]
        parts.append(ang.view(shape).expand(grid[0], grid[1], grid[2], k))
    return torch.cat(parts, dim=-1).reshape(-1, c)


def rope_rotate(x, ang):
    """x: [n, heads, head_dim] f32, ang: [n, head_dim/2] f64 -> rotated x, f32."""
    n, nh, hd = x.shape
    xd = x.double().reshape(n, nh, hd // 2, 2)
    re, im = xd[..., 0], xd[..., 1]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    out = torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1)
    return out.reshape(n, nh, hd).float()


def _lin(sd, name, x):
    return x @ sd[name + ".weight"].float().t() + sd[name + ".bias"].float()


def _ln(x, eps, w=None, b=None):
    return F.layer_norm(x, x.shape[-1:], w, b, eps)


def _rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _attention(q, k, v):
    """q: [nq, h, d], k/v: [nk, h, d] -> [nq, h·d]."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = torch.einsum("qhd,khd->hqk", q, k) * scale
    o = torch.einsum("hqk,khd->qhd", torch.softmax(s, dim=-1), v)
    return o.reshape(q.shape[0], -1)


def _attn_block(sd, p, x_q, x_kv, nh, eps, ang):
    n_q, d = x_q.shape
    q = _rms(_lin(sd, p + ".q", x_q), sd[p + ".norm_q.weight"].float(), eps).view(n_q, nh, d // nh)
    k = _rms(_lin(sd, p + ".k", x_kv), sd[p + ".norm_k.weight"].float(), eps).view(-1, nh, d // nh)
    v = _lin(sd, p + ".v", x_kv).view(-1, nh, d // nh)
    if ang is not None:
        q, k = rope_rotate(q, ang), rope_rotate(k, ang)
    return _lin(sd, p + ".o", _attention(q, k, v))


def dit_forward(sd, cfg, x, t, context, trace=None):
    """x: [in_dim, F, H, W] f32, t: float, context: [L, text_dim] -> [out_dim, F, H, W] f32.

    trace: None or a dict that receives intermediates: patch_tokens [n, dim], time_e [dim],
    time_e0 [6, dim], text_emb [text_len, dim], block.N [n, dim] (output of block N),
    head_out [n, out_dim·4] (before unpatchify)."""
    d, nh, eps = cfg["dim"], cfg["num_heads"], cfg.get("eps", 1e-6)
    pt, ph, pw = cfg["patch_size"]
    tok = F.conv3d(x[None].float(), sd["patch_embedding.weight"].float(), sd["patch_embedding.bias"].float(),
                   stride=(pt, ph, pw))[0]  # [dim, f, h, w]
    grid = list(tok.shape[1:])
    h = tok.flatten(1).t()  # [n, dim]
    ang = rope_angles(d // nh, grid)

    e = _lin(sd, "time_embedding.2", F.silu(_lin(sd, "time_embedding.0", sinusoid(t, cfg["freq_dim"]).float())))
    e0 = _lin(sd, "time_projection.1", F.silu(e)).view(6, d)

    L = context.shape[0]
    if L > cfg["text_len"]:
        raise ValueError(f"dit: context has {L} rows, text_len is {cfg['text_len']}")
    ctx = torch.cat([context.float(), context.new_zeros(cfg["text_len"] - L, context.shape[1]).float()])
    ctx = _lin(sd, "text_embedding.2", F.gelu(_lin(sd, "text_embedding.0", ctx), approximate="tanh"))

    if trace is not None:
        trace.update(patch_tokens=h, time_e=e, time_e0=e0, text_emb=ctx)
    for i in range(cfg["num_layers"]):
        b = f"blocks.{i}."
        m = sd[b + "modulation"].float()[0] + e0  # [6, dim]
        y = _ln(h, eps) * (1 + m[1]) + m[0]
        h = h + _attn_block(sd, b + "self_attn", y, y, nh, eps, ang) * m[2]
        y = _ln(h, eps, sd[b + "norm3.weight"].float(), sd[b + "norm3.bias"].float())
        h = h + _attn_block(sd, b + "cross_attn", y, ctx, nh, eps, None)
        y = _ln(h, eps) * (1 + m[4]) + m[3]
        y = _lin(sd, b + "ffn.2", F.gelu(_lin(sd, b + "ffn.0", y), approximate="tanh"))
        h = h + y * m[5]
        if trace is not None:
            trace[f"block.{i}"] = h

    n = sd["head.modulation"].float()[0] + e  # [2, dim]
    out = _lin(sd, "head.head", _ln(h, eps) * (1 + n[1]) + n[0])  # [tokens, pt·ph·pw·c]
    if trace is not None:
        trace["head_out"] = out
    f, gh, gw = grid
    c = cfg["out_dim"]
    out = out.view(f, gh, gw, pt, ph, pw, c).permute(6, 0, 3, 1, 4, 2, 5)
    return out.reshape(c, f * pt, gh * ph, gw * pw).contiguous()
