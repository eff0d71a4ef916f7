# Writes a deterministic multi-megabyte UTF-8 text for the tokenizer benchmark: English prose
# (Debian's common licenses), Python source (the standard library) and the multilingual fixture
# corpus (CJK, emoji, combining marks, special tokens), interleaved in 4 KB chunks.
# Usage: make-tokenizer-bench-text.py OUT [MEGABYTES]
import glob
import json
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def chunks(text, size=4096):
    return [text[i:i + size] for i in range(0, len(text), size)]


def main():
    out, megabytes = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
    prose = "".join(open(p, encoding="utf-8", errors="replace").read()
                    for p in sorted(glob.glob("/usr/share/common-licenses/*")) if os.path.isfile(p))
    code = "".join(open(p, encoding="utf-8", errors="replace").read()
                   for p in sorted(glob.glob("/usr/lib/python3*/*.py"))[:120])
    corpus = json.load(open(os.path.join(root, "tests/reference/fixtures/tokenizer/corpus.json"), encoding="utf-8"))
    multi = "\n".join(corpus["texts"]) * 20
    sources = [chunks(prose), chunks(code), chunks(multi)]
    parts, total, i = [], 0, 0
    limit = int(megabytes * 1e6)
    while total < limit:
        src = sources[i % 3]
        piece = src[(i // 3) % len(src)]
        parts.append(piece)
        total += len(piece.encode("utf-8"))
        i += 1
    text = "".join(parts).encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
