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
    """tensors: dict name -> tensor, or a list of (name, tensor) or (name, tensor, dtype code) in the order
    to write; with a code (e.g. "F8_E4M3", "I8") the tensor's bytes are written as they are under it."""
    items = tensors.items() if isinstance(tensors, dict) else tensors
    header, blobs, offset = {}, [], 0
    for item in items:
        name, t, code = (item[0], item[1], item[2] if len(item) > 2 else None)
        t = t.detach().contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": code or _CODES[t.dtype], "shape": list(t.shape),
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
