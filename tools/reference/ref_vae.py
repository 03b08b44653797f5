"""Wan2.1 video VAE (encoder and decoder), float32 reference with the official key names.

Video [3, 1+4k, H, W] in [-1, 1]  <->  latent [z_dim, 1+k, H/8, W/8], normalised per
channel: z_norm = (mu - mean) / std on the way in, z = z_norm · std + mean on the way out.

Building blocks (channels first, x: [1, C, T, H, W]):
  RMS norm      x / max(|x|_C, 1e-12) · sqrt(C) · gamma      (L2 over channels, no bias)
  causal conv   Conv3d whose time padding is all in the past (2 frames for k_t = 3),
                spatial padding symmetric
  res block     x' = conv(SiLU(RMS(conv(SiLU(RMS(x)))))) + shortcut(x)   (1x1x1 conv if C changes)
  attention     per frame, one head over the H·W positions: RMS, 1x1 to q|k|v, SDPA, 1x1 proj, + x
  down 2d/3d    zero-pad right/bottom by 1, Conv2d k3 s2; 3d adds a time Conv3d (3,1,1) stride 2
  up 2d/3d      nearest 2x then Conv2d k3 (C -> C/2); 3d first doubles frames with a causal
                time Conv3d (3,1,1) C -> 2C whose halves become frames 2t and 2t+1

Streaming (how the official code runs, reproduced exactly): the encoder sees frames in chunks
1, 4, 4, ...; the decoder one latent frame at a time. Every causal conv keeps the last
CACHE_T = 2 frames of its input (zero frames before the start) and prepends them to the next
chunk. Special cases at chunk boundaries:
  - up 3d: the first chunk skips the time conv (1 frame stays 1 frame); from the second chunk
    on, the time conv runs with an empty (zero) history, i.e. it never sees the first chunk.
  - down 3d: the first chunk passes untouched and leaves its last frame; later chunks run the
    stride-2 time conv over [last frame of the previous chunk, chunk] with no padding.
So the first latent frame gives 1 video frame and each later one 4.

Tensors (P = encoder. or decoder.; indices follow the official nn.Sequential layout):
  conv1 [2z, 2z, 1,1,1], conv2 [z, z, 1,1,1] (top level, with biases)
  P conv1, P middle.{0,2} (res), P middle.1 (attn), P head.0.gamma, P head.2
  encoder.downsamples.I / decoder.upsamples.I: res blocks and resamples in order
  res block: residual.0.gamma [C,1,1,1], residual.2 conv, residual.3.gamma, residual.6 conv,
             shortcut (1x1x1 conv, only when C changes)
  attention: norm.gamma [C,1,1], to_qkv [3C,C,1,1], proj [C,C,1,1]
  resample:  resample.1 Conv2d, time_conv Conv3d (3d modes only)
"""
import torch
import torch.nn.functional as F

CACHE_T = 2


def vae_layout(cfg):
    """Module list of encoder and decoder: (prefix, kind, c_in, c_out) in execution order."""
    dim, z, mult, nres = cfg["dim"], cfg["z_dim"], cfg["dim_mult"], cfg["num_res_blocks"]
    tdown = cfg["temperal_downsample"]
    enc, dec = [], []
    dims = [dim * m for m in [1] + mult]
    enc.append(("encoder.conv1", "conv", 3, dims[0]))
    idx = 0
    for lvl in range(len(mult)):
        cin, cout = dims[lvl], dims[lvl + 1]
        for _ in range(nres):
            enc.append((f"encoder.downsamples.{idx}", "res", cin, cout))
            idx += 1
            cin = cout
        if lvl != len(mult) - 1:
            enc.append((f"encoder.downsamples.{idx}", "down3d" if tdown[lvl] else "down2d", cout, cout))
            idx += 1
    c = dims[-1]
    enc += [("encoder.middle.0", "res", c, c), ("encoder.middle.1", "attn", c, c),
            ("encoder.middle.2", "res", c, c), ("encoder.head", "head", c, 2 * z)]

    tup = tdown[::-1]
    dims = [dim * m for m in [mult[-1]] + mult[::-1]]
    dec += [("decoder.conv1", "conv", z, dims[0]), ("decoder.middle.0", "res", dims[0], dims[0]),
            ("decoder.middle.1", "attn", dims[0], dims[0]), ("decoder.middle.2", "res", dims[0], dims[0])]
    idx = 0
    for lvl in range(len(mult)):
        cin, cout = dims[lvl], dims[lvl + 1]
        if lvl > 0:  # the previous upsample halved the channels
            cin //= 2
        for _ in range(nres + 1):
            dec.append((f"decoder.upsamples.{idx}", "res", cin, cout))
            idx += 1
            cin = cout
        if lvl != len(mult) - 1:
            dec.append((f"decoder.upsamples.{idx}", "up3d" if tup[lvl] else "up2d", cout, cout // 2))
            idx += 1
    dec.append(("decoder.head", "head", dims[-1], 3))
    return enc, dec


def vae_tensor_shapes(cfg):
    """Name -> shape of every tensor the VAE reads."""
    z = cfg["z_dim"]
    s = {"conv1.weight": [2 * z, 2 * z, 1, 1, 1], "conv1.bias": [2 * z],
         "conv2.weight": [z, z, 1, 1, 1], "conv2.bias": [z]}
    enc, dec = vae_layout(cfg)

    def conv(name, cout, cin, *k):
        s[name + ".weight"] = [cout, cin, *k]
        s[name + ".bias"] = [cout]

    for p, kind, cin, cout in enc + dec:
        if kind == "conv":
            conv(p, cout, cin, 3, 3, 3)
        elif kind == "res":
            s[p + ".residual.0.gamma"] = [cin, 1, 1, 1]
            conv(p + ".residual.2", cout, cin, 3, 3, 3)
            s[p + ".residual.3.gamma"] = [cout, 1, 1, 1]
            conv(p + ".residual.6", cout, cout, 3, 3, 3)
            if cin != cout:
                conv(p + ".shortcut", cout, cin, 1, 1, 1)
        elif kind == "attn":
            s[p + ".norm.gamma"] = [cin, 1, 1]
            conv(p + ".to_qkv", 3 * cin, cin, 1, 1)
            conv(p + ".proj", cin, cin, 1, 1)
        elif kind == "head":
            s[p + ".0.gamma"] = [cin, 1, 1, 1]
            conv(p + ".2", cout, cin, 3, 3, 3)
        elif kind in ("down2d", "down3d"):
            conv(p + ".resample.1", cout, cin, 3, 3)
            if kind == "down3d":
                conv(p + ".time_conv", cout, cin, 3, 1, 1)
        else:  # up2d / up3d
            conv(p + ".resample.1", cout, cin, 3, 3)
            if kind == "up3d":
                conv(p + ".time_conv", 2 * cin, cin, 3, 1, 1)
    return s


def _rms(x, gamma):
    return F.normalize(x, dim=1) * (x.shape[1] ** 0.5) * gamma.float()


def _causal_conv(sd, name, x, cache):
    """Conv3d with past-only time padding; cache: dict carrying the last CACHE_T input frames per conv."""
    w, b = sd[name + ".weight"].float(), sd[name + ".bias"].float()
    kt, kh, kw = w.shape[2:]
    if kt > 1:
        hist = cache.get(name)
        if hist is None:
            hist = x.new_zeros(x.shape[0], x.shape[1], kt - 1, *x.shape[3:])
        x = torch.cat([hist, x], dim=2)
        cache[name] = x[:, :, -CACHE_T:].clone()
    x = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2, 0, 0))
    return F.conv3d(x, w, b)


def _per_frame(x, fn):
    """Apply a 2D function [B, C, H, W] -> [B, C', H', W'] to every frame of [1, C, T, H, W]."""
    y = fn(x[0].transpose(0, 1))  # [T, C', H', W']
    return y.transpose(0, 1)[None]


def _res_block(sd, p, x, cache):
    h = x
    if (p + ".shortcut.weight") in sd:
        h = _causal_conv(sd, p + ".shortcut", x, cache)
    y = _causal_conv(sd, p + ".residual.2", F.silu(_rms(x, sd[p + ".residual.0.gamma"])), cache)
    y = _causal_conv(sd, p + ".residual.6", F.silu(_rms(y, sd[p + ".residual.3.gamma"])), cache)
    return y + h


def _attn(sd, p, x):
    def frame(f):  # f: [T, C, H, W]
        T, C, H, W = f.shape
        y = _rms(f, sd[p + ".norm.gamma"])
        qkv = F.conv2d(y, sd[p + ".to_qkv.weight"].float(), sd[p + ".to_qkv.bias"].float())
        qkv = qkv.view(T, 3 * C, H * W).transpose(1, 2)  # [T, HW, 3C]
        q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
        a = torch.softmax(q @ k.transpose(1, 2) / C ** 0.5, dim=-1) @ v  # [T, HW, C]
        a = a.transpose(1, 2).reshape(T, C, H, W)
        return F.conv2d(a, sd[p + ".proj.weight"].float(), sd[p + ".proj.bias"].float())
    return _per_frame(x, frame) + x


def _down(sd, p, kind, x, cache):
    w, b = sd[p + ".resample.1.weight"].float(), sd[p + ".resample.1.bias"].float()
    x = _per_frame(x, lambda f: F.conv2d(F.pad(f, (0, 1, 0, 1)), w, b, stride=2))
    if kind == "down3d":
        key = p + ".time_conv"
        prev = cache.get(key)
        cache[key] = x[:, :, -1:].clone()
        if prev is not None:
            x = F.conv3d(torch.cat([prev, x], dim=2), sd[key + ".weight"].float(), sd[key + ".bias"].float(),
                         stride=(2, 1, 1))
    return x


def _up(sd, p, kind, x, cache):
    if kind == "up3d":
        key = p + ".time_conv"
        if key + ".started" in cache:
            c = x.shape[1]
            y = _causal_conv(sd, key, x, cache)  # [1, 2C, T, H, W]
            x = torch.stack([y[:, :c], y[:, c:]], dim=3).flatten(2, 3)  # frames t, t' interleaved
        else:
            cache[key + ".started"] = True
    w, b = sd[p + ".resample.1.weight"].float(), sd[p + ".resample.1.bias"].float()
    return _per_frame(x, lambda f: F.conv2d(f.repeat_interleave(2, 2).repeat_interleave(2, 3), w, b, padding=1))


def _run(sd, layout, x, cache):
    for p, kind, _, _ in layout:
        if kind == "conv":
            x = _causal_conv(sd, p, x, cache)
        elif kind == "res":
            x = _res_block(sd, p, x, cache)
        elif kind == "attn":
            x = _attn(sd, p, x)
        elif kind == "head":
            x = _causal_conv(sd, p + ".2", F.silu(_rms(x, sd[p + ".0.gamma"])), cache)
        elif kind.startswith("down"):
            x = _down(sd, p, kind, x, cache)
        else:
            x = _up(sd, p, kind, x, cache)
    return x


def _stats(cfg):
    mean = torch.tensor(cfg["latents_mean"], dtype=torch.float32).view(1, -1, 1, 1, 1)
    std = torch.tensor(cfg["latents_std"], dtype=torch.float32).view(1, -1, 1, 1, 1)
    return mean, std


def vae_decode(sd, cfg, z, clamp=True):
    """z: normalised latent [z_dim, T, h, w] -> video [3, 1+4(T-1), 8h, 8w] (clamped to [-1, 1])."""
    _, dec = vae_layout(cfg)
    mean, std = _stats(cfg)
    z = z[None].float() * std + mean
    x = F.conv3d(z, sd["conv2.weight"].float(), sd["conv2.bias"].float())
    cache = {}
    out = torch.cat([_run(sd, dec, x[:, :, i:i + 1], cache) for i in range(x.shape[2])], dim=2)[0]
    return out.clamp(-1, 1) if clamp else out


def vae_encode(sd, cfg, video):
    """video: [3, 1+4k, H, W] in [-1, 1] -> normalised latent mean [z_dim, 1+k, H/8, W/8]."""
    t = video.shape[1]
    if (t - 1) % 4:
        raise ValueError(f"vae: {t} frames, expected 1+4k")
    enc, _ = vae_layout(cfg)
    mean, std = _stats(cfg)
    x = video[None].float()
    cache = {}
    chunks = [x[:, :, :1]] + [x[:, :, 1 + 4 * i:5 + 4 * i] for i in range((t - 1) // 4)]
    h = torch.cat([_run(sd, enc, c, cache) for c in chunks], dim=2)
    mu = F.conv3d(h, sd["conv1.weight"].float(), sd["conv1.bias"].float())[:, :cfg["z_dim"]]
    return ((mu - mean) / std)[0]
