#!/usr/bin/env bash
# Regenerates results/spectral/ on the CPU (about 15 minutes on 2 cores): the sweeps into
# runs/spectral/ (not committed), then `skillrun analyze --plot` into optimizers/ and
# weight_decay/. A sweep already run is skipped (finished runs are never run twice).
# Usage: results/spectral/run.sh   (from anywhere; SKILLRUN=path/to/skillrun to use another binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${SKILLRUN:-build/bin/skillrun}
RUNS=${RUNS:-runs/spectral}
for sweep in muon muon_norm_matched nmd adam weight_decay; do
  "$BIN" sweep "results/spectral/configs/$sweep.json" --out "$RUNS/$sweep" --jobs 2
done
"$BIN" analyze "$RUNS/muon" "$RUNS/muon_norm_matched" "$RUNS/nmd" "$RUNS/adam" --out results/spectral/optimizers --plot
"$BIN" analyze "$RUNS/weight_decay" --out results/spectral/weight_decay --plot
# Paper Fig. 4 scale (width 250, batch 10000): Muon vs the norm-matched control only (CPU time).
"$BIN" sweep results/spectral/configs/fig4_w250.json --out "$RUNS/fig4_w250" --jobs 2
"$BIN" analyze "$RUNS/fig4_w250" --out results/spectral/fig4_w250 --plot
