#!/usr/bin/env bash
# A whole GPU check in one call of at most 8 minutes (issue 11): GPU time comes in short loans,
# so every stage that the first H200 session (bench/results/2026-11-28-h200.md) found worth
# running is here, ordered by value, each under its own `timeout`, so that a hung or slow stage
# costs its budget and no more and the stages after it still run.
#
#   OUT=DIR bash bench/gpu_session.sh                        # a GPU machine with a build
#   bash .gpu/on-device.sh 'bash bench/gpu_session.sh'        # one carried by gpu-bundle.sh
#
# Environment: OUT (where the files go; default gpu-session-<UTC date>), BUILD_DIR (default
# build), CPU_TK (CPU T_k of fig4 width 250; default bench/results/cpu_fig4_w250_Tk.csv), STAGES
# (the stages to run, e.g. STAGES='devices fig4' to redo one; default all, in the order below).
#
# Stages and their budgets in seconds (the default ones sum to 480: budgets are caps, and a
# stage whose budget no longer fits in 480 - 15 s is skipped); in brackets what the stage took
# on the H200 on 2026-11-28, where it ran in this form (packs and grid4: never run on a GPU yet):
#   1 devices       15  `skillrun devices`; stops the script (exit 77) unless auto picks cuda  (2 s)
#   2 gtests        45  the GPU gtests: conformance, end to end, step graphs, errors, registry (3 s);
#                       the fused layer products first (Backends/LinearLayers.*, the first stage
#                       that runs cuBLASLt epilogues) with CUBLASLT_LOG_LEVEL=5 into cublaslt.log:
#                       what the heuristic offered per problem; their "[ fact ]" lines (each
#                       epilogue fused or refused, the mask bit at 0, -0 and NaN) go to the summary
#   3 sanitizers   105  memcheck 20, racecheck 40 + 15 (Newton-Schulz kernels), synccheck 10 on
#                       the CUDA gtests; memcheck and initcheck 8 each on a 300-step run    (62 s)
#   4 bench        100  bench/gpu_vs_pytorch.sh: skillrun vs PyTorch eager, msign 2000x150     (65 s)
#   5 packs         50  `skillrun bench --pack R` (issue 14): fig4 width 250 muon/adam/nmd as packs
#                       of 27 and fig2 muon as a pack of 3, each beside one run alone; the
#                       targets: >= 10x aggregate run-steps/s for fig4, >= 2.5x for fig2
#   5 fig4          60  fig4 width 250, nmd/adam/muon x seeds 0-2, T_k against the CPU; graph
#                       vs eager and run-to-run determinism of adam seed 0; per run 30 s at most
#                       (seed 0 took nmd 7.6 s, adam 0.5 s, muon 0.4 s of run time)
#   6 fig2          85  fig2 nmd/adam/muon, seed 0, each capped (SIGINT, so it checkpoints):
#                       muon 15 s, adam 30 s (all 50 learned at 8 650 and 28 550 steps), nmd 25 s
#                       (with a 35 s cap for each: 67 s)
#   7 analyze       20  `skillrun analyze` of the fig4 and fig2 runs
#     pack          15  tar.gz of the run directories (no checkpoints), the summary
#     grid4        200  not in the default list (STAGES='devices grid4'): the whole Fig. 4 grid,
#                       configs/sweeps/paper_fig4.json, 135 runs, as a packed sweep (--pack auto);
#                       target <= 3 minutes of wall time
#     ncu          150  not in the default list (STAGES='devices ncu'): per-kernel times (ncu
#                       --clock-control none) of one eager fig2 Muon step and of one eager step of
#                       a fig4 width-250 pack of 4 (issue 15's profile), to ncu-fig2-muon.txt and
#                       ncu-fig4-pack4.txt in OUT
#
# Files written to OUT (8, at most 9): session.log (every command and its output), summary.txt
# (also printed last), cublaslt.log (cuBLASLt's own log of the fused-product tests),
# bench-gpu_vs_pytorch.md, tables.md (T_k tables), analysis.tar.gz, runs-fig4-w250.tar.gz,
# runs-fig2.tar.gz.
#
# Exit: 0 every stage passed; 1 a stage failed or ran out of its budget (summary.txt says which);
# 2 no skillrun binary in BUILD_DIR; 77 no usable GPU: the script stops at once and writes
# nothing (77 is the "skipped" code ctest and the Slurm test already use).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
self=bench/gpu_session.sh

# ---- one stage, run as a child of `timeout` (bash "$self" __stage NAME) -------------------------
# Timeouts inside a stage use --foreground: they then stay in the stage's process group, so the
# stage's own timeout, which signals that group, stops them and their runs too.
stage_body() {
  case $1 in
    devices)
      "$BIN" devices
      "$BIN" devices | grep -q '^--device auto picks: cuda' ;;
    gtests)
      # Backends/* includes the cpu instances: they are the reference the CUDA ones are read against.
      # The fused layer products first, with cuBLASLt's log at level 5 (errors, performance trace and
      # hints, heuristics trace, API trace: docs/CUDA.md, "Fused epilogues") in cublaslt.log, so that
      # the first GPU run records what the heuristic offered for each problem, fused or refused.
      local rc=0
      run_logged env CUBLASLT_LOG_LEVEL=5 CUBLASLT_LOG_FILE="$OUT/cublaslt.log" "$TESTS" \
        --gtest_filter='Backends/LinearLayers.*' || rc=1
      run_logged "$TESTS" \
        --gtest_filter='Backends/*:EndToEnd.*:StepGraphs.*:CudaErrors.*:Registry.*:PacksOnCuda.*:-Backends/LinearLayers.*' || rc=1
      return $rc ;;
    sanitizers)
      local cs rc=0
      cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
      # The deliberate 1 PiB allocation of OutOfMemoryNamesTheByteCount is reported by memcheck
      # as an error (2026-11-28), so memcheck leaves it out.
      run_logged timeout --foreground 20 "$cs" --tool memcheck --leak-check full --error-exitcode 9 "$TESTS" \
        --gtest_filter='Backends/*/cuda:Backends/*/cuda_tf32:StepGraphs.*:EndToEnd.Fig4*:CudaErrors.*:-CudaErrors.OutOfMemory*:Backends/BackendOps.NewtonSchulzKernelsOnThePaperShapes*' || rc=1
      # Shared-memory users: column sums, block sums, cross-entropy, the task_sums tiles.
      run_logged timeout --foreground 40 "$cs" --tool racecheck --error-exitcode 9 "$TESTS" \
        --gtest_filter='Backends/BackendOps.*Sum*/cuda:Backends/BackendOps.CrossEntropy*/cuda' || rc=1
      # The Newton-Schulz kernels: shared-memory tiles, and the Gram's last-block chunk sums
      # (a __threadfence, a counter, reads of the other blocks' partial tiles); small shapes.
      run_logged timeout --foreground 15 "$cs" --tool racecheck --error-exitcode 9 "$TESTS" \
        --gtest_filter='Backends/BackendOps.NewtonSchulzKernelsMatchTheirHostModel*/cuda' || rc=1
      # task_sums has __syncthreads() inside loops with block-uniform bounds.
      run_logged timeout --foreground 10 "$cs" --tool synccheck --error-exitcode 9 "$TESTS" \
        --gtest_filter='Backends/BackendOps.TaskSums*/cuda' || rc=1
      for tool in memcheck initcheck; do
        run_logged timeout --foreground 8 "$cs" --tool "$tool" --error-exitcode 9 "$BIN" run configs/ci/tiny.json --device cuda \
          --set train.max_steps=300 --out "$WORK/sanitizer-$tool" --no-progress || rc=1
      done
      return $rc ;;
    bench)
      bash bench/gpu_vs_pytorch.sh "$BUILD_DIR" "$OUT/bench-gpu_vs_pytorch.md" ;;
    packs)
      local opt rc=0
      for opt in muon adam nmd; do
        run_logged timeout --foreground 12 "$BIN" bench "configs/paper/fig4_${opt}_w250.json" --device cuda \
          --pack 27 --steps 50 --warmup 3 || rc=1
      done
      run_logged timeout --foreground 12 "$BIN" bench configs/paper/fig2_muon.json --device cuda --pack 3 \
        --steps 20 --warmup 3 || rc=1
      return $rc ;;
    ncu)
      local tool rc=0
      tool=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
      # bench's timed steps are eager: one warm-up step, one timed step, every kernel listed.
      run_logged timeout --foreground 70 "$tool" --clock-control none --print-summary per-kernel \
        --metrics gpu__time_duration.sum "$BIN" bench configs/paper/fig2_muon.json --device cuda --steps 1 \
        --warmup 1 > "$OUT/ncu-fig2-muon.txt" 2>&1 || rc=1
      run_logged timeout --foreground 70 "$tool" --clock-control none --print-summary per-kernel \
        --metrics gpu__time_duration.sum "$BIN" bench configs/paper/fig4_muon_w250.json --device cuda --pack 4 \
        --steps 1 --warmup 1 > "$OUT/ncu-fig4-pack4.txt" 2>&1 || rc=1
      return $rc ;;
    grid4)
      local t0=$SECONDS
      run_logged timeout --foreground -s INT -k 10 185 "$BIN" sweep configs/sweeps/paper_fig4.json --set device=cuda \
        --pack auto --out "$WORK/grid4" || return 1
      echo "grid4: the Fig. 4 grid (135 runs) took $((SECONDS - t0)) s of wall time as a packed sweep" ;;
    fig4)
      local opt seed rc=0
      for opt in nmd adam muon; do
        for seed in 0 1 2; do
          run_logged timeout --foreground -s INT -k 5 30 "$BIN" run "configs/paper/fig4_${opt}_w250.json" --device cuda \
            --set seed=$seed --out "$WORK/fig4/$opt-w250-s$seed" --no-progress || rc=1
        done
      done
      # Determinism: adam seed 0 again with the graph and once eager; metrics.csv without its
      # wall-clock column must be identical (docs/ARCHITECTURE.md, "Determinism").
      run_logged "$BIN" run configs/paper/fig4_adam_w250.json --device cuda --out "$WORK/det/graph" --no-progress || rc=1
      run_logged env SKILLRUN_CUDA_GRAPH=0 "$BIN" run configs/paper/fig4_adam_w250.json --device cuda \
        --out "$WORK/det/eager" --no-progress || rc=1
      local ref d
      ref=$(cut -d, -f2 --complement "$WORK/fig4/adam-w250-s0/metrics.csv" | md5sum)
      for d in graph eager; do
        if [[ $(cut -d, -f2 --complement "$WORK/det/$d/metrics.csv" | md5sum) == "$ref" ]]; then
          echo "determinism: adam w250 seed 0, $d run: metrics.csv identical to the first run (wall_s aside)"
        else
          echo "determinism: adam w250 seed 0, $d run: metrics.csv DIFFERS from the first run"; rc=1
        fi
      done
      return $rc ;;
    fig2)
      local opt cap rc=0
      for opt in muon adam nmd; do
        case $opt in muon) cap=15 ;; adam) cap=30 ;; nmd) cap=25 ;; esac
        # A capped run ends "interrupted" (exit 3): expected for nmd, which needs ~2M steps.
        run_logged timeout --foreground -s INT -k 10 $cap "$BIN" run "configs/paper/fig2_$opt.json" --device cuda \
          --out "$WORK/fig2/$opt" --no-progress
        [[ $? == 0 || $opt == nmd ]] || rc=1
      done
      return $rc ;;
    analyze)
      # One analysis per figure: the best-lr and per-width tables must not mix fig2 with fig4.
      local fig rc=0
      for fig in fig4 fig2; do
        [[ -d $WORK/$fig ]] || continue
        run_logged "$BIN" analyze "$WORK/$fig" --out "$WORK/analysis/$fig" --format md || rc=1
      done
      return $rc ;;
    *) echo "unknown stage $1" >&2; return 2 ;;
  esac
}

run_logged() {
  echo "\$ $*"
  "$@"
  local rc=$?
  echo "(exit $rc)"
  return $rc
}

# T_k per run from summary.json; for fig4 beside the CPU's from $CPU_TK (rows it lacks: "-").
tk_table() {
  python3 - "$1" "$2" "$CPU_TK" <<'EOF'
import csv, json, os, sys
fig, root, cpu_file = sys.argv[1:4]
cpu = {}
if fig == "fig4" and os.path.isfile(cpu_file):
    with open(cpu_file) as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            cpu[(r["optimizer"], r["seed"])] = r
def fmt(v): return "-" if v in (None, "") else str(v)
print(f"\n## {fig}: T_k (first eval step with loss_k <= tau), GPU" + (" vs CPU" if cpu else "") + "\n")
if fig == "fig4":
    if not cpu: print(f"(no CPU T_k: {cpu_file} missing; GPU only)\n")
    print("| run | GPU status | GPU T_k | GPU T(1) | GPU s | CPU T_k | CPU T(1) |\n|---|---|---|---|---|---|---|")
else:
    print("| run | status | steps | learned | T(1) | s |\n|---|---|---|---|---|---|")
for name in sorted(os.listdir(root)):
    try:
        s = json.load(open(os.path.join(root, name, "summary.json")))
    except (OSError, ValueError):
        print(f"| {name} | no summary.json | | | | |"); continue
    tk = s.get("T_k") or []
    t1 = max(tk) if tk and all(t is not None for t in tk) else None
    if fig == "fig4":
        opt, _, seed = name.split("-")
        c = cpu.get((opt, seed.lstrip("s")))
        ctk = " ".join(fmt(c[f"T{k}"]) for k in range(1, 6)) if c else "-"
        print(f"| {name} | {s.get('status')} | {' '.join(fmt(t) for t in tk)} | {fmt(t1)} | "
              f"{s.get('seconds', 0):.1f} | {ctk} | {fmt(c['T_all']) if c else '-'} |")
    else:
        learned = sum(t is not None for t in tk)
        print(f"| {name} | {s.get('status')} | {s.get('steps')} | {learned} of {len(tk)} | {fmt(t1)} | "
              f"{s.get('seconds', 0):.1f} |")
EOF
}

# One line per bench section: skillrun's graph-replay step (or msign median) beside PyTorch's.
bench_lines() {
  [[ -f $1 ]] || return 0
  awk '/^## /{sub(/^## /, ""); sec=$0}
       /step \(graph replay\)/{ours=$4 * 1000}
       /^msign ns5/{ours=$6}
       /us_per_step_median/{match($0, /"us_per_step_median": [0-9.]+/); pt=substr($0, RSTART+22, RLENGTH-22)}
       /ns5_us_median_host_synced/{match($0, /"ns5_us_median_host_synced": [0-9.]+/); pt=substr($0, RSTART+29, RLENGTH-29)}
       /^```$/ && sec != "" && ours != "" {printf "bench %s: skillrun %.0f us, pytorch %.0f us\n", sec, ours, pt; ours=""; pt=""}' "$1"
}

if [[ ${1:-} == __stage ]]; then
  stage_body "$2"
  exit $?
fi

# ---- the session ----------------------------------------------------------------------------
BUILD_DIR=${BUILD_DIR:-build}
BIN=$BUILD_DIR/bin/skillrun
TESTS=$BUILD_DIR/tests/skillrun_tests
[[ -x $TESTS ]] || TESTS=$BUILD_DIR/bin/skillrun_tests
CPU_TK=${CPU_TK:-bench/results/cpu_fig4_w250_Tk.csv}
STAGES=${STAGES:-devices gtests sanitizers bench packs fig4 fig2 analyze}
# Without a GPU stop before anything is written: the session exists to spend GPU time.
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L 2> /dev/null | grep -q '^GPU '; then
  echo "gpu_session: no GPU on this machine (nvidia-smi missing or lists none): nothing run, exit 77" >&2
  exit 77
fi
[[ -x $BIN ]] || { echo "gpu_session: no $BIN (set BUILD_DIR, or build: bash scripts/setup.sh)" >&2; exit 2; }

OUT=${OUT:-gpu-session-$(date -u +%Y%m%dT%H%MZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export BUILD_DIR BIN TESTS CPU_TK OUT WORK
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
log=$OUT/session.log
summary=()
failed=0
started=$SECONDS

{
  echo "# skillrun GPU session, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit $(git rev-parse --short=12 HEAD 2> /dev/null || echo unknown); $("$BIN" --version 2>&1)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  echo "$(nproc) cores; $(grep -m1 PRETTY_NAME /etc/os-release 2> /dev/null)"
} > "$log" 2>&1
echo "# $(date -u +%Y-%m-%dT%H:%MZ) GPU session; tables" > "$OUT/tables.md"

stage() {  # stage NAME BUDGET_S
  local t0=$SECONDS rc
  # The 8 minutes are a hard limit: a stage whose budget no longer fits (kill grace periods can
  # add up) is skipped, keeping 15 s to pack and summarise.
  if ((SECONDS - started + $2 > 480 - 15)); then
    summary+=("$(printf '%-11s %-18s %4d s of %d' "$1" "SKIPPED (no time)" 0 "$2")")
    failed=1
    return 1
  fi
  echo -e "\n=== [t+$((SECONDS - started))s] $1 (budget $2 s)" >> "$log"
  timeout -k 10 "$2" bash "$self" __stage "$1" >> "$log" 2>&1
  rc=$?
  local verdict=ok
  if ((rc == 124 || rc == 137)); then verdict="OUT OF BUDGET"; elif ((rc != 0)); then verdict="FAILED (exit $rc)"; fi
  [[ $verdict == ok ]] || failed=1
  summary+=("$(printf '%-11s %-18s %4d s of %d' "$1" "$verdict" $((SECONDS - t0)) "$2")")
  echo "=== $1: $verdict" >> "$log"
  return $rc
}

wanted() { [[ " $STAGES " == *" $1 "* ]]; }
if wanted devices && ! stage devices 15; then
  echo "gpu_session: skillrun finds no usable CUDA device (see $log): stopping, exit 77" >&2
  exit 77
fi
wanted gtests && stage gtests 45
wanted sanitizers && stage sanitizers 105
wanted bench && stage bench 100
wanted packs && stage packs 50
wanted fig4 && stage fig4 60
wanted fig2 && stage fig2 85
wanted analyze && stage analyze 20
wanted grid4 && stage grid4 200
wanted ncu && stage ncu 150

# The T_k tables from whatever summary.json files exist, also after a stage ran out of budget.
[[ -d $WORK/fig4 ]] && tk_table fig4 "$WORK/fig4" >> "$OUT/tables.md"
[[ -d $WORK/fig2 ]] && tk_table fig2 "$WORK/fig2" >> "$OUT/tables.md"
# Run directories without checkpoints (they are large and only resume a run).
[[ -d $WORK/fig4 ]] && tar czf "$OUT/runs-fig4-w250.tar.gz" -C "$WORK" --exclude=checkpoint fig4 det 2>> "$log"
[[ -d $WORK/fig2 ]] && tar czf "$OUT/runs-fig2.tar.gz" -C "$WORK" --exclude=checkpoint fig2 2>> "$log"
[[ -d $WORK/analysis ]] && tar czf "$OUT/analysis.tar.gz" -C "$WORK" analysis 2>> "$log"

{
  echo "skillrun GPU session: $gpu, commit $(git rev-parse --short=12 HEAD 2> /dev/null || echo unknown)"
  printf '%s\n' "${summary[@]}"
  # Test totals, failed tests and sanitizer verdicts, each with the stage it came from.
  awk '/^=== \[t\+/ {stage = $3}
       /^\[  (PASSED|SKIPPED|FAILED) +\] [0-9]+ tests?[,.]/ || /^\[  FAILED  \] .* \([0-9]+ ms\)$/ ||
       /ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY|^determinism:|^grid4:/ {print stage ": " $0}
       /^\[ fact +\]|cuBLASLt refused|^cuBLASLt: / {print stage ": " $0}
       /^skillrun bench --pack/ {config = $5} /^aggregate speed-up/ {print stage ": " config ": " $0}' "$log"
  bench_lines "$OUT/bench-gpu_vs_pytorch.md"
  grep -E '^\| (fig4|nmd|adam|muon)' "$OUT/tables.md"
  echo "total $((SECONDS - started)) s; files in $OUT: $(find "$OUT" -maxdepth 1 -type f -printf '%f ')"
  ((failed)) && echo "RESULT: some stage failed or ran out of budget (exit 1)" || echo "RESULT: every stage ok"
} > "$OUT/summary.txt"
cat "$OUT/summary.txt"
exit $failed
