#!/usr/bin/env bash
# Installs llama.cpp as a reference peer for tests and benchmarks, without building it: the npm package
# @node-llama-cpp/linux-x64 ships a prebuilt CPU llama.cpp (libllama, libggml-base with ggml's quantize
# and dequantize functions and the GGUF writer, one CPU backend per x86 level), and node-llama-cpp ships
# the matching llama.cpp source as a git bundle (we take its headers: llama.h, ggml.h, gguf.h).
# Nothing of it is committed: it lands in .llamacpp/ (git-ignored) or the folder given.
# Usage: scripts/install-llamacpp.sh [DIR]      Idempotent; prints the folder on success.
set -euo pipefail

version=3.22.1
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/.llamacpp}"
stamp="$dir/installed-$version"

if [[ -f "$stamp" ]]; then
  echo "[install-llamacpp] llama.cpp reference present in $dir"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "[install-llamacpp] npm not found: install Node.js (Debian: nodejs npm) to get the llama.cpp reference" >&2
  exit 1
fi

mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "[install-llamacpp] fetching @node-llama-cpp/linux-x64@$version and node-llama-cpp@$version from npm"
(cd "$tmp" && npm pack --silent "@node-llama-cpp/linux-x64@$version" "node-llama-cpp@$version" >/dev/null)
mkdir -p "$tmp/bin" "$tmp/src"
tar -xzf "$tmp"/node-llama-cpp-linux-x64-"$version".tgz -C "$tmp/bin"
tar -xzf "$tmp"/node-llama-cpp-"$version".tgz -C "$tmp/src" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
git clone --quiet "$tmp/src/package/llama/gitRelease.bundle" "$tmp/llama.cpp" 2>/dev/null

rm -rf "$dir/lib" "$dir/llama.cpp"
mv "$tmp/bin/package/bins/linux-x64" "$dir/lib"
mv "$tmp/llama.cpp" "$dir/llama.cpp"
cp "$tmp/src/package/llama/llama.cpp.info.json" "$dir/llama.cpp.info.json"
touch "$stamp"
echo "[install-llamacpp] installed llama.cpp ($(grep -o '"tag": *"[^"]*"' "$dir/llama.cpp.info.json")) in $dir"
