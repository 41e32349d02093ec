#!/usr/bin/env bash
# The CPU backend on a busy machine (issue 22, item 3): the quickstart's NMD run for STEPS steps
# (default 3000) with the thread settings below, each on a quiet machine and with LOAD busy-loop
# processes beside it (default: one per core), and whether the metrics (wall_s aside) are the
# same bits in every setting. Prints a markdown table. Usage:
#   bash bench/busy_cpu.sh [SKILLRUN_BINARY]      (STEPS, LOAD, REPEATS in the environment)
# Each setting runs REPEATS times (default 3); the table gives the median and the range.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-build/bin/skillrun}
steps=${STEPS:-3000}
load=${LOAD:-$(nproc)}
repeats=${REPEATS:-3}
work=$(mktemp -d)
busy=()
cleanup() { for p in "${busy[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# name|environment (space-separated NAME=VALUE; "-" for none)
settings=("default|-" "OMP_WAIT_POLICY=passive|OMP_WAIT_POLICY=passive" "OMP_NUM_THREADS=1|OMP_NUM_THREADS=1")

hash_of() {  # metrics.csv without its wall_s column
  cut -d, -f1,3- "$1/metrics.csv" | sha256sum | cut -c1-16
}
one_run() {  # env-spec out-dir -> seconds
  local spec=$1 out=$2 start end
  local -a env_args=()
  [[ $spec != - ]] && read -r -a env_args <<<"$spec"
  start=$(date +%s.%N)
  env "${env_args[@]}" "$bin" run configs/quickstart.json --out "$out" --no-progress --log-level warn \
    --set 'optimizer={"type":"nmd","lr":0.01,"momentum":0.9}' --set train.max_steps="$steps" \
    --set train.stop_when_learned=false >/dev/null
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
median_range() {  # numbers... -> "median (min-max)"
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2;
    printf "%.1f s (%.1f-%.1f)", m, a[1], a[NR]}'
}

echo "| setting | quiet | with $load busy loops | metrics hash |"
echo "|---|---|---|---|"
for entry in "${settings[@]}"; do
  name=${entry%%|*}
  spec=${entry#*|}
  declare -a quiet=() loaded=()
  hashes=""
  for ((r = 0; r < repeats; r++)); do
    quiet+=("$(one_run "$spec" "$work/q-$name-$r")")
    hashes+=" $(hash_of "$work/q-$name-$r")"
  done
  for ((i = 0; i < load; i++)); do (while :; do :; done) & busy+=($!); done
  for ((r = 0; r < repeats; r++)); do
    loaded+=("$(one_run "$spec" "$work/l-$name-$r")")
    hashes+=" $(hash_of "$work/l-$name-$r")"
  done
  for p in "${busy[@]}"; do kill "$p" 2>/dev/null || true; done
  busy=()
  distinct=$(tr ' ' '\n' <<<"$hashes" | sed '/^$/d' | sort -u | tr '\n' ' ')
  echo "| $name | $(median_range "${quiet[@]}") | $(median_range "${loaded[@]}") | $distinct|"
  unset quiet loaded
done
