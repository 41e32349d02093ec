#!/usr/bin/env bash
# Submits a skillrun sweep as a Slurm job array, one task per run (or per pack with --pack N),
# sized from `skillrun sweep SWEEP --list --format count`.
#
#   scripts/slurm/submit.sh SWEEP.json [--max-concurrent M] [--out DIR] [--set K=V]... [--pack N] [sbatch args...]
#
# --max-concurrent M becomes the array's %M limit; --out, --set and --pack are passed to every
# `skillrun sweep` (they change run directories, configs and what an array index names, so the
# listing uses them too); --pack N makes each array task train one pack of at most N runs of one
# shape in one process (docs/SWEEPS.md, "Packs"); any other argument goes to sbatch
# (--partition, --time, --gres=gpu:1, --wait, -o FILE, ...).
# SKILLRUN names the binary (default: build/bin/skillrun of this checkout, else skillrun on PATH).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() {
  sed -n '5,6p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
  exit 2
}
[[ $# -ge 1 && $1 != -* ]] || usage
sweep=$1
shift

max_concurrent=""
sweep_args=()
sbatch_args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --max-concurrent) [[ $# -ge 2 ]] || usage; max_concurrent=$2; shift 2 ;;
    --max-concurrent=*) max_concurrent=${1#*=}; shift ;;
    --out|--set|--pack) [[ $# -ge 2 ]] || usage; sweep_args+=("$1" "$2"); shift 2 ;;
    --out=*|--set=*|--pack=*) sweep_args+=("$1"); shift ;;
    *) sbatch_args+=("$1"); shift ;;
  esac
done
if [[ -n $max_concurrent && ! $max_concurrent =~ ^[1-9][0-9]*$ ]]; then
  echo "submit.sh: --max-concurrent needs a positive integer, got '$max_concurrent'" >&2
  exit 2
fi

skillrun=${SKILLRUN:-}
if [[ -z $skillrun ]]; then
  if [[ -x $here/../../build/bin/skillrun ]]; then skillrun=$here/../../build/bin/skillrun; else skillrun=$(command -v skillrun || true); fi
fi
[[ -n $skillrun ]] || { echo "submit.sh: no skillrun binary (build it, or set SKILLRUN)" >&2; exit 2; }
# The tasks run from the submit directory but maybe on other nodes: pass an absolute path.
skillrun=$(cd "$(dirname "$skillrun")" && pwd)/$(basename "$skillrun")

# Validates the sweep (exit 2 with the path of any mistake) before anything is submitted.
count=$("$skillrun" sweep "$sweep" "${sweep_args[@]}" --list --format count)
if [[ $count -lt 1 ]]; then
  echo "submit.sh: $sweep expands to no runs" >&2
  exit 2
fi
array="0-$((count - 1))${max_concurrent:+%$max_concurrent}"
echo "submit.sh: $sweep: $count array tasks (runs, or packs with --pack N), --array=$array" >&2
SKILLRUN=$skillrun exec sbatch --array="$array" "${sbatch_args[@]}" "$here/skillrun_array.sbatch" "$sweep" "${sweep_args[@]}"
