"""Deterministic safetensors writer for the goldens and the tiny model.

The safetensors library writes "__metadata__" in hash order, so two runs of the same script
give different bytes. This writer fixes every choice: header JSON with "__metadata__" first,
then tensors by decreasing element size and then name (as the safetensors library orders them,
so every tensor's data is aligned to its element size), compact separators, padded with spaces
to a multiple of 8 bytes; data little-endian, packed in the same order.
"""
import json
import struct

import torch

_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32",
           torch.int64: "I64", torch.uint8: "U8"}


def save_safetensors(path, tensors, metadata=None):
    """tensors: name -> CPU tensor; metadata: None or str -> str."""
    header = {}
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    blobs, offset = [], 0
    for name in sorted(tensors, key=lambda n: (-tensors[n].element_size(), n)):
        t = tensors[name].detach().contiguous().cpu()
        if t.dtype not in _DTYPES:
            raise ValueError(f"{path}: tensor {name}: dtype {t.dtype} not supported")
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
