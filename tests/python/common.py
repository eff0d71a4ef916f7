"""Shared by the Python binding tests: paths ctest passes in the environment, running the `moe`
binary, and reading the reference fixtures' safetensors without torch."""

import json
import os
import struct
import subprocess

import numpy as np

import moe

MOE_BINARY = os.environ["MOE_BINARY"]
TEST_DATA = os.environ.get("MOE_TEST_DATA_DIR", os.path.join(os.path.dirname(__file__), ".."))
MODELS = os.path.join(TEST_DATA, "reference", "fixtures", "models")
TOKENIZERS = os.environ.get("MOE_TOKENIZER_FIXTURES", "")
# Bit-equal results need the same thread count in both processes.
THREADS = 2


def model_dir(family):
    return os.path.join(MODELS, family)


def run_moe(*args, check=True):
    """Runs `moe ARGS` with the tests' thread count; returns (exit code, stdout, stderr)."""
    cmd = [MOE_BINARY, "--threads", str(THREADS), *[str(a) for a in args]]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MOE_THREADS": str(THREADS)})
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr}")
    return p.returncode, p.stdout, p.stderr


def run_moe_json(*args):
    return json.loads(run_moe("--json", *args)[1])


def cli_error(*args):
    """The message `moe ARGS` prints on stderr for its error, without the 'moe: ' prefix."""
    code, _, err = run_moe(*args, check=False)
    assert code != 0, f"moe {args} succeeded"
    line = err.strip().splitlines()[0]
    assert line.startswith("moe: "), err
    return code, line[len("moe: "):]


_DTYPES = {"F32": np.float32, "I64": np.int64, "I32": np.int32}


def read_safetensors(path, name):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        t = header[name]
        begin, end = t["data_offsets"]
        f.seek(8 + n + begin)
        return np.frombuffer(f.read(end - begin), dtype=_DTYPES[t["dtype"]]).reshape(t["shape"])


def expected(family):
    with open(os.path.join(model_dir(family), "expected.json")) as f:
        return json.load(f)
