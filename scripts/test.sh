#!/usr/bin/env bash
# The test suite: set up, build, and run every test with ctest (GPU tests skip without a GPU).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"
