#!/usr/bin/env bash
# Installs the Debian packages moe needs, only the missing ones. Idempotent.
# Usage: scripts/install-deps.sh [--fixtures] [--fuzz] [--matplotlib]
#   --fixtures adds python3-torch for tests/reference;
#   --matplotlib adds python3-matplotlib for the Python example plot (docs/PYTHON.md; optional, no test needs it);
#   --fuzz adds clang and libclang-rt-14-dev (libclang_rt.fuzzer/asan/ubsan, which clang-14 only
#   recommends) for the libFuzzer targets in fuzz/ (`make fuzz`).
set -euo pipefail

packages=(
  g++ cmake make pkg-config git
  nlohmann-json3-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev libopenmpi-dev openmpi-bin
  libpcre2-dev libsentencepiece-dev libicu-dev
  clang-format
  libcpp-httplib-dev
  pybind11-dev python3-dev python3-numpy
)
for arg in "$@"; do
  case "$arg" in
    --fixtures) packages+=(python3-torch) ;;  # python3-numpy is a base package (the Python tests)
    --fuzz) packages+=(clang libclang-rt-14-dev) ;;
    --matplotlib) packages+=(python3-matplotlib) ;;
    *) echo "[install-deps] unknown option '$arg' (expected --fixtures, --fuzz or --matplotlib)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[install-deps] all ${#packages[@]} packages present"
  exit 0
fi

echo "[install-deps] missing: ${missing[*]}"
if [[ "$(id -u)" != "0" ]]; then
  echo "[install-deps] not root; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "[install-deps] installed: ${missing[*]}"
