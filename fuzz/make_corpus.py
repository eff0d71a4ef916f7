#!/usr/bin/env python3
"""Writes the committed seed corpora fuzz/corpus/<target>/ (deterministic; plain python3, no extra
packages). Run from the repository root after building once (the tokenizer seeds are cut down from
the real tokenizers unpacked into build/tokenizer_fixtures):

    python3 fuzz/make_corpus.py [BUILD]

Each seed is small (a few KB) so a fuzzer runs fast; together they reach every branch family of
the parsers: every safetensors dtype, shard indexes, each model family's config.json, each
tokenizer pipeline (byte-level BPE with split regexes, Metaspace with byte fallback, normalizers,
added tokens, post-processors), id lists, and GGUF files with model and tokenizer metadata.
"""
import glob
import json
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
OUT = os.path.join(ROOT, "fuzz", "corpus")
FIXTURES = os.path.join(BUILD, "tokenizer_fixtures")
TOKENIZERS = ["qwen3", "deepseek_v3", "gptoss", "llama3", "llama2"]


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- safetensors
DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
          "F8_E4M3": 1, "F8_E5M2": 1, "U64": 8, "U32": 4, "U16": 2, "F8_E8M0": 1}


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in tensors:
        begin = len(data)
        data += payload
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, len(data)]}
        data += b"\0" * (-len(data) % 8)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    put("safetensors", "empty", safetensors([]))
    put("safetensors", "metadata", safetensors([], {"format": "pt", "total": "0"}))
    for dtype, size in DTYPES.items():
        n = 6
        payload = bytes((i * 37 + 11) % 256 for i in range(n * size))
        put("safetensors", "one_" + dtype, safetensors([("w." + dtype.lower(), dtype, [2, 3], payload)]))
    put("safetensors", "model", safetensors([
        ("model.embed_tokens.weight", "BF16", [4, 4], bytes(32)),
        ("model.layers.0.mlp.experts.0.w1.weight", "F32", [2, 4], struct.pack("<8f", *range(8))),
        ("model.layers.0.mlp.gate.weight", "F16", [2, 4], bytes(range(16))),
        ("lm_head.weight", "F8_E4M3", [4, 4], bytes(range(16))),
        ("lm_head.weight_scale_inv", "F32", [1, 1], struct.pack("<f", 0.5)),
        ("scalar", "F32", [], struct.pack("<f", 1.0)),
        ("zero", "F32", [0, 3], b""),
    ], {"format": "pt"}))


def shard_index_seeds():
    a, b = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    put("shard_index", "valid", json.dumps({"metadata": {"total_size": 24}, "weight_map": {"a": a, "b": a, "c": b}}))
    put("shard_index", "one_shard", json.dumps({"weight_map": {"a": a, "b": a}}))
    put("shard_index", "missing_tensor", json.dumps({"weight_map": {"a": a, "zzz": b}}))
    put("shard_index", "missing_shard", json.dumps({"weight_map": {"a": "model-00003-of-00003.safetensors"}}))
    put("shard_index", "duplicate", '{"weight_map": {"a": "%s", "a": "%s", "c": "%s"}}' % (a, b, b))
    put("shard_index", "empty_map", json.dumps({"weight_map": {}}))


# ---------------------------------------------------------------- config.json
def model_spec_seeds():
    for path in sorted(glob.glob(os.path.join(ROOT, "data", "models", "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if name == "catalog":
            continue
        with open(path) as f:
            config = json.load(f)
        if not isinstance(config, dict) or "model_type" not in config:
            continue
        put("model_spec", name, json.dumps(config, separators=(",", ":")))
        small = dict(config)
        small["num_hidden_layers"] = 2  # small enough for the registry and cost model to run
        for key in ("first_k_dense_replace", "num_nextn_predict_layers"):
            if key in small:
                small[key] = 1
        put("model_spec", name + "_2layers", json.dumps(small, separators=(",", ":")))
    with open(os.path.join(ROOT, "data", "default-model", "config.json")) as f:
        put("model_spec", "default_model", f.read())


# ---------------------------------------------------------------- tokenizers
def mini_tokenizer(name, keep=320):
    """The real tokenizer.json with its vocabulary cut to the first `keep` ids (merges between kept
    tokens only): the same pipeline in a few KB."""
    with open(os.path.join(FIXTURES, name, "tokenizer.json"), encoding="utf-8") as f:
        t = json.load(f)
    model = t["model"]
    vocab = {tok: i for tok, i in model["vocab"].items() if i < keep}
    merges = []
    for m in model.get("merges", []):
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        if left in vocab and right in vocab and left + right in vocab:
            merges.append(m)
    model["vocab"], model["merges"] = vocab, merges
    kept_ids = set(vocab.values())
    t["added_tokens"] = t.get("added_tokens", [])[:6]
    for i, a in enumerate(t["added_tokens"]):
        a["id"] = keep + i
    return t


TEXTS = ["Hello world, 123 tokens!", "  leading spaces\n\n\ttabs and\r\nCRLF   ", "Ünïcödé café 日本語 😀",
         "<s>special</s> <|endoftext|> <|im_start|>", "don't you'll I'M 12345678", "\u2581meta\u2581space",
         " " * 64 + "x", "a\u0301 combining", ""]


def tokenizer_seeds():
    for name in TOKENIZERS:
        t = json.dumps(mini_tokenizer(name), ensure_ascii=False, separators=(",", ":")).encode()
        for i, text in enumerate(TEXTS[:4]):
            put("tokenizer", "%s_%d" % (name, i), t + b"\0" + text.encode())
    tiny = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<unk>": 3}, "merges": ["a b"],
                      "unk_token": "<unk>"}}
    for pre in [{"type": "ByteLevel", "add_prefix_space": True, "use_regex": True},
                {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
                {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": False},
                {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                       {"type": "Whitespace"}]}]:
        t = dict(tiny, pre_tokenizer=pre)
        put("tokenizer", "tiny_" + pre["type"].lower(), json.dumps(t) + "\0" + "ab ba a1b2")


def encode_seeds():
    for which in range(5):
        for i, text in enumerate(TEXTS):
            put("encode", "%s_%d" % (TOKENIZERS[which], i), bytes([which]) + text.encode())
        put("encode", "%s_special" % TOKENIZERS[which], bytes([which | 0x80]) + TEXTS[3].encode())


def ids_seeds():
    for i, s in enumerate(["1,2,3", "[1, 2, 3]", "  7\n8\t9 ", "2147483647", "0", "[]", "1,,2", "-1", "1e3",
                           "4294967296", "12 ab"]):
        put("ids", "ids_%d" % i, s)


# ---------------------------------------------------------------- GGUF
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gval(kind, v):
    fmt = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q",
           F64: "d"}
    if kind == STR:
        return gstr(v)
    if kind == ARR:
        elem, items = v
        return struct.pack("<IQ", elem, len(items)) + b"".join(gval(elem, x) for x in items)
    return struct.pack("<" + fmt[kind], v)


def gguf(kvs, tensors=(), alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, ne list, ggml type, bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, kind, value in kvs:
        out += gstr(key) + struct.pack("<I", kind) + gval(kind, value)
    offset, data = 0, b""
    for name, ne, gtype, payload in tensors:
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", gtype, len(data))
        data += payload + b"\0" * (-len(payload) % alignment)
    out += b"\0" * (-len(out) % alignment)
    return out + data


def hparams(arch, experts=4):
    kv = [("general.architecture", STR, arch), ("general.name", STR, "fuzz seed"),
          (arch + ".block_count", U32, 2), (arch + ".context_length", U32, 64),
          (arch + ".embedding_length", U32, 8), (arch + ".feed_forward_length", U32, 16),
          (arch + ".attention.head_count", U32, 2), (arch + ".attention.head_count_kv", U32, 1),
          (arch + ".attention.layer_norm_rms_epsilon", F32, 1e-6), (arch + ".rope.freq_base", F32, 10000.0),
          (arch + ".vocab_size", U32, 16)]
    if experts:
        kv += [(arch + ".expert_count", U32, experts), (arch + ".expert_used_count", U32, 2),
               (arch + ".expert_feed_forward_length", U32, 8)]
    return kv


def gguf_seeds():
    f32 = lambda n: struct.pack("<%df" % n, *[0.25 * i for i in range(n)])
    tensors = [("token_embd.weight", [8, 16], 0, f32(128)), ("output_norm.weight", [8], 0, f32(8)),
               ("blk.0.attn_norm.weight", [8], 1, bytes(16)), ("blk.0.ffn_gate_inp.weight", [8, 4], 30, bytes(64)),
               ("blk.0.ffn_down_exps.weight", [32, 8, 4], 8, bytes(34 * 8 * 4))]
    for arch in ["llama", "qwen3moe", "qwen2moe", "olmoe", "deepseek2", "gpt-oss"]:
        put("gguf", arch, gguf(hparams(arch), tensors))
    put("gguf", "llama_dense", gguf(hparams("llama", experts=0), tensors[:2]))
    put("gguf", "all_types", gguf([("u8", U8, 1), ("i8", I8, -1), ("u16", U16, 2), ("i16", I16, -2),
                                   ("u32", U32, 3), ("i32", I32, -3), ("f32", F32, 1.5), ("bool", BOOL, True),
                                   ("str", STR, "s"), ("u64", U64, 4), ("i64", I64, -4), ("f64", F64, 2.5),
                                   ("arr_i32", ARR, (I32, [1, 2, 3])), ("arr_str", ARR, (STR, ["a", "b"])),
                                   ("nested", ARR, (ARR, [(U8, [1]), (U8, [2, 3])])),
                                   ("general.alignment", U32, 64)], tensors[:1], alignment=64))
    put("gguf", "empty", gguf([]))


def gguf_tokenizer_seeds():
    for name in TOKENIZERS:
        t = mini_tokenizer(name, keep=200)
        vocab = sorted(t["model"]["vocab"].items(), key=lambda kv: kv[1])
        tokens = [tok for tok, _ in vocab] + [a["content"] for a in t["added_tokens"]]
        types = [1] * len(vocab) + [3] * len(t["added_tokens"])
        merges = [m if isinstance(m, str) else " ".join(m) for m in t["model"].get("merges", [])]
        if name == "llama2":
            kv = [("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
                  ("tokenizer.ggml.scores", ARR, (F32, [-float(i) for i in range(len(tokens))])),
                  ("tokenizer.ggml.token_type", ARR, (I32, types)), ("tokenizer.ggml.add_space_prefix", BOOL, True)]
        else:
            pre = {"qwen3": "qwen2", "deepseek_v3": "deepseek-v3", "gptoss": "gpt-4o", "llama3": "llama-bpe"}[name]
            kv = [("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, pre),
                  ("tokenizer.ggml.tokens", ARR, (STR, tokens)), ("tokenizer.ggml.token_type", ARR, (I32, types)),
                  ("tokenizer.ggml.merges", ARR, (STR, merges))]
        kv += [("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
               ("tokenizer.ggml.add_bos_token", BOOL, True), ("tokenizer.chat_template", STR, "{{ messages }}")]
        put("gguf_tokenizer", name, gguf([("general.architecture", STR, "llama")] + kv))
    put("gguf_tokenizer", "none", gguf([("general.architecture", STR, "llama"), ("tokenizer.ggml.model", STR, "none"),
                                        ("llama.vocab_size", U32, 32)]))


def http_request_seeds():
    # First byte: bit 0 chat, bit 1 the real tokenizer and template; the rest is the body.
    bodies = [
        (0, {"prompt": "Hello", "max_tokens": 8}),
        (2, {"prompt": "Hello", "max_tokens": 8, "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n", "."],
             "logprobs": 2, "stream": True, "stream_options": {"include_usage": True}}),
        (2, {"prompt": [1, 2, 3], "max_tokens": 4, "presence_penalty": 0.5, "frequency_penalty": -0.5}),
        (2, {"prompt": ["one string"], "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.1, "n": 1}),
        (3, {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
             "max_completion_tokens": 16, "logprobs": True, "top_logprobs": 3}),
        (3, {"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}],
             "chat_template_kwargs": {"enable_thinking": False}}),
        (3, {"messages": [{"role": "user", "content": "weather?"},
                          {"role": "assistant", "content": "", "tool_calls": [
                              {"type": "function", "function": {"name": "get", "arguments": {"city": "Paris"}}}]},
                          {"role": "tool", "content": "sunny"}],
             "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}]}),
        (1, {"messages": [{"role": "user", "content": "no template"}]}),
    ]
    for i, (flags, body) in enumerate(bodies):
        put("http_request", f"seed{i}", bytes([flags]) + json.dumps(body).encode())
    put("http_request", "not_json", bytes([0]) + b'{"prompt": ')


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    safetensors_seeds()
    shard_index_seeds()
    model_spec_seeds()
    tokenizer_seeds()
    encode_seeds()
    ids_seeds()
    gguf_seeds()
    gguf_tokenizer_seeds()
    http_request_seeds()
    for target in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, target))
        size = sum(os.path.getsize(os.path.join(OUT, target, f)) for f in files)
        print("%-16s %3d seeds %8d bytes" % (target, len(files), size))


if __name__ == "__main__":
    main()
