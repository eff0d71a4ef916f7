"""The docs' example (python/examples/expert_load.py) runs and writes its PNG, when Debian's
python3-matplotlib is installed (it is optional: skipped otherwise)."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get("MOE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


@unittest.skipUnless(importlib.util.find_spec("matplotlib"), "python3-matplotlib not installed")
class Example(unittest.TestCase):
    def test_expert_load_plot(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "load.png")
            p = subprocess.run([sys.executable, os.path.join(SOURCE, "python", "examples", "expert_load.py"),
                                "--max-new-tokens", "16", "--out", out], capture_output=True, text=True,
                               env={**os.environ, "MPLCONFIGDIR": tmp})
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(out, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


if __name__ == "__main__":
    unittest.main()
