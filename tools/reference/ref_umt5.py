"""UMT5 encoder, float32 reference (Hugging Face T5 key names).

Pre-norm T5 encoder as used by Wan2.1 for text:
  x = shared[ids]
  per layer i:  x += Wo · attn(RMSNorm(x)),  attn = softmax(q kᵀ + bias_i + mask) v   (no 1/sqrt(d))
                x += wo · (gelu_tanh(wi_0 · RMSNorm(x)) ⊙ wi_1 · RMSNorm(x))
  out = RMSNorm_final(x)
RMSNorm (T5): x · rsqrt(mean(x²) + eps) · weight, no mean subtraction, no bias.
bias_i: every layer has its own relative-position table [num_buckets, n_heads]
(UMT5: not shared), indexed by the bidirectional bucket of (key_pos - query_pos).
Padded keys are masked out, so encoding the L real tokens alone gives the same
rows as encoding them padded to 512 with a mask.

Tensors (d_inner = num_heads · d_kv):
  shared.weight                                          [vocab, d_model]
  encoder.block.N.layer.0.layer_norm.weight              [d_model]
  encoder.block.N.layer.0.SelfAttention.{q,k,v}.weight   [d_inner, d_model]
  encoder.block.N.layer.0.SelfAttention.o.weight         [d_model, d_inner]
  encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight [num_buckets, num_heads]
  encoder.block.N.layer.1.layer_norm.weight              [d_model]
  encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1}.weight [d_ff, d_model]   (wi_0 = gated by GELU)
  encoder.block.N.layer.1.DenseReluDense.wo.weight       [d_model, d_ff]
  encoder.final_layer_norm.weight                        [d_model]
"""
import math

import torch
import torch.nn.functional as F


def umt5_tensor_shapes(cfg):
    """Name -> shape of every tensor the encoder reads."""
    d, inner = cfg["d_model"], cfg["num_heads"] * cfg["d_kv"]
    shapes = {"shared.weight": [cfg["vocab_size"], d], "encoder.final_layer_norm.weight": [d]}
    for i in range(cfg["num_layers"]):
        a = f"encoder.block.{i}.layer.0."
        f = f"encoder.block.{i}.layer.1."
        shapes[a + "layer_norm.weight"] = [d]
        for p in "qkv":
            shapes[a + f"SelfAttention.{p}.weight"] = [inner, d]
        shapes[a + "SelfAttention.o.weight"] = [d, inner]
        shapes[a + "SelfAttention.relative_attention_bias.weight"] = [
            cfg["relative_attention_num_buckets"], cfg["num_heads"]]
        shapes[f + "layer_norm.weight"] = [d]
        shapes[f + "DenseReluDense.wi_0.weight"] = [cfg["d_ff"], d]
        shapes[f + "DenseReluDense.wi_1.weight"] = [cfg["d_ff"], d]
        shapes[f + "DenseReluDense.wo.weight"] = [d, cfg["d_ff"]]
    return shapes


def umt5_from_official(sd):
    """Rename an official Wan `models_t5_umt5-xxl-enc` state dict to the HF names."""
    out = {}
    for name, t in sd.items():
        parts = name.split(".")
        if name == "token_embedding.weight":
            out["shared.weight"] = t
        elif name == "norm.weight":
            out["encoder.final_layer_norm.weight"] = t
        elif parts[0] == "blocks":
            n, rest = parts[1], ".".join(parts[2:])
            table = {
                "norm1.weight": "layer.0.layer_norm.weight",
                "attn.q.weight": "layer.0.SelfAttention.q.weight",
                "attn.k.weight": "layer.0.SelfAttention.k.weight",
                "attn.v.weight": "layer.0.SelfAttention.v.weight",
                "attn.o.weight": "layer.0.SelfAttention.o.weight",
                "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
                "norm2.weight": "layer.1.layer_norm.weight",
                "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
                "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
                "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
            }
            if rest not in table:
                raise KeyError(f"umt5: unknown official tensor {name}")
            out[f"encoder.block.{n}.{table[rest]}"] = t
        else:
            raise KeyError(f"umt5: unknown official tensor {name}")
    return out


def rel_bucket(rel, num_buckets, max_distance):
    """Bidirectional T5 bucket of rel = key_pos - query_pos (int64 tensor).

    Half the buckets per sign; within a half, distances below half of it are exact,
    larger ones are spaced logarithmically up to max_distance and clipped.
    """
    half = num_buckets // 2
    bucket = (rel > 0).long() * half
    dist = rel.abs()
    exact = half // 2
    # float32 log, truncation toward zero: the boundaries must match the official code bit for bit
    far = exact + (torch.log(dist.float() / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    far = torch.clamp(far, max=half - 1)
    return bucket + torch.where(dist < exact, dist, far)


def _rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def umt5_encode(sd, cfg, ids, mask=None, trace=None):
    """ids: int tensor [L]; mask: None (all real) or [L] of 0/1. Returns [L, d_model] f32.

    trace: None or a dict that receives intermediates: embed, block.N (output of layer N)."""
    eps = cfg.get("layer_norm_epsilon", 1e-6)
    nh, dk = cfg["num_heads"], cfg["d_kv"]
    ids = ids.long()
    n = ids.shape[0]
    x = sd["shared.weight"].float()[ids]
    if trace is not None:
        trace["embed"] = x
    pos = torch.arange(n)
    buckets = rel_bucket(pos[None, :] - pos[:, None], cfg["relative_attention_num_buckets"],
                         cfg.get("relative_attention_max_distance", 128))  # [Lq, Lk]
    key_mask = None
    if mask is not None:
        key_mask = (mask == 0)[None, None, :]
    for i in range(cfg["num_layers"]):
        a = f"encoder.block.{i}.layer.0."
        f = f"encoder.block.{i}.layer.1."
        h = _rms(x, sd[a + "layer_norm.weight"].float(), eps)
        q = (h @ sd[a + "SelfAttention.q.weight"].float().t()).view(n, nh, dk).transpose(0, 1)
        k = (h @ sd[a + "SelfAttention.k.weight"].float().t()).view(n, nh, dk).transpose(0, 1)
        v = (h @ sd[a + "SelfAttention.v.weight"].float().t()).view(n, nh, dk).transpose(0, 1)
        bias = sd[a + "SelfAttention.relative_attention_bias.weight"].float()[buckets]  # [Lq, Lk, nh]
        scores = q @ k.transpose(1, 2) + bias.permute(2, 0, 1)  # [nh, Lq, Lk]
        if key_mask is not None:
            scores = scores.masked_fill(key_mask, torch.finfo(torch.float32).min)
        att = torch.softmax(scores, dim=-1) @ v  # [nh, L, dk]
        x = x + att.transpose(0, 1).reshape(n, nh * dk) @ sd[a + "SelfAttention.o.weight"].float().t()
        h = _rms(x, sd[f + "layer_norm.weight"].float(), eps)
        gate = _gelu_tanh(h @ sd[f + "DenseReluDense.wi_0.weight"].float().t())
        lin = h @ sd[f + "DenseReluDense.wi_1.weight"].float().t()
        x = x + (gate * lin) @ sd[f + "DenseReluDense.wo.weight"].float().t()
        if trace is not None:
            trace[f"block.{i}"] = x
    return _rms(x, sd["encoder.final_layer_norm.weight"].float(), eps)
