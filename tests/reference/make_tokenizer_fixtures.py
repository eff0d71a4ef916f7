# Regenerates tests/reference/fixtures/tokenizer with node (the JavaScript port of Hugging Face
# tokenizers, @lenml/tokenizers): installs the npm packages of package.json if missing, then runs
# make_tokenizer_fixtures.mjs. Run by `make fixtures` with /usr/bin/python3.
import os
import shutil
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))


def main():
    if shutil.which("node") is None or shutil.which("npm") is None:
        sys.exit("make_tokenizer_fixtures: node and npm are needed (apt-get install nodejs npm)")
    if not os.path.isdir(os.path.join(here, "node_modules", "@lenml", "tokenizers")):
        subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund"], cwd=here, check=True)
    subprocess.run(["node", os.path.join(here, "make_tokenizer_fixtures.mjs")], cwd=here, check=True)


if __name__ == "__main__":
    main()
