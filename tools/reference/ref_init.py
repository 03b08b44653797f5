"""Deterministic random weights for the test models (goldens, tiny-random, official check).

Every tensor is drawn from its own torch.Generator seeded by (seed, name), so adding or
removing a tensor never changes the others. Scales keep activations in a sane range:
  matrices / conv kernels   N(0, 1) · gain / sqrt(fan_in), fan_in = prod(shape[1:])
  biases                    N(0, 0.05²)  (non-zero so a missing bias is visible)
  norm weights and gammas   1 + N(0, 0.1²)
  DiT modulations           N(0, 1) / sqrt(dim)
  UMT5 relative biases      N(0, 0.5²)  (large enough that a wrong bucket shows)
  embedding table           N(0, 1)
`gains` maps a name suffix to a multiplier on the matrix scale.
"""
import zlib

import torch

_NORM_SUFFIXES = ("gamma", "layer_norm.weight", "norm_q.weight", "norm_k.weight", "norm3.weight",
                  "final_layer_norm.weight")


def _gen(seed, name):
    g = torch.Generator()
    g.manual_seed((seed * 1000003 + zlib.crc32(name.encode())) & 0x7FFFFFFFFFFFFFFF)
    return g


def random_tensor(name, shape, seed, gains=None):
    g = _gen(seed, name)
    n = torch.randn(shape, generator=g, dtype=torch.float32)
    if name.endswith("relative_attention_bias.weight"):
        return n * 0.5
    if name == "shared.weight":
        return n
    if name.endswith(_NORM_SUFFIXES):
        return 1.0 + 0.1 * n
    if name.endswith("modulation"):
        return n / shape[-1] ** 0.5
    if name.endswith("bias"):
        return 0.05 * n
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    gain = 1.0
    for suffix, value in (gains or {}).items():
        if name.endswith(suffix):
            gain = value
    return n * gain / fan_in ** 0.5


def random_weights(shapes, seed, gains=None):
    """shapes: name -> shape. Returns name -> f32 tensor, in sorted name order."""
    return {name: random_tensor(name, shapes[name], seed, gains) for name in sorted(shapes)}
