#!/usr/bin/python3
"""Writes safetensors files with an independent writer (numpy + torch, no moe code) so the C++
reader is checked against bytes it did not produce. Also records torch's own float32 -> bfloat16
and numpy's float32 -> float16 rounding, which the C++ conversions must reproduce bit for bit.

Output: fixtures/safetensors/{all_dtypes.safetensors, sharded/, expected.json}
Run: /usr/bin/python3 tests/reference/make_safetensors_fixtures.py  (or `make fixtures`)
"""
import json
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "safetensors")


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype_name, shape, raw_bytes). Offsets are packed back to back."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, raw in tensors:
            f.write(raw)


def main():
    os.makedirs(os.path.join(OUT, "sharded"), exist_ok=True)
    rng = np.random.default_rng(1234)
    values = (rng.standard_normal(24) * 3).astype(np.float32)
    values[0], values[1] = 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8  # bf16 ties
    t = torch.from_numpy(values.copy())
    bf16 = t.to(torch.bfloat16)
    bf16_bits = bf16.view(torch.int16).numpy().astype(np.uint16)
    f16 = values.astype(np.float16)
    ints = np.arange(-12, 12, dtype=np.int64)

    tensors = [
        ("f32", "F32", (4, 6), values.tobytes()),
        ("f64", "F64", (24,), values.astype(np.float64).tobytes()),
        ("bf16", "BF16", (2, 3, 4), bf16_bits.tobytes()),
        ("f16", "F16", (24,), f16.tobytes()),
        ("i64", "I64", (24,), ints.tobytes()),
        ("i32", "I32", (24,), ints.astype(np.int32).tobytes()),
        ("i16", "I16", (24,), ints.astype(np.int16).tobytes()),
        ("i8", "I8", (24,), ints.astype(np.int8).tobytes()),
        ("u8", "U8", (24,), (ints + 12).astype(np.uint8).tobytes()),
        ("bool", "BOOL", (24,), (ints % 2 == 0).astype(np.uint8).tobytes()),
    ]
    write_safetensors(os.path.join(OUT, "all_dtypes.safetensors"), tensors, {"format": "pt", "writer": "python"})

    write_safetensors(os.path.join(OUT, "sharded", "model-00001-of-00002.safetensors"),
                      [("a", "F32", (6,), values[:6].tobytes())])
    write_safetensors(os.path.join(OUT, "sharded", "model-00002-of-00002.safetensors"),
                      [("b", "BF16", (24,), bf16_bits.tobytes()), ("c", "I64", (24,), ints.tobytes())])
    with open(os.path.join(OUT, "sharded", "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 24 + 48 + 192},
                   "weight_map": {"a": "model-00001-of-00002.safetensors",
                                  "b": "model-00002-of-00002.safetensors",
                                  "c": "model-00002-of-00002.safetensors"}}, f, indent=1)

    expected = {
        "f32": [float(v) for v in values],
        "bf16_bits": [int(v) for v in bf16_bits],
        "bf16_as_f32": [float(v) for v in bf16.float().numpy()],
        "f16_bits": [int(v) for v in f16.view(np.uint16)],
        "ints": [int(v) for v in ints],
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
