#!/usr/bin/env python3
"""Fails when a function body in src/ runs over the line limit (CONVENTIONS: "a function over ~80 lines
becomes smaller"). A brace-matching scan, not a compiler: comments, string/char/raw-string literals and
preprocessor lines are blanked first, then every `{` outside a function body is classified (namespace,
class, initializer, function). Free functions, member functions defined in or out of class bodies,
constructors (with their init lists) and namespace-scope lambdas count; a function's length runs from
the first line of its declaration to its closing brace.

Usage: check_function_length.py SRC_DIR [--max N] [--skip DIR ...]   (exit 1 and a list when over)
       check_function_length.py --self-test                          (the scanner against planted code)
"""
import os
import re
import sys

# Functions allowed over the limit, by "path relative to src/:name", each with why a split would hurt.
EXEMPT = {
}

CONTROL = {"if", "for", "while", "switch", "catch", "do", "else", "try", "return", "sizeof", "decltype"}
SPECIFIERS = {"const", "noexcept", "override", "final", "mutable", "volatile", "&", "&&", "try"}


def blank_literals(text):
    """Replaces comments, literals and preprocessor lines with spaces, keeping every newline."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c in " \t":
            out.append(c)
            i += 1
            continue
        if line_start and c == "#":  # preprocessor line, with its continuations
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append(" \n")
                    i += 2
                    continue
                out.append(" ")
                i += 1
            continue
        line_start = False
        if c == "\n":
            line_start = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and i + 1 < n and text[i + 1] == '"' and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) \
                or (c in "uUL8" and re.match(r'(u8|u|U|L)R"', text[i:i + 4]) and not text[i - 1].isalnum()):
            q = text.index('"', i)
            paren = text.index("(", q)
            delim = ")" + text[q + 1:paren] + '"'
            j = text.find(delim, paren)
            j = n if j < 0 else j + len(delim)
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # digit separator 1'000
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * (j - i - 2) + c if j - i >= 2 else c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_angles(s):
    """Drops template argument lists (<...>) so `=` and `(` inside them do not mislead."""
    prev = None
    while prev != s:
        prev = s
        s = re.sub(r"<[^<>;{}()]*>", "", s)
    return s


def classify(header):
    """What a `{` opens, from the text since the previous `;`, `{` or `}` at the same level."""
    h = " ".join(header.split())
    h = re.sub(r"^(public|private|protected)\s*:\s*", "", h)
    if not h:
        return "block"
    if re.match(r"^(inline\s+)?namespace\b", h) or re.match(r"^extern\s*\"", h):
        return "namespace"
    plain = strip_angles(re.sub(r"^template\s*", "", h)).strip()
    if re.match(r"^(class|struct|union)\b", plain) and "(" not in plain.split(":")[0]:
        return "class"
    if re.match(r"^(enum)\b", plain):
        return "data"
    no_op = re.sub(r"\boperator\s*(\(\)|[^\s(]+)\s*\(", "operator(", plain)
    depth = 0
    for ch in no_op:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "=" and depth == 0:
            return "lambda" if re.search(r"\]\s*(\([^)]*\))?\s*(mutable\s*)?(->.*)?$", no_op) else "data"
    if "(" not in no_op:
        return "data"
    return "function"


def init_list_open(header):
    """True while a constructor's member-initializer list is being read (`Foo(...) : a_{`)."""
    plain = strip_angles(" ".join(header.split()))
    return re.search(r"\)\s*(noexcept\s*)?:(?!:)", plain) is not None


def function_name(header):
    plain = strip_angles(" ".join(header.split()))
    m = re.search(r"(operator\s*(\(\)|[^\s(]+)|[~\w:]+)\s*\(", plain)
    return m.group(1).split("::")[-1] if m and "::" not in m.group(1) else (m.group(1) if m else "?")


def scan(text):
    """Yields (name, first_line, last_line) for each function body (1-based lines)."""
    src = blank_literals(text)
    line_of = []
    line = 1
    for ch in src:
        line_of.append(line)
        if ch == "\n":
            line += 1
    stack = []  # entries: (kind, header_start, header)
    header_start = 0
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        in_body = any(k in ("function", "lambda", "data", "block", "init") for k, _, _ in stack)
        if c == "{":
            if in_body:
                stack.append(("block", i, ""))
                i += 1
                continue
            header = src[header_start:i]
            kind = classify(header)
            if kind == "function" and init_list_open(header) and re.search(r"[\w>]\s*$", header):
                stack.append(("init", header_start, header))  # a member's brace initializer
                i += 1
                continue
            stack.append((kind, header_start, header))
            header_start = i + 1
        elif c == "}":
            if not stack:
                i += 1
                continue
            kind, start, header = stack.pop()
            if kind == "init":
                i += 1  # header continues after the member initializer
                continue
            if not any(k in ("function", "lambda", "data", "block", "init") for k, _, _ in stack):
                if kind in ("function", "lambda"):
                    m = re.search(r"\S", re.sub(r"^\s*(public|private|protected)\s*:", lambda x: " " * len(x.group(0)),
                                                src[start:i]))
                    first = line_of[start + (m.start() if m else 0)]
                    yield function_name(header), first, line_of[i]
                header_start = i + 1
        elif c == ";" and not in_body:
            header_start = i + 1
        elif c == ":" and not in_body and re.search(r"\b(public|private|protected)\s*$", src[header_start:i]):
            header_start = i + 1
        i += 1


def check(src_dir, limit, skip):
    over = []
    for root, dirs, files in os.walk(src_dir):
        rel_root = os.path.relpath(root, src_dir)
        dirs[:] = sorted(d for d in dirs if os.path.normpath(os.path.join(rel_root, d)) not in skip)
        for f in sorted(files):
            if not f.endswith((".cc", ".h", ".cpp", ".hpp")):
                continue
            path = os.path.join(root, f)
            rel = os.path.normpath(os.path.relpath(path, src_dir))
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            for name, first, last in scan(text):
                length = last - first + 1
                if length > limit and f"{rel}:{name}" not in EXEMPT:
                    over.append((length, rel, first, name))
    return over


def self_test():
    body = lambda k: "\n".join(f"  x += {j};" for j in range(k))
    cases = {
        # name: (source, expected [(name, length)])
        "free": (f"namespace a {{\nint f(int x) {{\n{body(3)}\n  return x;\n}}\n}}\n", [("f", 6)]),
        "member in class, init list with braces": (
            "struct S : B {\n public:\n  S(int a) : a_{a}, b_(a), c_{std::vector<int>{1}} {\n" + body(2) +
            "\n  }\n  int g() const { return a_; }\n  int a_{0};\n};\n", [("S", 4), ("g", 1)]),
        "literals": ("const char* k = R\"x({ { {)x\";\nvoid f() {\n  char c = '{';\n  // {\n  /* } */ s(\"}\");\n}\n",
                     [("f", 5)]),
        "table not a function": ("static const int kT[] = {\n1,\n2,\n};\nenum class E {\nA,\n};\n", []),
        "out of class": ("template <typename T>\nvoid Foo<T>::bar(T t) const {\n  if (t) {\n  }\n}\n", [("Foo::bar", 5)]),
        "operator": ("bool operator==(const A& a, const A& b) {\n  return true;\n}\n", [("operator==", 3)]),
        "lambda at namespace scope": ("auto kF = [](int x) {\n  return x;\n};\n", [("?", 3)]),
        "preprocessor": ("#define M(x) { x }\n#include <a>\nvoid f() {\n}\n", [("f", 2)]),
    }
    failed = 0
    for label, (text, want) in cases.items():
        got = [(name, last - first + 1) for name, first, last in scan(text)]
        got = [(name if w[0] != "?" else "?", length) for (name, length), w in zip(got, want)] + got[len(want):]
        if got != want:
            print(f"self-test {label}: got {got}, want {want}")
            failed += 1
    # The whole check on a planted tree: one function over the limit is reported, one at it is not.
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "m"))
        os.makedirs(os.path.join(d, "train"))
        with open(os.path.join(d, "m", "a.cc"), "w") as fh:
            fh.write(f"void long_one() {{\n{body(79)}\n}}\nvoid ok() {{\n{body(78)}\n}}\n")
        with open(os.path.join(d, "train", "b.cc"), "w") as fh:
            fh.write(f"void skipped() {{\n{body(100)}\n}}\n")
        over = check(d, 80, {"train"})
        if [(o[0], o[1], o[3]) for o in over] != [(81, os.path.join("m", "a.cc"), "long_one")]:
            print(f"self-test planted tree: got {over}")
            failed += 1
        EXEMPT[os.path.join("m", "a.cc") + ":long_one"] = "planted"  # an exempt function is not reported
        over = check(d, 80, {"train"})
        del EXEMPT[os.path.join("m", "a.cc") + ":long_one"]
        if over:
            print(f"self-test exemption: got {over}")
            failed += 1
    print("self-test: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    args = argv[1:]
    limit, skip, src_dir = 80, set(), None
    while args:
        a = args.pop(0)
        if a == "--max":
            limit = int(args.pop(0))
        elif a == "--skip":
            skip.add(os.path.normpath(args.pop(0)))
        else:
            src_dir = a
    if not src_dir:
        print(__doc__)
        return 2
    over = check(src_dir, limit, skip)
    for length, rel, first, name in sorted(over, reverse=True):
        print(f"src/{rel}:{first}: {name} is {length} lines (limit {limit}): split it by purpose, or add it to "
              f"EXEMPT in {os.path.basename(__file__)} with the reason a split would hurt")
    if not over:
        print(f"every function in {src_dir} is at most {limit} lines" + (f" (skipping {', '.join(sorted(skip))})"
                                                                        if skip else ""))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
