#!/usr/bin/env bash
# skillrun vs a plain PyTorch eager program on one GPU, same configs, batch and optimizer
# (issue 4's benchmark). Writes bench/results/<date>-<device>.md with the commit, date and
# commands. Usage: bench/gpu_vs_pytorch.sh [BUILD_DIR [OUT_FILE]]   (default build-cuda; OUT_FILE
# lets bench/gpu_session.sh put it among its own files)
# Note: `skillrun bench` reports the mean ms/step over --steps with a sync between phases
# (an upper bound on the steady-state step); the PyTorch side reports the median of per-step
# CUDA-event times. The Newton-Schulz time on a 2000x150 matrix comes from
# `skillrun bench --msign 2000x150` (median per call, the device synchronised around each call)
# beside `pytorch_reference.py --msign 2000x150` (the same NS5, timed both ways: host clock with
# a sync around each call, comparable with skillrun's, and CUDA events).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-cuda}
bin="$build/bin/skillrun"
[[ -x $bin ]] || { echo "no $bin: build first (cmake -S . -B $build -G Ninja && ninja -C $build)" >&2; exit 2; }
command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this benchmark needs a GPU" >&2; exit 2; }
device=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
out=${2:-"bench/results/$(date +%Y%m%d)-$(echo "$device" | tr ' /' '__').md"}
mkdir -p "$(dirname "$out")"
steps=200
warmup=20
msign_shape=2000x150  # the issue's Newton-Schulz shape
msign_repeats=200
{
  echo "# skillrun vs PyTorch eager — $device"
  echo
  echo "commit $commit, $(date -u +%Y-%m-%dT%H:%MZ), $("$bin" --version 2>/dev/null || true)"
  echo
  for cfg in configs/paper/fig2_muon.json configs/paper/fig4_muon_w250.json; do
    for precision in fp32 tf32; do
      echo "## $cfg ($precision)"
      echo
      echo '```'
      echo "\$ $bin bench $cfg --device cuda --set precision=$precision --steps $steps --warmup $warmup"
      "$bin" bench "$cfg" --device cuda --set "precision=$precision" --steps "$steps" --warmup "$warmup" 2>&1 || true
      if [[ $precision == fp32 ]]; then
        # The same step without issue 15's fused epilogues and Newton-Schulz kernels: the
        # before/after ratio measured in one run (docs/CUDA.md names both switches).
        echo "\$ SKILLRUN_CUBLASLT=off SKILLRUN_NS_KERNELS=off $bin bench $cfg --device cuda --set precision=$precision --steps $steps --warmup $warmup"
        SKILLRUN_CUBLASLT=off SKILLRUN_NS_KERNELS=off "$bin" bench "$cfg" --device cuda --set "precision=$precision" \
          --steps "$steps" --warmup "$warmup" 2>&1 || true
      fi
      echo "\$ python3 bench/pytorch_reference.py $cfg --precision $precision --steps $steps --warmup $warmup"
      python3 bench/pytorch_reference.py "$cfg" --precision "$precision" --steps "$steps" --warmup "$warmup" 2>&1 || true
      echo '```'
      echo
    done
  done
  for precision in fp32 tf32; do
    echo "## msign on ${msign_shape} ($precision)"
    echo
    echo '```'
    for method in ns5 polar_express svd; do
      [[ $method == svd && $precision != fp32 ]] && continue  # svd runs in double whatever the precision
      echo "\$ $bin bench --msign $msign_shape --msign-method $method --device cuda --precision $precision --repeats $msign_repeats --warmup $warmup"
      "$bin" bench --msign "$msign_shape" --msign-method "$method" --device cuda --precision "$precision" \
        --repeats "$msign_repeats" --warmup "$warmup" 2>&1 || true
    done
    if [[ $precision == fp32 ]]; then
      # fp32 Newton-Schulz runs on our kernels (kernels/newton_schulz.cu); the cuBLAS iteration
      # beside them, and fig4's shape alone and as a pack of 27 (issue 15's anchors).
      echo "\$ SKILLRUN_NS_KERNELS=off $bin bench --msign $msign_shape --msign-method ns5 --device cuda --repeats $msign_repeats --warmup $warmup"
      SKILLRUN_NS_KERNELS=off "$bin" bench --msign "$msign_shape" --msign-method ns5 --device cuda \
        --repeats "$msign_repeats" --warmup "$warmup" 2>&1 || true
      for pack in 1 27; do
        for switch in on off; do
          echo "\$ SKILLRUN_NS_KERNELS=$switch $bin bench --msign 250x105 --pack $pack --msign-method ns5 --device cuda --repeats $msign_repeats --warmup $warmup"
          SKILLRUN_NS_KERNELS=$switch "$bin" bench --msign 250x105 --pack "$pack" --msign-method ns5 --device cuda \
            --repeats "$msign_repeats" --warmup "$warmup" 2>&1 || true
        done
      done
    fi
    echo "\$ python3 bench/pytorch_reference.py --msign $msign_shape --precision $precision --repeats $msign_repeats --warmup $warmup"
    python3 bench/pytorch_reference.py --msign "$msign_shape" --precision "$precision" --repeats "$msign_repeats" \
      --warmup "$warmup" 2>&1 || true
    echo '```'
    echo
  done
  echo "Peak device memory (skillrun): nvidia-smi during the run; see docs/CUDA.md."
} | tee "$out"
echo "written: $out"
