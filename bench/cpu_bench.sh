#!/usr/bin/env bash
# CPU benchmark: `skillrun bench` on the paper's width-study config (width 250, batch 10 000)
# for NMD, Adam and Muon, and on Fig. 2's width 2000. Writes bench/results/cpu-<date>-<commit>.txt
# with the machine, the commit and every figure. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${BUILD_DIR:-build}/bin/skillrun
commit=$(git rev-parse --short=12 HEAD)
out=bench/results/cpu-$(date -u +%Y-%m-%d)-${commit}.txt
{
  echo "# skillrun CPU benchmark"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: ${commit}$(git diff --quiet || echo -dirty)"
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  for opt in nmd adam muon; do
    echo; echo "\$ $bin bench configs/paper/fig4_${opt}_w250.json --steps 50"
    "$bin" bench "configs/paper/fig4_${opt}_w250.json" --steps 50
  done
  echo; echo "\$ $bin bench configs/paper/fig2_muon.json --steps 10"
  "$bin" bench configs/paper/fig2_muon.json --steps 10
} | tee "$out"
echo "written: $out" >&2
