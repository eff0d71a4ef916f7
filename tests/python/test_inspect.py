"""moe.inspect and moe.catalog give the dicts of `moe inspect --json`."""

import json
import os
import tempfile
import unittest

import moe
from common import cli_error, model_dir, run_moe_json


NAME = "mixtral-8x7b"  # catalog names (data/models/catalog.json)
OTHER = "deepseek-v3"


class Inspect(unittest.TestCase):
    def test_catalog_name_equals_cli(self):
        self.assertEqual(moe.inspect(NAME), run_moe_json("inspect", NAME)["models"][0])

    def test_workload_options_equal_cli_flags(self):
        name = NAME
        got = moe.inspect(name, context=32768, batch=8, prompt=512, ep=4, kv_bytes=1.0, explain=True)
        want = run_moe_json("inspect", name, "--context", 32768, "--batch", 8, "--prompt", 512, "--ep", 4,
                            "--kv-bytes", 1, "--explain")["models"][0]
        self.assertEqual(got, want)

    def test_checkpoint_folder_equals_cli(self):
        d = model_dir("qwen3_moe")
        got = moe.inspect(d)
        self.assertIsNotNone(got["checkpoint_check"])
        self.assertEqual(got, run_moe_json("inspect", d)["models"][0])

    def test_config_dict_equals_config_file(self):
        with open(os.path.join(model_dir("mixtral"), "config.json")) as f:
            config = json.load(f)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "config.json")
            with open(path, "w") as f:
                json.dump(config, f)
            self.assertEqual(moe.inspect(config, name=path), run_moe_json("inspect", path)["models"][0])

    def test_several_models(self):
        names = [NAME, OTHER]
        got = moe.inspect(names)
        self.assertEqual(len(got), 2)
        self.assertEqual(got, run_moe_json("inspect", *names)["models"])

    def test_catalog_equals_cli_list(self):
        catalog = moe.catalog()
        self.assertIn(NAME, [e["name"] for e in catalog])
        self.assertEqual(catalog, run_moe_json("inspect", "--list")["catalog"])

    def test_unknown_model_raises_the_cli_message(self):
        code, message = cli_error("inspect", "no-such-model-xyz")
        with self.assertRaises(moe.UsageError) as e:
            moe.inspect("no-such-model-xyz")
        self.assertEqual(str(e.exception), message)
        self.assertEqual(code, 2)
        self.assertEqual(e.exception.component, "inspect")

    def test_top_k_above_experts_raises_the_cli_message(self):
        with open(os.path.join(model_dir("mixtral"), "config.json")) as f:
            config = json.load(f)
        config["num_experts_per_tok"] = config["num_local_experts"] + 1
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "config.json")
            with open(path, "w") as f:
                json.dump(config, f)
            _, message = cli_error("inspect", path)
            with self.assertRaises(moe.Error) as e:
                moe.inspect(config, name=path)
        self.assertEqual(str(e.exception), message)
        self.assertIsInstance(e.exception, RuntimeError)

    def test_out_of_range_keyword(self):
        with self.assertRaisesRegex(moe.UsageError, r"^\[python\] context: expected an integer from 1 to"):
            moe.inspect(NAME, context=0)

    def test_wrong_target_type(self):
        with self.assertRaises(moe.UsageError):
            moe.inspect(42)


if __name__ == "__main__":
    unittest.main()
