#!/usr/bin/env bash
# The main job: set up, build, then the finding itself. Trains configs/quickstart.json (5 Zipf
# subtasks of sparse parity, width 128) with NMD, Adam and Muon at the paper's best lrs, then
# `skillrun analyze` prints when each subtask was learned (T_k), the p-coverage time T(p) and
# the skill acquisition lag SAL(p) per optimizer, and writes tables and plots.
# Output: runs/quickstart/{nmd,adam,muon} and runs/quickstart/analysis (QUICKSTART_OUT picks
# another place). Runs are resumed, never deleted: a second call re-uses finished runs, and
# refuses (exit 2) a run directory trained with a different config. Extra arguments go to
# every `skillrun run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh skillrun
skillrun="${BUILD_DIR:-build}/bin/skillrun"
out=${QUICKSTART_OUT:-runs/quickstart}

# name | optimizer block (the paper's best lr each; Muon is the config's own)
runs=("nmd|{\"type\":\"nmd\",\"lr\":0.01,\"momentum\":0.9}"
      "adam|{\"type\":\"adam\",\"lr\":0.001}"
      "muon|")
i=0
for entry in "${runs[@]}"; do
  name=${entry%%|*} optimizer=${entry#*|}
  i=$((i + 1))
  # A finished run is only read again (and checked against the config); say which it is.
  if [ -f "$out/$name/summary.json" ] &&
    grep -Eq '"status": *"(converged|max_steps|diverged)"' "$out/$name/summary.json"; then
    echo "quickstart: re-using the finished ${name} run in $out/$name (${i}/${#runs[@]})" >&2
  else
    echo "quickstart: training ${name} (${i}/${#runs[@]})" >&2
  fi
  # NMD needs about 14k steps to learn the rarest subtask; every run stops once all are learned.
  args=(--out "$out/$name" --resume --set "name=quickstart-$name" --set train.max_steps=40000 --log-level warn)
  [ -n "$optimizer" ] && args+=(--set "optimizer=$optimizer")
  "$skillrun" run configs/quickstart.json "${args[@]}" "$@" >/dev/null
done
exec "$skillrun" analyze "$out" --out "$out/analysis" --plot
