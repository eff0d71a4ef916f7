"""The safetensors writer shared by the fixture scripts (the `safetensors` package is not in Debian).

Format: u64 little-endian header length, JSON header (compact, padded with spaces to 8 bytes so
the data is aligned), then the raw little-endian tensors back to back. Written to a temporary file
and renamed, so an interrupted run never leaves a half-written fixture.
"""
import json
import os
import struct

import torch

_CODES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> tensor, or a list of (name, tensor) in the order to write."""
    items = tensors.items() if isinstance(tensors, dict) else tensors
    header, blobs, offset = {}, [], 0
    for name, t in items:
        t = t.detach().contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": _CODES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)
