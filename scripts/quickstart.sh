#!/usr/bin/env bash
# The main job: set up, build, and run the default experiment (configs/quickstart.json),
# printing its per-subtask result table. Extra arguments go to `skillrun run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec "${BUILD_DIR:-build}/bin/skillrun" run configs/quickstart.json "$@"
