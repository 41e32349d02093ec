#!/usr/bin/env bash
# The Slurm array script on a real one-node cluster started here by hand (munged, slurmctld,
# slurmd from the Debian packages slurm-wlm and munge; no systemd, no cgroups):
#   1. scripts/slurm/submit.sh sizes the array for configs/sweeps/ci_tiny.json; `sbatch --wait`
#      returns 0 and `skillrun sweep --list` then shows every run done.
#   3. (after 2) the same sweep with --pack 2: two array tasks, each one process training a pack
#      of two runs, with the metrics the runs had one per task.
#   2. USR1 sent to the batch process of a long run, as --signal=B:USR1@N does before the time
#      limit, makes it checkpoint, exit 3 and requeue itself; the requeued task resumes the run
#      to its end.
# Stops the daemons it started and removes its files on exit (kept with SKILLRUN_SLURM_KEEP=1).
#   usage: tests/slurm/run_slurm_test.sh SKILLRUN_BINARY
# Exit 0 pass, 1 fail, 77 skip (Slurm not installed or not root, outside CI; in CI that fails).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
skillrun=$(realpath "${1:?usage: $0 SKILLRUN_BINARY}")

skip() {
  if [[ -n ${CI:-} ]]; then echo "FAIL (CI must run this test): $*" >&2; exit 1; fi
  echo "SKIP: $*" >&2
  exit 77
}
fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "[slurm-test $(date +%T)] $*"; }

for tool in munged slurmctld slurmd sbatch scontrol sinfo squeue scancel; do
  command -v "$tool" >/dev/null || skip "$tool not found (apt-get install slurm-wlm munge)"
done
[[ $(id -u) -eq 0 ]] || skip "slurmd must run as root"

work=$(mktemp -d /tmp/skillrun-slurm.XXXXXX)
daemon_pids=()
munged_pid=""
cleanup() {
  local rc=$?
  for pid in "${daemon_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${daemon_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n $munged_pid ]]; then kill "$munged_pid" 2>/dev/null || true; fi
  if [[ $rc -ne 0 && $rc -ne 77 ]]; then
    for f in "$work"/*.log "$work"/slurm-*.out; do
      [[ -f $f ]] && { echo "---- $f (last 30 lines)"; tail -n 30 "$f"; }
    done
  fi
  if [[ -n ${SKILLRUN_SLURM_KEEP:-} ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---- munge: reuse a working munged, else start one (creating the key if the package did not)
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munged already running: using it"
else
  if [[ ! -s /etc/munge/munge.key ]]; then
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else create-munge-key -f; fi
  fi
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge /var/lib/munge /var/log/munge
  runuser -u munge -- munged || fail "munged did not start (see /var/log/munge/munged.log)"
  munged_pid=$(cat /run/munge/munged.pid)
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || fail "munge credentials do not verify"
  say "started munged (pid $munged_pid)"
fi

# ---- slurm.conf: this node only, on the loopback address (no DNS needed), state under $work,
# ports unlikely to be taken
host=$(hostname -s)
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/state" "$work/spool"
export SLURM_CONF=$work/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=skillrun-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
KillWait=5
$(slurmd -C | sed -n 1p) NodeAddr=127.0.0.1
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D -i -f "$SLURM_CONF" >"$work/slurmctld.stdout.log" 2>&1 &
daemon_pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$work/slurmd.stdout.log" 2>&1 &
daemon_pids+=($!)
state=""
for _ in $(seq 100); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.2
done
[[ $state == idle ]] || fail "node $host is not idle after 20 s (state '$state'): slurmd cannot run here?"
say "cluster up: $(sinfo -h -o '%P %D %T %C')"

cd "$work"
export SKILLRUN=$skillrun OMP_NUM_THREADS=1

# ---- 1. the ci_tiny sweep as an array, all tasks to completion
say "1. submit.sh configs/sweeps/ci_tiny.json --max-concurrent 2 --wait"
timeout 120 "$repo/scripts/slurm/submit.sh" "$repo/configs/sweeps/ci_tiny.json" --max-concurrent 2 \
  --out "$work/ci_tiny" --wait --cpus-per-task=1 --time=5 -o "$work/slurm-%A_%a.out" ||
  fail "the array job did not end with exit 0"
listing=$("$skillrun" sweep "$repo/configs/sweeps/ci_tiny.json" --out "$work/ci_tiny" --list)
echo "$listing"
[[ $(grep -c ' done ' <<<"$listing") -eq 4 ]] || fail "not every run of ci_tiny is done"
[[ $(ls "$work"/slurm-*_{0,1,2,3}.out | wc -l) -eq 4 ]] || fail "expected one log per array task"

# ---- 2. USR1 to the batch process: checkpoint, exit 3, requeue, resume
cat >"$work/long.json" <<EOF
{"name": "long", "base": "$repo/configs/ci/tiny.json",
 "axes": {"train.max_steps": [40000]}, "zip": [{"train.stop_when_learned": [false]}]}
EOF
say "2. a 40000-step run; USR1 to its batch process once it runs"
job=$("$repo/scripts/slurm/submit.sh" "$work/long.json" --out "$work/long" --parsable --cpus-per-task=1 --time=5 \
  -o "$work/slurm-long-%A_%a.out")
job=${job%%;*}
run_dir="$work/long/train.max_steps=40000,train.stop_when_learned=false"
for _ in $(seq 300); do [[ -f $run_dir/summary.json ]] && break; sleep 0.1; done
[[ -f $run_dir/summary.json ]] || fail "the long run did not start"
sleep 1
scancel --batch --signal=USR1 "${job}_0"
# Slurm holds a requeued job back for 120 s (Reason=BeginTime); once it is back in the queue,
# make it eligible now rather than wait.
# (Output is read into a variable first: `cmd | grep -q` fails under pipefail when grep's early
# exit gives cmd a SIGPIPE.)
info=""
for _ in $(seq 100); do
  info=$(scontrol show job "$job")
  [[ $info == *Restarts=1* && $info == *JobState=PENDING* ]] && break
  sleep 0.2
done
[[ $info == *Restarts=1* ]] || fail "the task was not requeued after USR1: $info"
# slurmd refuses a launch whose credential is not newer, to the second, than the kill of the
# previous incarnation ("Job N already killed, do not launch batch job"): wait past it.
sleep 2
scontrol update JobId="${job}_0" StartTime=now
for _ in $(seq 150); do
  info=$(scontrol show job "$job")
  [[ $info =~ JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) ]] && break
  sleep 0.3
done
[[ $info == *JobState=COMPLETED* ]] || fail "the requeued task did not complete within 45 s: $info"
cat "$work"/slurm-long-*.out
grep -q "restart 1" "$work"/slurm-long-*.out || fail "the task was not requeued"
grep -qF "] resume " "$work"/slurm-long-*.out || fail "the requeued task did not resume the run"
listing=$("$skillrun" sweep "$work/long.json" --out "$work/long" --list)
echo "$listing"
grep -q ' done .*max_steps, 40000 steps' <<<"$listing" || fail "the long run did not finish after its requeue"

# ---- 3. one pack per array task
say "3. submit.sh configs/sweeps/ci_tiny.json --pack 2 --wait"
count=$("$skillrun" sweep "$repo/configs/sweeps/ci_tiny.json" --pack 2 --list --format count)
[[ $count -eq 2 ]] || fail "ci_tiny with --pack 2 should be 2 packs (one per width), --list --format count says $count"
timeout 120 "$repo/scripts/slurm/submit.sh" "$repo/configs/sweeps/ci_tiny.json" --pack 2 \
  --out "$work/packed" --wait --cpus-per-task=1 --time=5 -o "$work/slurm-packed-%A_%a.out" ||
  fail "the packed array job did not end with exit 0"
[[ $(ls "$work"/slurm-packed-*_{0,1}.out | wc -l) -eq 2 ]] || fail "expected one log per pack"
listing=$("$skillrun" sweep "$repo/configs/sweeps/ci_tiny.json" --out "$work/packed" --pack 2 --list)
echo "$listing"
[[ $(grep -c ' done ' <<<"$listing") -eq 4 ]] || fail "not every run of the packed ci_tiny is done"
for run in "$work"/ci_tiny/*/; do
  name=$(basename "$run")
  cmp -s <(cut -d, -f1,3- "$run/metrics.csv") <(cut -d, -f1,3- "$work/packed/$name/metrics.csv") ||
    fail "$name: its metrics trained in a pack differ from those trained alone"
done
say "PASS"
