#!/usr/bin/env python3
"""Every skillrun command in the README and docs/ runs as written, in its dry-run form.

Extracts the command lines of the ```sh blocks of README.md and docs/*.md (`skillrun ...`,
`build/bin/skillrun ...`, `scripts/slurm/submit.sh ...`; usage lines with [OPTIONAL] or
UPPERCASE placeholders are skipped) and runs each, from a scratch directory that sees the
repository's configs/ and scripts/, as a form that checks everything but does not train for
long:
  run CONFIG ARGS       -> validate CONFIG with the same --set/--device (the config must resolve)
  validate, devices     -> as written
  bench CONFIG ARGS     -> as written plus --device cpu --steps 1 --warmup 0
  sweep ... ARGS        -> as written plus --list --format count (expands, writes nothing)
  analyze DIR ARGS      -> as written, DIR replaced by a directory of two short real runs
  status DIR            -> as written, DIR replaced likewise
  submit.sh ARGS        -> as written, with SKILLRUN set and a stand-in sbatch that records its
                           arguments (the array size must be a positive count)
Exit 0 when all pass, 1 with the failing commands listed.

Usage: python3 tests/docs/check_doc_commands.py SKILLRUN_BINARY
"""
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def documented_commands():
    """(file, line) of every command line in the sh blocks of the README and docs/."""
    files = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
    found = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S):
            for line in block.splitlines():
                line = line.strip()
                if re.match(r"^(build/bin/)?skillrun\s", line) or line.startswith("scripts/slurm/submit.sh"):
                    found.append((os.path.relpath(path, REPO), line))
    return found


def is_usage_line(words):
    """A synopsis rather than a command: [OPTIONAL] parts or placeholders such as SWEEP.json."""
    return any(w.startswith("[") or re.fullmatch(r"[A-Z][A-Z_]*(\.json)?", w) for w in words)


def dry_run(words, binary, fixture, fake_bin):
    """The argv (and extra environment) of the dry-run form of a documented command."""
    if words[0] == "scripts/slurm/submit.sh":
        return [os.path.join(REPO, words[0])] + words[1:], {"SKILLRUN": binary,
                                                              "PATH": fake_bin + os.pathsep + os.environ["PATH"]}
    args = words[1:]
    command = args[0] if args else ""
    if command == "run":
        # run's own options go; anything else (a typo included) goes on to validate, which
        # refuses what it does not know.
        kept, i = [], 1
        while i < len(args):
            if args[i] in ("--out", "--log-level"):
                i += 2
            elif args[i] in ("--no-progress", "--resume"):
                i += 1
            else:
                kept.append(args[i])
                i += 1
        return [binary, "validate"] + kept, {}
    if command == "bench":
        return [binary] + args + ["--device", "cpu", "--steps", "1", "--warmup", "0"], {}
    if command == "sweep":
        return [binary] + args + ["--list", "--format", "count"], {}
    if command in ("analyze", "status"):
        positional = [i for i, a in enumerate(args) if i > 0 and not a.startswith("-")
                      and not (i > 0 and args[i - 1] in ("--out", "--tau", "--p", "--group-by", "--select-lr", "--format",
                                                         "--log-level"))]
        replaced = list(args)
        for i in positional:
            replaced[i] = fixture
        return [binary] + replaced, {}
    return [binary] + args, {}


def main(argv):
    if len(argv) != 1:
        print(__doc__.splitlines()[-1], file=sys.stderr)
        return 2
    binary = os.path.abspath(argv[0])
    commands = documented_commands()
    if len(commands) < 10:
        print(f"only {len(commands)} documented commands found: the extraction is broken", file=sys.stderr)
        return 1
    failures, ran = [], 0
    with tempfile.TemporaryDirectory(prefix="skillrun-doc-commands-") as scratch:
        for name in ("configs", "scripts"):
            os.symlink(os.path.join(REPO, name), os.path.join(scratch, name))
        # A stand-in sbatch that records its arguments.
        fake_bin = os.path.join(scratch, "fake-bin")
        os.makedirs(fake_bin)
        with open(os.path.join(fake_bin, "sbatch"), "w") as f:
            f.write('#!/bin/sh\necho "$@" >> "$SBATCH_LOG"\necho 4242\n')
        os.chmod(os.path.join(fake_bin, "sbatch"), 0o755)
        sbatch_log = os.path.join(scratch, "sbatch.log")
        # Two short real runs for analyze and status.
        fixture = os.path.join(scratch, "fixture")
        env = dict(os.environ, OMP_NUM_THREADS="1", SBATCH_LOG=sbatch_log)
        made = subprocess.run([binary, "sweep", "configs/sweeps/ci_tiny.json", "--out", fixture, "--index", "0",
                               "--set", "train.max_steps=40"], cwd=scratch, env=env, capture_output=True, text=True)
        made2 = subprocess.run([binary, "sweep", "configs/sweeps/ci_tiny.json", "--out", fixture, "--index", "2",
                                "--set", "train.max_steps=40"], cwd=scratch, env=env, capture_output=True, text=True)
        if made.returncode != 0 or made2.returncode != 0:
            print(f"cannot make the fixture runs:\n{made.stderr}{made2.stderr}", file=sys.stderr)
            return 1
        for source, line in commands:
            words = shlex.split(line, comments=True)
            if not words or is_usage_line(words):
                continue
            argv_, extra = dry_run(words, binary, fixture, fake_bin)
            if os.path.exists(sbatch_log):
                os.remove(sbatch_log)
            ran += 1
            problem = None
            try:
                result = subprocess.run(argv_, cwd=scratch, env=dict(env, **extra), capture_output=True, text=True,
                                        timeout=300)
            except subprocess.TimeoutExpired:
                result, problem = None, "did not finish within 300 s"
            if problem:
                pass
            elif result.returncode != 0:
                problem = f"exit {result.returncode}: {(result.stderr or result.stdout).strip()[-600:]}"
            elif words[0] == "scripts/slurm/submit.sh":
                recorded = open(sbatch_log).read() if os.path.exists(sbatch_log) else ""
                if not re.search(r"--array=0-\d+", recorded):
                    problem = f"sbatch was not called with an --array: {recorded!r}"
            elif "--format" in argv_ and argv_[-1] == "count" and not result.stdout.strip().isdigit():
                problem = f"--list --format count printed {result.stdout.strip()!r}"
            status = "ok  " if problem is None else "FAIL"
            print(f"{status} {source}: {line}")
            if problem:
                print(f"     as: {shlex.join(argv_)}\n     {problem}")
                failures.append((source, line))
    print(f"{ran} documented commands run, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
