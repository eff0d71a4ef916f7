"""moe.Tokenizer: encode and decode as `moe tokenize` and `moe detokenize` do."""

import os
import pathlib
import unittest

import moe
from common import TOKENIZERS, cli_error, run_moe, run_moe_json

TEXT = "Hello, wörld! 1234 — mixture of experts\n\tdone."


@unittest.skipUnless(TOKENIZERS and os.path.isdir(TOKENIZERS), "MOE_TOKENIZER_FIXTURES not unpacked")
class TokenizerTest(unittest.TestCase):
    def tok_path(self, name):
        return os.path.join(TOKENIZERS, name, "tokenizer.json")

    def test_round_trips(self):
        for name in ("qwen3", "llama2", "llama3", "gptoss", "deepseek_v3"):
            with self.subTest(name=name):
                tok = moe.Tokenizer(self.tok_path(name))
                self.assertEqual(tok.decode(tok.encode(TEXT)), TEXT)

    def test_equals_cli(self):
        for name in ("qwen3", "llama2"):  # byte-level BPE and SentencePiece-style BPE
            with self.subTest(name=name):
                tok = moe.Tokenizer(self.tok_path(name))
                ids = tok.encode(TEXT)
                self.assertEqual(ids, run_moe_json("tokenize", "--tokenizer", self.tok_path(name), "--text", TEXT)["ids"])
                _, text, _ = run_moe("detokenize", "--tokenizer", self.tok_path(name),
                                     "--ids", ",".join(map(str, ids)))
                self.assertEqual(tok.decode(ids), text[:-1])  # the CLI adds a newline

    def test_add_special_and_skip_special(self):
        tok = moe.Tokenizer(self.tok_path("llama2"))
        ids = tok.encode("Hi", add_special=True)
        self.assertEqual(ids[0], tok.bos_id)
        self.assertEqual(ids, run_moe_json("tokenize", "--tokenizer", self.tok_path("llama2"), "--text", "Hi",
                                           "--add-special")["ids"])
        self.assertEqual(tok.decode(ids, skip_special=True), "Hi")
        self.assertEqual(tok.encode_prompt("Hi"), ids)  # Llama 2 adds the BOS to a prompt

    def test_vocabulary(self):
        tok = moe.Tokenizer(pathlib.Path(TOKENIZERS) / "qwen3")  # a folder holding tokenizer.json
        self.assertGreater(tok.vocab_size, 150000)
        tid = tok.token_to_id("Hello")
        self.assertEqual(tok.id_to_token(tid), "Hello")
        self.assertEqual(tok.token_to_id("no such token \u2603\u2603"), -1)
        self.assertIn("moe.Tokenizer", repr(tok))

    def test_missing_file_raises_the_cli_message(self):
        _, message = cli_error("tokenize", "--tokenizer", "/no/such/tokenizer.json", "--text", "x")
        with self.assertRaises(moe.Error) as e:
            moe.Tokenizer("/no/such/tokenizer.json")
        self.assertEqual(str(e.exception), message)


if __name__ == "__main__":
    unittest.main()
