"""moe.Model: eval logits bit-equal to `moe eval --logits-out`, generate as `moe run`, the routing
trace as `moe run --trace` writes it, report() as `moe run --json`, errors as the CLI prints them."""

import json
import os
import pathlib
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

import moe
from common import THREADS, cli_error, expected, model_dir, read_safetensors, run_moe, run_moe_json

FAMILY = "qwen3_moe"  # 2 layers, 8 experts, top-2, vocab 256 (bytes)
# Figures measured with a clock differ between two runs; everything else must be equal.
TIMED = {"prefill_s", "decode_s", "prefill_tokens_per_s", "decode_tokens_per_s", "decode_bytes_per_s",
         "roofline_fraction", "read_ceiling_gb_per_s"}


def ids_arg(ids):
    return ",".join(str(int(i)) for i in ids)


class ModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = model_dir(FAMILY)
        cls.model = moe.Model(cls.dir, threads=THREADS)
        cls.exp = expected(FAMILY)

    def test_properties(self):
        m = self.model
        self.assertEqual((m.vocab_size, m.n_layer, m.n_expert, m.top_k), (256, 2, 8, 2))
        self.assertEqual(m.path, self.dir)
        self.assertIsNone(m.tokenizer)  # a byte-level model
        self.assertEqual(m.threads, THREADS)

    def test_eval_is_bit_equal_to_cli_logits_out(self):
        ids = self.exp["prompt_ids"]
        logits = self.model.eval(ids)
        self.assertEqual(logits.dtype, np.float32)
        self.assertEqual(logits.shape, (len(ids), 256))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "logits.f32")
            run_moe("eval", "--model", self.dir, "--ids", ids_arg(ids), "--logits-out", out)
            cli = np.fromfile(out, dtype=np.float32).reshape(len(ids), 256)
        self.assertTrue(np.array_equal(logits, cli))
        ref = read_safetensors(os.path.join(self.dir, "expected.safetensors"), "logits")
        self.assertLess(float(np.max(np.abs(logits - ref))), 1e-4)

    def test_a_training_run_folder_loads_the_checkpoint_latest_names(self):
        # `moe train --out RUN` writes RUN/step-N/ and RUN/latest naming it: Model(RUN) is that step.
        import shutil
        ids = self.exp["prompt_ids"]
        with tempfile.TemporaryDirectory() as tmp:
            step = os.path.join(tmp, "step-00000003")
            shutil.copytree(self.dir, step)
            pathlib.Path(tmp, "latest").write_text("step-00000003\n")
            m = moe.Model(tmp, threads=THREADS)
            self.assertEqual(m.path, step)
            self.assertTrue(np.array_equal(m.eval(ids), self.model.eval(ids)))
            pathlib.Path(tmp, "latest").write_text("step-00000009\n")  # stale: names a deleted step
            with self.assertRaises(moe.Error) as e:
                moe.Model(tmp)
            self.assertIn(os.path.join(tmp, "latest") + " names step-00000009", str(e.exception))

    def test_mem_budget_gives_the_same_logits_and_an_offload_report(self):
        ids = self.exp["prompt_ids"]
        off = moe.Model(self.dir, threads=THREADS, mem_budget="1G")
        self.assertTrue(np.array_equal(off.eval(ids), self.model.eval(ids)))  # bit-identical
        r = off.offload()
        self.assertGreater(r["requests"], 0)
        self.assertGreater(r["bytes_read"], 0)
        self.assertIsNone(self.model.offload())
        with self.assertRaises(moe.UsageError) as e:
            moe.Model(self.dir, mem_budget="12X")
        self.assertIn("--mem-budget 12X", str(e.exception))

    def test_kv_type_as_the_cli(self):
        # A float32 checkpoint keeps an f32 cache by default; f16 rounds keys and values, as --kv-type f16.
        ids = self.exp["prompt_ids"]
        f32 = moe.Model(self.dir, threads=THREADS, kv_type="f32").eval(ids)
        f16 = moe.Model(self.dir, threads=THREADS, kv_type="f16").eval(ids)
        self.assertTrue(np.array_equal(f32, self.model.eval(ids)))
        self.assertFalse(np.array_equal(f16, f32))
        self.assertLess(float(np.max(np.abs(f16 - f32))), 3e-3 * float(np.max(np.abs(f32))))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "logits.f32")
            run_moe("eval", "--model", self.dir, "--ids", ids_arg(ids), "--kv-type", "f16", "--logits-out", out)
            self.assertTrue(np.array_equal(f16, np.fromfile(out, dtype=np.float32).reshape(f16.shape)))
        with self.assertRaises(moe.UsageError) as e:
            moe.Model(self.dir, kv_type="f8")
        self.assertIn("--kv-type f8", str(e.exception))

    def test_eval_takes_numpy_ids(self):
        ids = np.array(self.exp["prompt_ids"], dtype=np.int64)
        self.assertTrue(np.array_equal(self.model.eval(ids), self.model.eval(list(ids))))

    def test_generate_greedy_equals_reference_and_cli(self):
        prompt = self.exp["prompt_ids"]
        gen = self.model.generate(prompt, max_new_tokens=20)
        pieces = list(gen)
        ids = [i for p in pieces for i in p.ids]
        self.assertEqual(ids, self.exp["greedy_ids"])
        self.assertEqual(gen.tokens, ids)
        self.assertEqual(gen.finish_reason, "length")
        cli = run_moe_json("run", "--no-ceiling", "--max-new-tokens", 20, "--model", self.dir,
                           "--prompt-ids", ids_arg(prompt))
        self.assertEqual(cli["generated_ids"], ids)
        self.assertEqual("".join(p.text for p in pieces), cli["text"])
        self.assertEqual(gen.text, cli["text"])

    def test_generate_sampling_and_stop_equal_cli(self):
        kw = dict(max_new_tokens=24, temperature=0.9, top_k=40, top_p=0.95, seed=7, stop=["e "])
        pieces = list(self.model.generate("The expert ", **kw))
        cli = run_moe_json("run", "--no-ceiling", "--model", self.dir, "--prompt", "The expert ",
                           "--max-new-tokens", 24, "--temp", 0.9, "--top-k", 40, "--top-p", 0.95, "--seed", 7,
                           "--stop", "e ")
        self.assertEqual([i for p in pieces for i in p.ids], cli["generated_ids"])
        self.assertEqual("".join(p.text for p in pieces), cli["text"])
        report = self.model.report()
        self.assertEqual(report["finish_reason"], cli["finish_reason"])
        self.assertEqual(report["sampling"], cli["sampling"])

    def test_generate_streams_one_token_per_step(self):
        pieces = list(self.model.generate(self.exp["prompt_ids"], max_new_tokens=5))
        self.assertEqual([len(p.ids) for p in pieces], [1] * 5)
        self.assertIsInstance(pieces[0], moe.Piece)
        self.assertEqual(list(self.model.generate([1, 2], max_new_tokens=0)), [])

    def test_trace_after_generate_equals_cli_trace(self):
        prompt = self.exp["prompt_ids"]
        list(self.model.generate(prompt, max_new_tokens=6))
        tr = self.model.trace
        T = len(prompt) + 5  # the last generated token is not fed back
        self.assertEqual(tr.expert_ids.shape, (2, T, 2))
        self.assertEqual(tr.weights.shape, (2, T, 2))
        self.assertEqual((tr.expert_ids.dtype, tr.weights.dtype), (np.int32, np.float32))
        self.assertEqual(tr.layers, [0, 1])
        self.assertEqual(tr.tokens[:len(prompt)], prompt)
        # norm_topk_prob: each token's weights sum to 1
        self.assertTrue(np.allclose(tr.weights.sum(axis=2), 1.0, atol=1e-5))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "trace.jsonl")
            run_moe("run", "--quiet", "--no-ceiling", "--max-new-tokens", 6, "--model", self.dir,
                    "--prompt-ids", ids_arg(prompt), "--trace", out)
            with open(out) as f:
                rows = [json.loads(line) for line in f]
        self.assertEqual(len(rows), T)
        for t, row in enumerate(rows):
            self.assertEqual(row["token"], tr.tokens[t])
            for li, experts in enumerate(row["experts"]):
                self.assertEqual(list(tr.expert_ids[li, t]), experts)

    def test_trace_after_eval_skips_dense_layers(self):
        m = moe.Model(model_dir("deepseek_v3"), threads=THREADS)  # first_k_dense_replace 1, 3 layers, top-3
        ids = expected("deepseek_v3")["prompt_ids"]
        m.eval(ids)
        tr = m.trace
        self.assertEqual(tr.layers, [1, 2])
        self.assertEqual(tr.expert_ids.shape, (2, len(ids), 3))
        self.assertTrue(((tr.expert_ids >= 0) & (tr.expert_ids < 16)).all())
        self.assertTrue((tr.weights > 0).all())

    def test_report_equals_cli_json(self):
        prompt = self.exp["prompt_ids"]
        list(self.model.generate(prompt, max_new_tokens=8))
        got = self.model.report()
        cli = run_moe_json("run", "--no-ceiling", "--max-new-tokens", 8, "--model", self.dir,
                           "--prompt-ids", ids_arg(prompt))
        self.assertEqual(list(got), list(cli))
        for key in got:
            if key not in TIMED:
                self.assertEqual(got[key], cli[key], key)
        self.assertGreater(got["decode_tokens_per_s"], 0)

    def test_report_after_eval(self):
        self.model.eval(self.exp["prompt_ids"])
        r = self.model.report()
        self.assertEqual(r["prompt_tokens"], len(self.exp["prompt_ids"]))
        self.assertEqual(r["generated_tokens"], 0)
        self.assertEqual(len(r["expert_load"]), 2)

    def test_thread_pool(self):
        before = moe.threads()
        try:
            moe.set_threads(1)
            self.assertEqual(moe.threads(), 1)
            m = moe.Model(pathlib.Path(self.dir), threads=THREADS)  # a path-like works too
            m.eval([1, 2])
            self.assertEqual(moe.threads(), THREADS)  # the model's own count while it computes
        finally:
            moe.set_threads(before)

    def test_default_model_and_text(self):
        m = moe.Model(threads=THREADS)  # the embedded default, as `moe run` without --model
        text = "".join(p.text for p in m.generate("The ", max_new_tokens=8))
        _, out, _ = run_moe("run", "--quiet", "--json", "--no-ceiling", "--prompt", "The ", "--max-new-tokens", 8)
        self.assertEqual(text, json.loads(out)["text"])


class Gil(unittest.TestCase):
    def test_other_threads_run_while_the_engine_computes(self):
        # With a 5 s switch interval a thread that holds the GIL keeps it until it blocks: the main
        # thread could then poll only after the worker's last call. It polls meanwhile only because
        # eval and each generation step release the GIL.
        m = moe.Model(threads=1)
        ids = list(range(1, 251))
        state = {"inside": False}

        def work():
            state["inside"] = True
            for _ in range(3):
                m.eval(ids)
            for _ in m.generate(ids[:100], max_new_tokens=10):
                pass
            state["inside"] = False

        interval = sys.getswitchinterval()
        sys.setswitchinterval(5.0)
        try:
            worker = threading.Thread(target=work)
            worker.start()
            seen = 0
            while worker.is_alive():
                seen += state["inside"]
                time.sleep(0.001)
            worker.join()
        finally:
            sys.setswitchinterval(interval)
        self.assertGreater(seen, 0)


class Errors(unittest.TestCase):
    def test_missing_model_raises_the_cli_message(self):
        _, message = cli_error("eval", "--model", "/no/such/model", "--ids", "1,2")
        with self.assertRaises(moe.Error) as e:
            moe.Model("/no/such/model")
        self.assertEqual(str(e.exception), message)

    def test_eval_errors_equal_cli(self):
        d = model_dir(FAMILY)
        m = moe.Model(d, threads=THREADS)
        for ids in ([5], [1, 999]):
            with self.subTest(ids=ids):
                _, message = cli_error("eval", "--model", d, "--ids", ids_arg(ids))
                with self.assertRaises(moe.Error) as e:
                    m.eval(ids)
                self.assertEqual(str(e.exception), message)

    def test_sampling_errors_equal_the_engine(self):
        m = moe.Model(model_dir(FAMILY), threads=THREADS)
        with self.assertRaisesRegex(moe.Error, r"^\[sampler\] top-p must be in \(0, 1\]"):
            m.generate([1, 2], top_p=2.0)
        with self.assertRaisesRegex(moe.UsageError, r"^\[python\] max_new_tokens: expected an integer"):
            m.generate([1, 2], max_new_tokens=-1)
        with self.assertRaisesRegex(moe.UsageError, r"^\[python\] threads: expected an integer from 1 to 1024"):
            moe.Model(model_dir(FAMILY), threads=0)

    def test_nothing_ran_yet(self):
        m = moe.Model(model_dir(FAMILY), threads=THREADS)
        with self.assertRaisesRegex(moe.Error, "nothing ran yet"):
            m.trace


class Gguf(unittest.TestCase):
    def test_gguf_eval_equals_cli(self):
        d = model_dir(FAMILY)
        ids = expected(FAMILY)["prompt_ids"]
        with tempfile.TemporaryDirectory() as tmp:
            gguf = os.path.join(tmp, "model.gguf")
            run_moe("quantize", "--model", d, "--out", gguf, "--type", "F32")
            out = os.path.join(tmp, "logits.f32")
            run_moe("eval", "--model", gguf, "--ids", ids_arg(ids), "--logits-out", out)
            cli = np.fromfile(out, dtype=np.float32).reshape(len(ids), 256)
            logits = moe.Model(gguf, threads=THREADS).eval(ids)
        self.assertTrue(np.array_equal(logits, cli))


if __name__ == "__main__":
    unittest.main()
