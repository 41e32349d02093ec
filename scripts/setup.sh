#!/usr/bin/env bash
# Installs what skillrun needs (Debian 12 packages; only the missing ones) and builds it into
# build/. Run by scripts/quickstart.sh and scripts/test.sh; safe to run again.
# Environment: BUILD_DIR (default build), SKILLRUN_CUDA (ON|OFF, default ON: used when nvcc
# exists), SKILLRUN_CMAKE_ARGS (more -D options). Arguments: targets to build (default: all).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(build-essential cmake ninja-build git pkg-config libcli11-dev nlohmann-json3-dev libspdlog-dev
          libfmt-dev libgtest-dev libopenblas-dev liblapacke-dev python3 python3-matplotlib)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "skillrun setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSKILLRUN_CUDA="${SKILLRUN_CUDA:-ON}" ${SKILLRUN_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" ${1:+--target "$@"}
