#!/usr/bin/env bash
# The assoc_memory study (README.md): every sweep of configs/ into $OUT (default
# /tmp/assoc_study), two runs at a time, then `skillrun analyze` per part and the tables and
# figures of this directory (tables.py). Run from the repository root:
#   bash results/assoc_memory/run.sh [OUT]
set -euo pipefail
OUT=${1:-/tmp/assoc_study}
BIN=${SKILLRUN:-build/bin/skillrun}
HERE=results/assoc_memory
for s in a_gd a_muon a_signgd a_adam b_signgd_identity b_muon_identity c_gd c_muon c_signgd c_adam; do
  "$BIN" sweep "$HERE/configs/$s.json" --out "$OUT/$s" --jobs 2
done
"$BIN" analyze "$OUT"/a_* --out "$OUT/analysis_a"
"$BIN" analyze "$OUT"/b_* "$OUT"/a_signgd "$OUT"/a_muon --out "$OUT/analysis_b"
"$BIN" analyze "$OUT"/c_* --out "$OUT/analysis_c"
/usr/bin/python3 "$HERE/tables.py" "$OUT" --out "$HERE"
