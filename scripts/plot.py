#!/usr/bin/env python3
"""Figures for a `skillrun analyze --out DIR` directory: the paper's Fig. 2, 3, 4 and 5.

Reads DIR/analysis.json and the run directories it names (their metrics.csv), and writes
PNG (150 dpi) and vector SVG and PDF files. For sparse_parity runs, one curve set per entry of
analysis.json "optimizers" (an optimizer, or a variant of one: its "label" names it), each at
its best lr:
  fig2_subtask_losses  per-subtask loss curves, one panel per entry (its widest runs)
  fig2_overlay         the same curves on one axis (colour = subtask, line style = entry), or,
                       with more than 8 curves, small multiples: one panel per subtask
  fig3_coverage_sal    p-coverage time T(p, τ) and SAL(p, τ) at the distinct ⌈p·n⌉/n
  fig4_width_grid      width x entry grid of per-subtask loss curves (only with two or more
                       widths: with one it would repeat fig2)
  spectra_ranks        stable rank and spectral entropy of each weight and update against
                       step, one line per entry, its mean T_k marked (runs with spectra.csv)
  spectra_values       normalised singular values sigma_i / sigma_max (log) of the first
                       weight and its update at step 0, T_first, T(1) and the end, per entry
  atsr_vs_weight_decay ATSR = T(1)/T_first (linear) against optimizer.weight_decay, one line per
                       weight_decay_mode (entries that differ in weight_decay)
Step axes (--steps): log (the default when a figure compares two or more entries), linear on
a shared range (the default for one entry), or panel (linear, each panel its own range, the
shared range named under it). A curve with several seeds is their geometric mean with a
min-max band; a curve of one run names its seed. Subtask k has the same colour in every figure
("subtask k": task.k is the parity's bit count). For icl_linreg runs (analysis.json "icl"):
  fig5                 optimizer x sigma_w grid of relative loss against step, one curve per
                       sigma_x (colour on a log scale of kappa_x), each at its best lr
Needs python3 and matplotlib only.

Usage: python3 scripts/plot.py ANALYSIS_DIR [--out DIR] [--steps auto|log|linear|panel]
"""
import argparse
import csv
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib import cm, colors  # noqa: E402

FORMATS = ("png", "svg", "pdf")
LINE_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# Okabe & Ito's colour-blind-safe set without its yellow (too faint on white paper), the darkest
# first; with more subtasks than colours, viridis without its pale top (above 0.8).
QUALITATIVE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
SEQUENTIAL_TOP = 0.8
BAND_ALPHA = 0.18  # the min-max band across seeds
PARTIAL_ALPHA = 0.4  # a mean curve where some seeds have already stopped
MAX_OVERLAY_LINES = 8  # more curves than this on one axis: fig2_overlay becomes small multiples
MAX_SMALL_MULTIPLES = 12  # subtask panels at most (evenly spread over the subtasks)
BAND_CAPTION = "line: geometric mean over seeds, band: min–max (faded where some seeds had stopped)"
plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
                     "xtick.labelsize": 8, "ytick.labelsize": 8, "svg.fonttype": "none", "pdf.fonttype": 42})
LOSS_FLOOR_BITS = 1e-5  # losses are plotted on a log axis; clip exact zeros
# Config keys that may differ between the seeds of one curve; any other difference means the
# runs are different variants (an older `analyze` pooled them), which the figure then says.
SEED_KEYS = {"seed", "name", "device", "train.checkpoint_every", "train.checkpoint_seconds"}


def read_metrics(run_dir):
    """(steps, per-subtask losses [k][row]) from metrics.csv; a partial last row is skipped."""
    path = os.path.join(run_dir, "metrics.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    header = rows[0]
    loss_cols = [i for i, h in enumerate(header) if h.startswith("loss_")]
    steps, losses = [], [[] for _ in loss_cols]
    for row in rows[1:]:
        if len(row) != len(header):
            continue  # a killed run's last line
        try:
            values = [float(row[i]) for i in loss_cols]
            step = int(row[0])
        except ValueError:
            continue
        steps.append(step)
        for k, v in enumerate(values):
            losses[k].append(max(v, LOSS_FLOOR_BITS) if math.isfinite(v) else float("nan"))
    return steps, losses


def subtask_colour(k, n_tasks):
    """One colour per subtask index, the same in every figure with that many subtasks."""
    if n_tasks <= len(QUALITATIVE):
        return QUALITATIVE[k % len(QUALITATIVE)]
    return cm.viridis(SEQUENTIAL_TOP * k / (n_tasks - 1))


def entry_colour(i):
    return QUALITATIVE[i % len(QUALITATIVE)]


def entry_style(i):
    return LINE_STYLES[i % len(LINE_STYLES)]


def config_value(run, dotted):
    node = run["config"]
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def lr_label(lr):
    return "?" if lr is None else f"{lr:g}"


def entry_label(entry):
    """An analysis.json "optimizers" entry's display name: its "label" (a variant's name), else
    "<optimizer> (lr X)"."""
    return entry.get("label") or f"{entry.get('optimizer', '?')} (lr {lr_label(entry.get('lr'))})"


def run_seed(run):
    """A run's seed: icl runs carry it, sparse-parity runs have it in their config."""
    if "seed" in run:
        return run["seed"]
    return config_value(run, "seed") if "config" in run else None


def entry_widths(analysis, entry):
    """The widths of an entry's runs: its "widths", else read from the runs' configs."""
    widths = entry.get("widths")
    if widths is None:
        widths = [config_value(analysis["runs"][i], "model.width") for i in entry["runs"]]
    return {w for w in widths if w is not None}


def pick_runs(analysis, entry, width=None):
    """The runs drawn for an entry (at its best lr): those of the given width, else of the
    widest; every seed, by seed."""
    candidates = [analysis["runs"][i] for i in entry["runs"]]
    if width is not None:
        candidates = [r for r in candidates if config_value(r, "model.width") == width]
    elif candidates:
        widest = max((config_value(r, "model.width") or 0) for r in candidates)
        candidates = [r for r in candidates if (config_value(r, "model.width") or 0) == widest]
    return sorted(candidates, key=lambda r: (run_seed(r) is None, run_seed(r) or 0, r["dir"]))


def flatten(node, prefix=""):
    if not isinstance(node, dict):
        return {prefix: json.dumps(node, sort_keys=True)}
    flat = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def differing_keys(runs):
    """Config keys, other than the seed's, in which the runs differ (they are then not seeds)."""
    flats = [flatten(r.get("config") or {}) for r in runs]
    keys = set().union(*flats) if flats else set()
    return sorted(k for k in keys if k not in SEED_KEYS and len({f.get(k) for f in flats}) > 1)


def seeds_note(runs):
    """Which runs a curve is: "seed 0", or "3 seeds (0, 1, 2)"."""
    seeds = [run_seed(r) for r in runs]
    if len(runs) == 1:
        return f"seed {seeds[0]}" if seeds[0] is not None else "one run"
    return f"{len(runs)} seeds ({', '.join(str(s) for s in seeds)})"


WARNED = set()  # (label, keys) already warned about: each once, whichever figure meets it first


def check_seeds(runs, label):
    """The note for runs that differ in more than the seed (warned about on stderr), else ""."""
    keys = differing_keys(runs)
    if not keys:
        return ""
    if (label, tuple(keys)) not in WARNED:
        WARNED.add((label, tuple(keys)))
        print(f"plot.py: the runs drawn for {label} differ in {', '.join(keys)}: they are drawn as one "
              f"mean and band; analyze them as separate variants", file=sys.stderr)
    return f"; runs differ in {', '.join(keys)}"


def subtask_label(k, p_k):
    return f"subtask {k} (p = {p_k[k]:.3f})" if k < len(p_k) else f"subtask {k}"


def seed_band(curves):
    """Across seeds, per step (the union of the seeds' steps): the geometric mean, minimum and
    maximum of the finite positive values there, and how many seeds have one."""
    by_step = {}
    for steps, values in curves:
        for s, v in zip(steps, values):
            if math.isfinite(v) and v > 0:
                by_step.setdefault(s, []).append(v)
    steps = sorted(by_step)
    return {"steps": steps,
            "mean": [math.exp(sum(math.log(v) for v in by_step[s]) / len(by_step[s])) for s in steps],
            "lo": [min(by_step[s]) for s in steps],
            "hi": [max(by_step[s]) for s in steps],
            "count": [len(by_step[s]) for s in steps]}


def draw_band(ax, band, n_runs, colour, ls="-", label=None, log_x=False, lw=1.2):
    """One curve: with several seeds their mean (faded where fewer than n_runs have a value)
    over a min-max band; with one, the run itself. On a log step axis step 0 is left out."""
    keep = [i for i, s in enumerate(band["steps"]) if s > 0 or not log_x]
    steps = [band["steps"][i] for i in keep]
    mean = [band["mean"][i] for i in keep]
    if n_runs <= 1:
        ax.plot(steps, mean, color=colour, ls=ls, lw=lw, label=label)
        return
    ax.fill_between(steps, [band["lo"][i] for i in keep], [band["hi"][i] for i in keep], color=colour,
                    alpha=BAND_ALPHA, lw=0)
    ax.plot(steps, mean, color=colour, ls=ls, lw=lw, alpha=PARTIAL_ALPHA)
    full = [m if band["count"][i] >= n_runs else float("nan") for m, i in zip(mean, keep)]
    ax.plot(steps, full, color=colour, ls=ls, lw=lw, label=label)


def read_loss_curves(runs):
    """([(steps, losses [k][row])] of the runs whose metrics.csv reads, [why each other did not])."""
    curves, errors = [], []
    for run in runs:
        try:
            curves.append(read_metrics(run["dir"]))
        except OSError as e:
            errors.append(f"cannot read {run['dir']}/metrics.csv: {e.strerror}")
    return curves, errors


def mean_acquisition(runs, k):
    """The mean T_k over the runs, or None when a run never reached it."""
    times = [r["T_k"][k] if k < len(r["T_k"]) else None for r in runs]
    return None if not times or any(t is None for t in times) else sum(times) / len(times)


def status_note(runs):
    """"max_steps" for one unconverged run; "max_steps 2/3" for several; "" when all converged."""
    counts = {}
    for r in runs:
        if r["status"] != "converged":
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    if len(runs) == 1:
        return ", ".join(counts)
    return ", ".join(f"{s} {n}/{len(runs)}" for s, n in sorted(counts.items()))


def loss_curves(curves, n_tasks):
    """Per subtask, its band across the runs."""
    return [seed_band([(steps, losses[k]) for steps, losses in curves if k < len(losses)]) for k in range(n_tasks)]


def draw_losses(ax, runs, log_x, style="-", marks=True):
    """Per-subtask loss curves of an entry's runs (bands across seeds), the τ line and (marks)
    the mean T_k; returns (n_tasks, p_k, last step drawn)."""
    curves, errors = read_loss_curves(runs)
    if errors:
        ax.text(0.5, 0.5, "\n".join(errors), ha="center", va="center", transform=ax.transAxes, fontsize=6)
    if not curves:
        return 0, [], 0
    n_tasks = max(len(losses) for _, losses in curves)
    last = 0
    for k, band in enumerate(loss_curves(curves, n_tasks)):
        draw_band(ax, band, len(curves), subtask_colour(k, n_tasks), ls=style, log_x=log_x)
        last = max([last] + band["steps"])
    for tau in sorted({r["tau_bits"] for r in runs}):
        ax.axhline(tau, color="0.4", ls="--", lw=0.8)
    if marks:
        for k in range(n_tasks):
            t = mean_acquisition(runs, k)
            if t is not None and (t > 0 or not log_x):
                ax.axvline(t, color=subtask_colour(k, n_tasks), ls=":", lw=0.7)
    ax.set_yscale("log")
    ax.grid(True, which="major", color="0.92", lw=0.5)
    note = status_note(runs)
    if marks and note:
        ax.text(0.98, 0.98, note, ha="right", va="top", transform=ax.transAxes, fontsize=8, color="#D55E00")
    return n_tasks, runs[0]["p_k"], last


def subtask_legend(fig, axes, n_tasks, p_k, extra=()):
    """Outside the panels (right): one entry per subtask for a few, a colour bar for many;
    `extra` (handle, label) pairs follow (line styles, the τ line)."""
    if n_tasks <= 12:
        handles = [plt.Line2D([], [], color=subtask_colour(k, n_tasks), lw=1.5) for k in range(n_tasks)]
        labels = [subtask_label(k, p_k) for k in range(n_tasks)]
    else:
        norm = colors.Normalize(vmin=0, vmax=n_tasks - 1)
        palette = colors.ListedColormap([subtask_colour(k, n_tasks) for k in range(n_tasks)])
        sm = cm.ScalarMappable(norm=norm, cmap=palette)
        fig.colorbar(sm, ax=axes, label="subtask (p decreasing)", fraction=0.02)
        handles, labels = [], []
    handles += [h for h, _ in extra]
    labels += [label for _, label in extra]
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def tau_handle():
    return (plt.Line2D([], [], color="0.4", ls="--", lw=0.8), "τ (loss threshold)")


def tk_handle(run_sets):
    seeds = " (mean over seeds)" if any(len(runs) > 1 for runs in run_sets) else ""
    return (plt.Line2D([], [], color="0.4", ls=":", lw=0.8), f"T_k: first step with loss ≤ τ{seeds}")


def steps_mode(requested, n_entries):
    """The step axis of a figure comparing n_entries: --steps, or log for two or more."""
    if requested != "auto":
        return requested
    return "log" if n_entries > 1 else "linear"


def finish_step_axes(axes_last, mode, bottom_axes):
    """Step axes after drawing: log, or linear from 0 (shared), or per panel ("panel": each
    panel's own range, the shared one named in its step label). axes_last: [(ax, last step)]."""
    shared = max([last for _, last in axes_last] + [1])
    for ax, last in axes_last:
        if mode == "log":
            ax.set_xscale("log")
        elif mode == "panel":
            ax.set_xlim(0, max(last, 1) * 1.02)
        else:
            ax.set_xlim(0, shared * 1.02)
        if mode == "panel" and last < shared:  # every panel of its own range says so
            ax.set_xlabel(f"step (0–{last:,} of the shared 0–{shared:,})")
        elif ax in bottom_axes:
            ax.set_xlabel("step (log)" if mode == "log" else "step")


def band_caption(run_sets):
    """The suptitle's second line when some curve averages several seeds."""
    return f"\n{BAND_CAPTION}" if any(len(runs) > 1 for runs in run_sets) else ""


def runs_title(runs, with_width=True):
    parts = []
    width = config_value(runs[0], "model.width") if runs else None
    if with_width and width is not None:
        parts.append(f"width {width}")
    if runs:
        parts.append(seeds_note(runs))
    return ", ".join(parts)


def fig2(analysis, out_dir, steps="auto"):
    """One panel per entry, on shared loss axes: the comparison the figure is for."""
    entries = analysis["optimizers"]
    mode = steps_mode(steps, len(entries))
    fig, axes = plt.subplots(1, len(entries), figsize=(3.0 * len(entries), 3.0), sharex=(mode != "panel"), sharey=True,
                             squeeze=False, layout="constrained")
    axes = axes[0]
    n_tasks, p_k, drawn, run_sets = 0, [], [], []
    for ax, entry in zip(axes, entries):
        label = entry_label(entry)
        runs = pick_runs(analysis, entry)
        run_sets.append(runs)
        ax.set_title(f"{label}\n{runs_title(runs)}{check_seeds(runs, label)}")
        if not runs:
            ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
            continue
        n, pk, last = draw_losses(ax, runs, log_x=(mode == "log"))
        if n > n_tasks:
            n_tasks, p_k = n, pk
        drawn.append((ax, last))
    finish_step_axes(drawn, mode, set(axes))
    axes[0].set_ylabel("eval loss per subtask (bits)")
    subtask_legend(fig, list(axes), n_tasks, p_k, [tau_handle(), tk_handle(run_sets)])
    fig.suptitle("Per-subtask loss curves at the best lr" + band_caption(run_sets))
    return save(fig, out_dir, "fig2_subtask_losses")


def overlay_subtasks(n_tasks):
    """The subtasks given a panel in the small multiples: all, or MAX_SMALL_MULTIPLES spread evenly."""
    if n_tasks <= MAX_SMALL_MULTIPLES:
        return list(range(n_tasks))
    return sorted({round(i * (n_tasks - 1) / (MAX_SMALL_MULTIPLES - 1)) for i in range(MAX_SMALL_MULTIPLES)})


def fig2_overlay(analysis, out_dir, steps="auto"):
    """All entries' curves together: on one axis (colour = subtask, line style = entry) when there
    are at most MAX_OVERLAY_LINES curves, else one panel per subtask (colour = entry)."""
    entries = analysis["optimizers"]
    mode = steps_mode(steps, len(entries))
    log_x = mode == "log"
    sets = []  # (entry index, label, runs, bands per subtask)
    n_tasks, p_k = 0, []
    for i, entry in enumerate(entries):
        label = entry_label(entry)
        runs = pick_runs(analysis, entry)
        label += check_seeds(runs, label)
        curves, errors = read_loss_curves(runs)
        for error in errors:
            print(f"plot.py: fig2_overlay: {error}", file=sys.stderr)
        n = max([len(losses) for _, losses in curves] + [0])
        if n > n_tasks:
            n_tasks, p_k = n, runs[0]["p_k"]
        sets.append((i, label, runs, (len(curves), loss_curves(curves, n))))
    taus = sorted({r["tau_bits"] for _, _, runs, _ in sets for r in runs})
    caption = band_caption([runs for _, _, runs, _ in sets])
    notes = {runs_title(runs) for _, _, runs, _ in sets if runs}
    each = " each" if len(sets) > 1 else ""
    common = f"; {notes.pop()}{each}" if len(notes) == 1 else ""  # else each legend line says its own

    def legend_label(label, runs):
        return f"{label}, {runs_title(runs)}" if runs and not common else label

    if len(entries) * n_tasks <= MAX_OVERLAY_LINES:
        fig, ax = plt.subplots(figsize=(5.0, 3.2), layout="constrained")
        styles, last = [], 0
        for i, label, runs, (n_read, bands) in sets:
            for k, band in enumerate(bands):
                draw_band(ax, band, n_read, subtask_colour(k, n_tasks), ls=entry_style(i), log_x=log_x)
                last = max([last] + band["steps"])
            styles.append((plt.Line2D([], [], color="0.2", ls=entry_style(i), lw=1.2),
                           legend_label(label, runs)))
        for tau in taus:
            ax.axhline(tau, color="0.4", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.grid(True, which="major", color="0.92", lw=0.5)
        finish_step_axes([(ax, last)], "linear" if mode == "panel" else mode, {ax})
        ax.set_ylabel("eval loss per subtask (bits)")
        subtask_legend(fig, [ax], n_tasks, p_k, styles + [tau_handle()])
        ax.set_title(f"Per-subtask loss curves together, each at its best lr{common}" + caption)
        return save(fig, out_dir, "fig2_overlay")
    shown = overlay_subtasks(n_tasks)
    n_cols = 3 if len(shown) <= 9 else 4
    n_rows = math.ceil(len(shown) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.2 * n_rows), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    flat = [ax for row in axes for ax in row]
    last = 0
    for ax, k in zip(flat, shown):
        for i, label, runs, (n_read, bands) in sets:
            if k < len(bands):
                draw_band(ax, bands[k], n_read, entry_colour(i), ls=entry_style(i), log_x=log_x)
                last = max([last] + bands[k]["steps"])
        for tau in taus:
            ax.axhline(tau, color="0.4", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.grid(True, which="major", color="0.92", lw=0.5)
        ax.set_title(subtask_label(k, p_k))
    for ax in flat[len(shown):]:
        ax.set_axis_off()
    used = flat[:len(shown)]
    bottom = {ax for j, ax in enumerate(used) if j + n_cols >= len(shown)}
    finish_step_axes([(ax, last) for ax in used], "linear" if mode == "panel" else mode, bottom)
    for ax in bottom:
        ax.xaxis.set_tick_params(labelbottom=True)
    for r in range(n_rows):
        axes[r][0].set_ylabel("eval loss (bits)")
    handles = [(plt.Line2D([], [], color=entry_colour(i), ls=entry_style(i), lw=1.4),
                legend_label(label, runs)) for i, label, runs, _ in sets]
    handles.append(tau_handle())
    spare = flat[len(shown):]
    if spare:  # the legend in the grid's first empty slot
        spare[0].legend([h for h, _ in handles], [t for _, t in handles], loc="center", frameon=False)
    else:
        fig.legend([h for h, _ in handles], [t for _, t in handles], loc="center left", bbox_to_anchor=(1.0, 0.5),
                   frameon=False)
    which = "" if len(shown) == n_tasks else f"; {len(shown)} of {n_tasks} subtasks shown"
    fig.suptitle(f"Each subtask's loss, one line per optimizer or variant at its best lr{common}{which}" + caption)
    return save(fig, out_dir, "fig2_overlay")


def nan_if_none(v):
    return float("nan") if v is None else v


def subtasks_needed(p, n_tasks):
    """⌈p·n⌉ as `analyze` counts it, ignoring rounding error (0.14·50 asks for 7 subtasks, not 8)."""
    return int(math.ceil(p * n_tasks - 1e-9))


def distinct_fractions(p_values, n_tasks):
    """The points T(p) really has: for each number m = ⌈p·n⌉ of subtasks asked for, (m/n, the
    index in p_values of the largest p asking for m), by m. p values asking for the same m share
    one T(p): drawing each would draw a staircase. Without n, every p as it is."""
    if not n_tasks:
        return [(p, i) for i, p in enumerate(p_values)]
    largest = {}
    for i, p in enumerate(p_values):
        m = subtasks_needed(p, n_tasks)
        if 1 <= m <= n_tasks and (m not in largest or p >= p_values[largest[m]]):
            largest[m] = i
    return [(m / n_tasks, largest[m]) for m in sorted(largest)]


def runs_description(runs):
    """What an entry's statistics average over: "one run (seed 0)", "3 seeds", "6 runs: 2 widths × 3 seeds"."""
    if len(runs) == 1:
        return f"one run ({seeds_note(runs)})"
    widths = {config_value(r, "model.width") for r in runs}
    seeds = {run_seed(r) for r in runs}
    if len(widths) == 1 and len(seeds) == len(runs):
        return f"{len(runs)} seeds"
    if len(widths) * len(seeds) == len(runs):
        return f"{len(runs)} runs: {len(widths)} widths × {len(seeds)} seeds"
    return f"{len(runs)} runs"


def fig3(analysis, out_dir):
    p = analysis["p"]
    entries = analysis["optimizers"]
    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(7.5, 3.0), layout="constrained")
    descriptions = []
    for i, entry in enumerate(entries):
        runs = [analysis["runs"][j] for j in entry["runs"]]
        n_tasks = len(entry.get("p_k") or (runs[0]["p_k"] if runs else []))
        points = distinct_fractions(p, n_tasks)
        dodge = 0.006 * (i - (len(entries) - 1) / 2)  # error bars of lines at one point side by side
        x = [f + dodge for f, _ in points]
        descriptions.append(runs_description(runs))
        style = dict(marker=MARKERS[i % len(MARKERS)], ms=4, capsize=2, color=entry_colour(i), ls=entry_style(i),
                     label=entry_label(entry))
        for ax, stats in ((ax_t, entry["coverage"]), (ax_s, entry["sal"])):
            mean = [nan_if_none(stats[j]["mean"]) for _, j in points]
            std = [stats[j]["std"] if stats[j]["std"] is not None else 0.0 for _, j in points]
            ax.errorbar(x, mean, yerr=std, **style)
    if len(set(descriptions)) > 1:  # say per line what it averages over
        labels = [f"{entry_label(e)}: {d}" for e, d in zip(entries, descriptions)]
        over = "mean ± std over each line's runs"
    else:
        labels = [entry_label(e) for e in entries]
        d = descriptions[0] if descriptions else ""
        if not d.startswith("one run"):
            over = f"mean ± std over {d}"
        else:
            over = d if len(entries) == 1 else "one run each" + d[len("one run"):]
    taus = sorted({run["tau_bits"] for run in analysis["runs"]})
    tau_text = "τ = " + ", ".join(f"{t:g}" for t in taus) + " bits"
    x_label = "fraction of subtasks learned, ⌈p·n⌉/n"
    ax_t.set_yscale("log")
    ax_t.set_xlabel(x_label)
    ax_t.set_ylabel("p-coverage time T(p, τ) (steps)")
    ax_t.set_title(f"T(p, τ), {tau_text}")
    ax_s.set_xlabel(x_label)
    ax_s.set_ylabel("SAL(p, τ) = (T(p) − T_first) / T(p)")
    ax_s.set_ylim(-0.02, 1.0)
    ax_s.set_title("skill acquisition lag (0: parallel)")
    for ax in (ax_t, ax_s):
        ax.set_xlim(0, 1.04)
        ax.grid(True, which="major", color="0.92", lw=0.5)
    handles, _ = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(f"At the best lr; {over}; missing points: not reached")
    return save(fig, out_dir, "fig3_coverage_sal")


def label_grid_panel(ax, r, c, n_rows, title, ylabel):
    """Panel (r, c) of a grid: the column title on the top row, the row label on the first
    column, the step axis on the bottom row."""
    if r == 0:
        ax.set_title(title)
    if c == 0:
        ax.set_ylabel(ylabel)
    if r == n_rows - 1:
        ax.set_xlabel("step")


def fig4(analysis, out_dir, steps="auto"):
    entries = analysis["optimizers"]
    widths = sorted({w for e in entries for w in entry_widths(analysis, e)})
    if len(widths) < 2:
        print("plot.py: fig4_width_grid skipped: the runs have one width, which fig2 shows", file=sys.stderr)
        return []
    mode = steps_mode(steps, len(entries))
    fig, axes = plt.subplots(len(widths), len(entries), figsize=(2.8 * len(entries), 2.3 * len(widths)),
                             sharex=(mode != "panel"), sharey=True, squeeze=False, layout="constrained")
    n_tasks, p_k, drawn, run_sets, notes = 0, [], [], [], set()
    for r, width in enumerate(widths):
        for c, entry in enumerate(entries):
            ax = axes[r][c]
            label = entry_label(entry)
            runs = pick_runs(analysis, entry, width)
            run_sets.append(runs)
            label_grid_panel(ax, r, c, len(widths), label, f"width {width}\nloss (bits)")
            if not runs:
                ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
                continue
            notes.add(seeds_note(runs))
            seeds_differ = check_seeds(runs, f"{label}, width {width}")
            n, pk, last = draw_losses(ax, runs, log_x=(mode == "log"))
            if seeds_differ:
                ax.text(0.02, 0.02, seeds_differ[2:], transform=ax.transAxes, fontsize=6, color="#D55E00")
            if n > n_tasks:
                n_tasks, p_k = n, pk
            drawn.append((ax, last))
    finish_step_axes(drawn, mode, set(axes[-1]))
    if len(notes) > 1:  # panels with different seeds: each says its own
        for (ax, _), runs in zip(drawn, [rs for rs in run_sets if rs]):
            ax.text(0.02, 0.98, seeds_note(runs), transform=ax.transAxes, ha="left", va="top", fontsize=6, color="0.3")
    subtask_legend(fig, [ax for row in axes for ax in row], n_tasks, p_k, [tau_handle(), tk_handle(run_sets)])
    seeds = f", {notes.pop()} per panel" if len(notes) == 1 else ""
    fig.suptitle(f"Per-subtask loss curves by width (rows) and optimizer or variant (columns), best lr each{seeds}"
                 + band_caption(run_sets))
    return save(fig, out_dir, "fig4_width_grid")


ICL_LOSS_FLOOR = 1e-16  # relative losses are plotted on a log axis; clip exact zeros


def read_icl_curve(run_dir, column="relative_loss"):
    """(steps, values of `column`) from an icl_linreg metrics.csv; a partial last row is skipped."""
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "step" not in rows[0] or column not in rows[0]:
        return [], []
    header = rows[0]
    i_step, i_value = header.index("step"), header.index(column)
    steps, values = [], []
    for row in rows[1:]:
        if len(row) != len(header):
            continue  # a killed run's last line
        try:
            step, v = int(row[i_step]), float(row[i_value])
        except ValueError:
            continue
        steps.append(step)
        values.append(max(v, ICL_LOSS_FLOOR) if math.isfinite(v) else float("nan"))
    return steps, values


def spectrum_key(spectrum):
    """Sort key of {"kappa": K} / {"exponent": E}: kind, then value."""
    (kind, value), = spectrum.items()
    return kind, value


def icl_row_label(icl, group):
    """The optimizer, with the settings that vary within an optimizer (analysis.json "varying")."""
    extra = [f"{k.split('.')[-1]}={json.dumps(group['settings'].get(k))}" for k in icl.get("varying", [])]
    return " ".join([group["optimizer"]] + extra)


def fig5(icl, out_dir):
    """Fig. 5: rows = optimizers, columns = sigma_w, one relative-loss curve per sigma_x."""
    groups = icl["groups"]
    rows = sorted({icl_row_label(icl, g) for g in groups})
    columns = sorted({g["sigma_w_label"]: spectrum_key(g["sigma_w"]) for g in groups}.items(), key=lambda c: c[1])
    columns = [label for label, _ in columns]
    x_spectra = {g["sigma_x_label"]: g["sigma_x"] for g in groups}
    x_labels = sorted(x_spectra, key=lambda label: spectrum_key(x_spectra[label]))
    values = [spectrum_key(x_spectra[label])[1] for label in x_labels]
    all_kappa = all("kappa" in x_spectra[label] for label in x_labels) and min(values) > 0
    if all_kappa and max(values) > min(values):
        norm = colors.LogNorm(vmin=min(values), vmax=max(values))
    else:
        norm = colors.Normalize(vmin=min(values), vmax=max(values) if max(values) > min(values) else min(values) + 1)
    cmap = plt.get_cmap("plasma")

    def colour(label):
        return cmap(0.85 * norm(spectrum_key(x_spectra[label])[1]))

    fig, axes = plt.subplots(len(rows), len(columns), figsize=(3.8 * len(columns), 3.0 * len(rows)),
                             sharex=True, sharey=True, squeeze=False)
    runs = icl["runs"]
    run_sets = []
    for r, row_label in enumerate(rows):
        for c, w_label in enumerate(columns):
            ax = axes[r][c]
            label_grid_panel(ax, r, c, len(rows), f"sigma_w {w_label}", f"{row_label}\nrelative loss")
            cell = [g for g in groups if icl_row_label(icl, g) == row_label and g["sigma_w_label"] == w_label]
            drawn = 0
            for g in sorted(cell, key=lambda g: spectrum_key(g["sigma_x"])):
                best = g["candidates"][0]
                chosen = sorted((runs[i] for i in best["runs"]),
                                key=lambda run: (run_seed(run) is None, run_seed(run) or 0, run["dir"]))
                curves = []
                for run in chosen:
                    try:
                        steps, loss = read_icl_curve(run["dir"])
                    except OSError:
                        continue
                    if steps:
                        curves.append((steps, loss))
                if not curves:
                    continue
                run_sets.append(chosen)
                reached = sum(1 for run in chosen if run["steps_to_epsilon"] is not None)
                if len(chosen) == 1:
                    note = f", seed {chosen[0]['seed']}" + ("" if reached else ", not reached")
                else:
                    note = f", {len(chosen)} seeds"
                    if reached < len(chosen):
                        note += f", reached {reached}/{len(chosen)}"
                draw_band(ax, seed_band(curves), len(curves), colour(g["sigma_x_label"]), lw=1.3,
                          label=f"{g['sigma_x_label']} (lr {lr_label(best['lr'])}{note})")
                drawn += 1
            ax.set_yscale("log")
            if drawn:
                ax.legend(fontsize=6, loc="upper right")
            else:
                ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
    if len(x_labels) > 1:  # one sigma_x: the legends name it
        palette = colors.ListedColormap([cmap(0.85 * i / 255) for i in range(256)])
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=palette),
                     ax=[ax for row in axes for ax in row],
                     label="sigma_x " + ("kappa (log scale)" if all_kappa else "value"), fraction=0.02)
    fig.suptitle("In-context linear regression: relative loss vs step, best lr per panel and sigma_x"
                 + band_caption(run_sets))
    return save(fig, out_dir, "fig5")


def read_spectra(run_dir):
    """spectra.csv of a run: {(tensor, of): [(step, stable_rank, entropy, [sigma...]), ...]}; {} without it."""
    path = os.path.join(run_dir, "spectra.csv")
    if not os.path.exists(path):
        return {}
    series = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                sigma = [float(v) for v in row["singular_values"].split()] if row.get("singular_values") else []
                point = (int(row["step"]), float(row["stable_rank"]), float(row["spectral_entropy"]), sigma)
            except (KeyError, TypeError, ValueError):
                continue  # a torn last line
            series.setdefault((row["tensor"], row["of"]), []).append(point)
    return series


def entries_with_spectra(analysis):
    """(entry index, entry, its drawn runs, their spectra) for the entries whose runs wrote spectra.csv."""
    out = []
    for i, entry in enumerate(analysis["optimizers"]):
        runs = pick_runs(analysis, entry)
        spectra = [read_spectra(r["dir"]) for r in runs]
        if runs and all(spectra):
            out.append((i, entry, runs, spectra))
    return out


def mean_series(spectra, key, column):
    """The mean over runs of one column (1: stable rank, 2: entropy) at the steps every run has."""
    by_step = {}
    for s in spectra:
        for point in s.get(key, []):
            by_step.setdefault(point[0], []).append(point[column])
    steps = sorted(t for t, v in by_step.items() if len(v) == len(spectra))
    return steps, [sum(by_step[t]) / len(by_step[t]) for t in steps]


def spectra_ranks(analysis, out_dir):
    drawn = entries_with_spectra(analysis)
    if not drawn:
        return []
    keys = []
    for _, _, _, spectra in drawn:
        for key in spectra[0]:
            if key not in keys:
                keys.append(key)
    fig, axes = plt.subplots(len(keys), 2, figsize=(7.5, 1.9 * len(keys) + 0.6), layout="constrained",
                             squeeze=False)
    for row, key in enumerate(keys):
        for col, (column, label) in enumerate(((1, "stable rank"), (2, "spectral entropy"))):
            ax = axes[row][col]
            for i, entry, runs, spectra in drawn:
                steps, values = mean_series(spectra, key, column)
                if not steps:
                    continue
                ax.plot(steps, values, color=entry_colour(i), ls=entry_style(i), lw=1.2, label=entry_label(entry))
                # The entry's mean T_k (every run reached it) marked on its line.
                for k in range(len(runs[0]["T_k"])):
                    t = mean_acquisition(runs, k)
                    if t is not None and steps[0] <= t <= steps[-1]:
                        y = next(v for s, v in zip(steps, values) if s >= t)
                        ax.plot([t], [y], marker="|", ms=9, mew=1.5, color=entry_colour(i))
            ax.set_xscale("symlog", linthresh=max(1, min((p[0] for _, _, _, sp in drawn for p in sp[0].get(key, [])
                                                         if p[0] > 0), default=1)))
            ax.set_ylim(bottom=0) if column == 1 else ax.set_ylim(0, 1.02)  # no zoom into rounding noise
            ax.set_title(f"{key[0]} ({key[1]}): {label}")
            ax.grid(True, which="major", color="0.92", lw=0.5)
            if row == len(keys) - 1:
                ax.set_xlabel("step")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle("Spectra of weights and updates at the best lr (mean over seeds; | marks the mean T_k)")
    return save(fig, out_dir, "spectra_ranks")


def spectra_values(analysis, out_dir):
    drawn = entries_with_spectra(analysis)
    if not drawn:
        return []
    first = sorted(drawn[0][3][0])[0][0]  # the first tensor by name: layers.0.weight
    fig, axes = plt.subplots(2, len(drawn), figsize=(2.4 * len(drawn) + 1.2, 4.2), layout="constrained",
                             squeeze=False)
    for col, (i, entry, runs, spectra) in enumerate(drawn):
        run, s = runs[0], spectra[0]
        moments = [("step 0", 0), ("T_first", run.get("T_first")),
                   ("T(1)", run["coverage"][-1] if run.get("coverage") else None), ("end", run.get("steps"))]
        for row, of in enumerate(("weight", "update")):
            ax = axes[row][col]
            points = s.get((first, of), [])
            for m, (name, t) in enumerate(moments):
                if t is None:
                    continue
                before = [p for p in points if p[0] <= t]
                if not before or not before[-1][3] or before[-1][3][0] <= 0:
                    continue
                step, _, _, sigma = before[-1]
                ax.plot(range(1, len(sigma) + 1), [max(v / sigma[0], 1e-6) for v in sigma],
                        color=subtask_colour(m, 4), lw=1.1, label=f"{name} (step {step})")
            ax.set_yscale("log")
            ax.set_title(f"{entry_label(entry)}\n{first} {of}", fontsize=8)
            ax.set_xlabel("index i")
            if col == 0:
                ax.set_ylabel("σ_i / σ_max")
            ax.legend(fontsize=6, frameon=False)
    fig.suptitle(f"Normalised singular values, first seed of each entry ({first})")
    return save(fig, out_dir, "spectra_values")


def atsr_vs_weight_decay(analysis, out_dir):
    """ATSR against optimizer.weight_decay, one line per (optimizer, weight_decay_mode)."""
    lines = {}
    for entry in analysis["optimizers"]:
        runs = [analysis["runs"][j] for j in entry["runs"]]
        if not runs or "atsr" not in entry:
            continue
        wd = config_value(runs[0], "optimizer.weight_decay")
        mode = config_value(runs[0], "optimizer.weight_decay_mode") or "decoupled"
        name = f"{entry.get('optimizer', '?')}, {mode}"
        lines.setdefault(name, []).append((wd, entry["atsr"], entry))
    if not any(len({wd for wd, _, _ in points}) >= 3 for points in lines.values()):
        return []
    fig, ax = plt.subplots(figsize=(4.8, 3.2), layout="constrained")
    positive = [wd for points in lines.values() for wd, _, _ in points if wd]
    linthresh = min(positive) if positive else 1e-4
    for i, (name, points) in enumerate(sorted(lines.items())):
        points.sort(key=lambda p: p[0])
        x = [p[0] for p in points]
        mean = [nan_if_none(p[1]["mean"]) for p in points]
        std = [p[1]["std"] or 0.0 for p in points]
        ax.errorbar(x, mean, yerr=std, marker=MARKERS[i % len(MARKERS)], ms=4, capsize=2, color=entry_colour(i),
                    ls=entry_style(i), label=name)
        # λ where some seed never learned every subtask: an x on the top edge, with the fraction learned.
        for wd, atsr, entry in points:
            if atsr["mean"] is None:
                learned = entry.get("fraction_learned", {}).get("mean")
                ax.plot([wd], [1.0], marker="x", ms=7, mew=1.5, color=entry_colour(i), transform=ax.get_xaxis_transform(),
                        clip_on=False)
                if learned is not None:
                    ax.annotate(f"{100 * learned:.0f}%", (wd, 1.0), xycoords=ax.get_xaxis_transform(), fontsize=6,
                                xytext=(0, -10), textcoords="offset points", ha="center", color=entry_colour(i))
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.set_ylim(bottom=1)  # ATSR >= 1
    ax.set_xlabel("optimizer.weight_decay λ")
    ax.set_ylabel("ATSR = T(1) / T_first")
    ax.grid(True, which="major", color="0.92", lw=0.5)
    ax.legend(frameon=False, loc="center right")
    ax.set_title("ATSR against weight decay (mean ± std over seeds)\n× on top: T(1) not reached by every seed "
                 "(% of subtasks learned)", fontsize=8)
    return save(fig, out_dir, "atsr_vs_weight_decay")


def save(fig, out_dir, name):
    paths = []
    for ext in FORMATS:
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("analysis_dir", help="a `skillrun analyze --out` directory (holds analysis.json)")
    parser.add_argument("--out", help="where to write the figures (default: ANALYSIS_DIR)")
    parser.add_argument("--steps", choices=("auto", "log", "linear", "panel"), default="auto",
                        help="step axes of the loss-curve figures: log, linear on a shared range, or linear "
                             "per panel with the shared range named (default auto: log when a figure compares "
                             "two or more entries, else linear)")
    args = parser.parse_args(argv)
    try:
        with open(os.path.join(args.analysis_dir, "analysis.json")) as f:
            analysis = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"plot.py: cannot read analysis.json in {args.analysis_dir}: {e}", file=sys.stderr)
        return 2
    icl = analysis.get("icl") or {}
    if not analysis.get("optimizers") and not icl.get("groups"):
        print("plot.py: analysis.json lists no runs", file=sys.stderr)
        return 2
    out_dir = args.out or args.analysis_dir
    os.makedirs(out_dir, exist_ok=True)
    written = []
    if analysis.get("optimizers"):
        written += fig2(analysis, out_dir, args.steps) + fig2_overlay(analysis, out_dir, args.steps)
        written += fig3(analysis, out_dir) + fig4(analysis, out_dir, args.steps)
        written += spectra_ranks(analysis, out_dir) + spectra_values(analysis, out_dir)
        written += atsr_vs_weight_decay(analysis, out_dir)
    if icl.get("groups"):
        written += fig5(icl, out_dir)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
