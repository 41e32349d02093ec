#!/usr/bin/env python3
"""Figures for a `skillrun analyze --out DIR` directory: the paper's Fig. 2, 3, 4 and 5.

Reads DIR/analysis.json and the run directories it names (their metrics.csv), and writes
PNG (150 dpi) and vector SVG and PDF files. For sparse_parity runs:
  fig2_subtask_losses  per-subtask loss curves, one panel per optimizer at its best lr, on
                       shared step and loss axes (the optimizers compared at one scale)
  fig2_overlay         the same curves on one axis: colour = subtask, line style = optimizer
  fig3_coverage_sal    p-coverage time T(p, tau) and SAL(p, tau) against p, per optimizer
  fig4_width_grid      width x optimizer grid of per-subtask loss curves (only with two or
                       more widths: with one it would repeat fig2)
Subtask i has the same colour in every figure ("subtask i": task.k is the parity's bit count). For icl_linreg runs (analysis.json "icl"):
  fig5                 optimizer x sigma_w grid of relative loss against step, one curve per
                       sigma_x (colour on a log scale of kappa_x), each at its best lr
Needs python3 and matplotlib only.

Usage: python3 scripts/plot.py ANALYSIS_DIR [--out DIR]   (DIR defaults to ANALYSIS_DIR)
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
plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
                     "xtick.labelsize": 8, "ytick.labelsize": 8, "svg.fonttype": "none", "pdf.fonttype": 42})
LOSS_FLOOR_BITS = 1e-5  # losses are plotted on a log axis; clip exact zeros


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
    """One colour per subtask index, the same in every figure (frequent = dark)."""
    return cm.viridis(0.0 if n_tasks <= 1 else 0.9 * k / (n_tasks - 1))


def config_value(run, dotted):
    node = run["config"]
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def lr_label(lr):
    return "?" if lr is None else f"{lr:g}"


def pick_run(analysis, optimizer, width=None):
    """The run drawn for an optimizer (at its best lr): the given width, else the widest; first seed."""
    candidates = [analysis["runs"][i] for i in optimizer["runs"]]
    if width is not None:
        candidates = [r for r in candidates if config_value(r, "model.width") == width]
    if not candidates:
        return None
    if width is None:
        widest = max((config_value(r, "model.width") or 0) for r in candidates)
        candidates = [r for r in candidates if (config_value(r, "model.width") or 0) == widest]
    return sorted(candidates, key=lambda r: (config_value(r, "seed") or 0, r["dir"]))[0]


def subtask_label(k, p_k):
    return f"subtask {k} (p = {p_k[k]:.3f})" if k < len(p_k) else f"subtask {k}"


def draw_losses(ax, run, style="-", marks=True, label_subtasks=True):
    """Per-subtask loss curves of one run, the tau line and (marks) its T_k marks."""
    try:
        steps, losses = read_metrics(run["dir"])
    except OSError as e:
        ax.text(0.5, 0.5, f"cannot read metrics.csv:\n{e.strerror}", ha="center", va="center", transform=ax.transAxes)
        return
    n_tasks = len(losses)
    for k, curve in enumerate(losses):
        ax.plot(steps, curve, color=subtask_colour(k, n_tasks), lw=1.2, ls=style,
                label=subtask_label(k, run["p_k"]) if label_subtasks else None)
    ax.axhline(run["tau_bits"], color="0.4", ls="--", lw=0.8)
    if marks:
        for k, t in enumerate(run["T_k"]):
            if t is not None:
                ax.axvline(t, color=subtask_colour(k, n_tasks), ls=":", lw=0.6)
    ax.set_yscale("log")
    ax.grid(True, which="major", color="0.92", lw=0.5)
    if marks and run["status"] not in ("converged",):
        ax.text(0.98, 0.98, run["status"], ha="right", va="top", transform=ax.transAxes, fontsize=8, color="C3")


def subtask_legend(fig, axes, n_tasks, p_k, extra=()):
    """Outside the panels (right): one entry per subtask for a few, a colour bar for many;
    `extra` (handle, label) pairs follow (line styles, the tau line)."""
    if n_tasks <= 12:
        handles = [plt.Line2D([], [], color=subtask_colour(k, n_tasks), lw=1.5) for k in range(n_tasks)]
        labels = [subtask_label(k, p_k) for k in range(n_tasks)]
    else:
        norm = colors.Normalize(vmin=0, vmax=n_tasks - 1)
        sm = cm.ScalarMappable(norm=norm, cmap=colors.ListedColormap([subtask_colour(k, n_tasks) for k in range(n_tasks)]))
        fig.colorbar(sm, ax=axes, label="subtask (p decreasing)", fraction=0.02)
        handles, labels = [], []
    handles += [h for h, _ in extra]
    labels += [label for _, label in extra]
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def tau_handle():
    return (plt.Line2D([], [], color="0.4", ls="--", lw=0.8), "tau")


def save(fig, out_dir, name):
    paths = []
    for ext in FORMATS:
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def fig2(analysis, out_dir):
    """One panel per optimizer, on shared step and loss axes: the comparison the figure is for."""
    opts = analysis["optimizers"]
    fig, axes = plt.subplots(1, len(opts), figsize=(3.0 * len(opts), 2.8), sharex=True, sharey=True, squeeze=False,
                             layout="constrained")
    axes = axes[0]
    n_tasks, p_k = 0, []
    for ax, opt in zip(axes, opts):
        run = pick_run(analysis, opt)
        ax.set_title(f"{opt['optimizer']} (lr {lr_label(opt['lr'])}, width {config_value(run, 'model.width')})")
        draw_losses(ax, run)
        n_tasks, p_k = max(n_tasks, len(run["T_k"])), run["p_k"]
        ax.set_xlabel("step")
    axes[0].set_ylabel("eval loss per subtask (bits)")
    subtask_legend(fig, list(axes), n_tasks, p_k,
                   [tau_handle(), (plt.Line2D([], [], color="0.4", ls=":", lw=0.8), "T_i: loss <= tau")])
    fig.suptitle("Per-subtask loss curves at each optimizer's best lr")
    return save(fig, out_dir, "fig2_subtask_losses")


def fig2_overlay(analysis, out_dir):
    """The optimizers on one axis: colour = subtask, line style = optimizer."""
    opts = analysis["optimizers"]
    fig, ax = plt.subplots(figsize=(5.0, 3.2), layout="constrained")
    n_tasks, p_k, styles = 0, [], []
    for i, opt in enumerate(opts):
        run = pick_run(analysis, opt)
        style = LINE_STYLES[i % len(LINE_STYLES)]
        draw_losses(ax, run, style=style, marks=False, label_subtasks=False)
        n_tasks, p_k = max(n_tasks, len(run["T_k"])), run["p_k"]
        styles.append((plt.Line2D([], [], color="0.2", ls=style, lw=1.2),
                       f"{opt['optimizer']} (lr {lr_label(opt['lr'])})"))
    ax.set_xlabel("step")
    ax.set_ylabel("eval loss per subtask (bits)")
    subtask_legend(fig, [ax], n_tasks, p_k, styles + [tau_handle()])
    ax.set_title("Per-subtask loss curves, optimizers overlaid (best lr each)")
    return save(fig, out_dir, "fig2_overlay")


def nan_if_none(v):
    return float("nan") if v is None else v


def fig3(analysis, out_dir):
    p = analysis["p"]
    fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(7.5, 3.0), layout="constrained")
    for i, opt in enumerate(analysis["optimizers"]):
        label = f"{opt['optimizer']} (lr {lr_label(opt['lr'])})"
        t_mean = [nan_if_none(s["mean"]) for s in opt["coverage"]]
        t_std = [nan_if_none(s["std"]) if s["std"] is not None else 0.0 for s in opt["coverage"]]
        s_mean = [nan_if_none(s["mean"]) for s in opt["sal"]]
        s_std = [nan_if_none(s["std"]) if s["std"] is not None else 0.0 for s in opt["sal"]]
        ax_t.errorbar(p, t_mean, yerr=t_std, marker="o", ms=4, capsize=2, color=f"C{i}", label=label)
        ax_s.errorbar(p, s_mean, yerr=s_std, marker="o", ms=4, capsize=2, color=f"C{i}", label=label)
    taus = sorted({run["tau_bits"] for run in analysis["runs"]})
    tau_text = "tau = " + ", ".join(f"{t:g}" for t in taus) + " bits"
    ax_t.set_yscale("log")
    ax_t.set_xlabel("p (fraction of subtasks learned)")
    ax_t.set_ylabel("p-coverage time T(p, tau) (steps)")
    ax_t.set_title(f"T(p, tau), {tau_text}")
    ax_s.set_xlabel("p (fraction of subtasks learned)")
    ax_s.set_ylabel("SAL(p, tau) = (T(p) - T_first) / T(p)")
    ax_s.set_ylim(-0.02, 1.0)
    ax_s.set_title("skill acquisition lag (0: parallel)")
    for ax in (ax_t, ax_s):
        ax.grid(True, which="major", color="0.92", lw=0.5)
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle("Best lr per optimizer, averaged across widths and seeds (missing points: not reached)")
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


def fig4(analysis, out_dir):
    opts = analysis["optimizers"]
    widths = sorted({w for o in opts for w in o["widths"] if w is not None})
    if len(widths) < 2:
        print("plot.py: fig4_width_grid skipped: the runs have one width, which fig2 shows", file=sys.stderr)
        return []
    fig, axes = plt.subplots(len(widths), len(opts), figsize=(2.8 * len(opts), 2.2 * len(widths)),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    n_tasks, p_k = 0, []
    for r, width in enumerate(widths):
        for c, opt in enumerate(opts):
            ax = axes[r][c]
            run = pick_run(analysis, opt, width)
            label_grid_panel(ax, r, c, len(widths), f"{opt['optimizer']} (lr {lr_label(opt['lr'])})",
                             f"width {width}\nloss (bits)")
            if run is None:
                ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
                continue
            draw_losses(ax, run)
            n_tasks, p_k = max(n_tasks, len(run["T_k"])), run["p_k"]
    subtask_legend(fig, [ax for row in axes for ax in row], n_tasks, p_k, [tau_handle()])
    fig.suptitle("Per-subtask loss curves by width (rows) and optimizer (columns), best lr each")
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
    for r, row_label in enumerate(rows):
        for c, w_label in enumerate(columns):
            ax = axes[r][c]
            label_grid_panel(ax, r, c, len(rows), f"sigma_w {w_label}", f"{row_label}\nrelative loss")
            cell = [g for g in groups if icl_row_label(icl, g) == row_label and g["sigma_w_label"] == w_label]
            drawn = 0
            for g in sorted(cell, key=lambda g: spectrum_key(g["sigma_x"])):
                best = g["candidates"][0]
                run = sorted((runs[i] for i in best["runs"]), key=lambda run: (run["seed"] is None, run["seed"] or 0, run["dir"]))[0]
                try:
                    steps, loss = read_icl_curve(run["dir"])
                except OSError:
                    continue
                if not steps:
                    continue
                reached = "" if run["steps_to_epsilon"] is not None else ", not reached"
                ax.plot(steps, loss, color=colour(g["sigma_x_label"]), lw=1.3,
                        label=f"{g['sigma_x_label']} (lr {lr_label(best['lr'])}{reached})")
                drawn += 1
            ax.set_yscale("log")
            if drawn:
                ax.legend(fontsize=6, loc="upper right")
            else:
                ax.text(0.5, 0.5, "no run", ha="center", va="center", transform=ax.transAxes)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=colors.ListedColormap([cmap(0.85 * i / 255) for i in range(256)])),
                 ax=[ax for row in axes for ax in row], label="sigma_x " + ("kappa (log scale)" if all_kappa else "value"),
                 fraction=0.02)
    fig.suptitle("In-context linear regression: relative loss vs step, best lr per panel and sigma_x (first seed)")
    return save(fig, out_dir, "fig5")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("analysis_dir", help="a `skillrun analyze --out` directory (holds analysis.json)")
    parser.add_argument("--out", help="where to write the figures (default: ANALYSIS_DIR)")
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
        written += fig2(analysis, out_dir) + fig2_overlay(analysis, out_dir) + fig3(analysis, out_dir)
        written += fig4(analysis, out_dir)
    if icl.get("groups"):
        written += fig5(icl, out_dir)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
