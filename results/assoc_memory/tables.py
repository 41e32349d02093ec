#!/usr/bin/env python3
"""Tables and figures of the assoc_memory study (README.md) from the sweeps in STUDY_DIR and
the `skillrun analyze` outputs run.sh writes there (analysis_a, analysis_b, analysis_c: their
runs.csv holds T_k, the slope of log T_k on log p_k and alpha_S, computed by skillrun).

Usage: python3 results/assoc_memory/tables.py STUDY_DIR [--out DIR]   (needs matplotlib)
Writes DIR/tables.md, DIR/fig_a_Tk.png, DIR/fig_b_signgd_oracle.png, DIR/fig_c_loss.png.
"""
import argparse
import csv
import json
import math
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MATCHED = {"sgd": 8.0, "muon": 0.05, "signgd": 0.005, "adam": 0.01}  # T_first near 200 at N = 64
NAMES = {"sgd": "GD", "muon": "Muon", "signgd": "SignGD", "adam": "Adam"}


def read_runs(analysis_dir):
    rows = []
    with open(os.path.join(analysis_dir, "runs.csv")) as f:
        for r in csv.DictReader(f):
            cfg = json.load(open(os.path.join(r["dir"], "config.json")))
            r["cfg"] = cfg
            r["opt"] = cfg["optimizer"]["type"]
            r["lr"] = float(cfg["optimizer"]["lr"])
            r["emb"] = cfg["task"]["embeddings"]
            k = cfg["task"]["n_groups"]
            r["T"] = [float(r[f"T_{i}"]) if r[f"T_{i}"] not in ("", "nan") else None for i in range(k)]
            rows.append(r)
    return rows


def p_groups(cfg):
    t = cfg["task"]
    n, g, b = t["n_facts"], t["n_groups"], t["zipf_exponent"]
    p = [(i + 1) ** -b for i in range(n)]
    z = sum(p)
    per = n // g
    return [sum(p[j * per:(j + 1) * per]) / z for j in range(g)]


def num(x):
    try:
        v = float(x)
        return None if math.isnan(v) else v
    except (TypeError, ValueError):
        return None


def fmt(v, digits=0):
    if v is None:
        return "—"
    return f"{v:.{digits}f}"


def mean_T(runs, k):
    vals = [r["T"][k] for r in runs]
    if any(v is None for v in vals):
        got = [v for v in vals if v is not None]
        return None, len(got)
    return statistics.mean(vals), len(vals)


def table_T(runs_by_key, title, out):
    out.append(f"\n### {title}\n")
    out.append("| optimizer | embeddings | lr | seeds | T_0 | T_1 | T_2 | T_3 | T_last/T_first | slope log T_k on log p_k |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for (opt, emb, lr), runs in runs_by_key:
        cells = []
        for k in range(4):
            m, n = mean_T(runs, k)
            cells.append(fmt(m) if m is not None else f"— ({n}/{len(runs)})")
        ratios = [r["T"][-1] / r["T"][0] for r in runs if r["T"][-1] is not None and r["T"][0]]
        ratio = f"{statistics.mean(ratios):.2f}" if len(ratios) == len(runs) else "—"
        slopes = [num(r["slope_logT_logp"]) for r in runs]
        slope = f"{statistics.mean(slopes):.2f}" if all(s is not None for s in slopes) else "—"
        out.append(f"| {NAMES[opt]} | {emb} | {lr:g} | {len(runs)} | " + " | ".join(cells) + f" | {ratio} | {slope} |")


def grouped(runs):
    keys = sorted({(r["opt"], r["emb"], r["lr"]) for r in runs}, key=lambda k: (list(NAMES).index(k[0]), k[1], k[2]))
    return [(k, [r for r in runs if (r["opt"], r["emb"], r["lr"]) == k]) for k in keys]


def best_lr(groups):
    """Per (optimizer, embeddings): the lr whose seeds all learn every group with the smallest mean T_last."""
    best = {}
    for (opt, emb, lr), runs in groups:
        if any(r["T"][-1] is None for r in runs):
            continue
        t = statistics.mean(r["T"][-1] for r in runs)
        if (opt, emb) not in best or t < best[(opt, emb)][0]:
            best[(opt, emb)] = (t, lr)
    return best


def plot_T(groups, select, path, title):
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (opt, emb, lr), runs in groups:
        if not select(opt, emb, lr):
            continue
        p = p_groups(runs[0]["cfg"])
        ks = [k for k in range(len(p)) if all(r["T"][k] is not None for r in runs)]
        ax.plot([p[k] for k in ks], [statistics.mean(r["T"][k] for r in runs) for k in ks], "o-",
                label=f"{NAMES[opt]} {emb} (lr {lr:g})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("group frequency p_k")
    ax.set_ylabel("T_k (steps, mean over seeds)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def curves(run_dir):
    steps, loss = [], []
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        for r in csv.DictReader(f):
            if int(r["step"]) > 0:
                steps.append(int(r["step"]))
                loss.append(float(r["mean_loss"]))
    return steps, loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("study")
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    out = ["# assoc_memory study: tables (written by tables.py)"]

    runs_a = read_runs(os.path.join(a.study, "analysis_a"))
    ga = grouped(runs_a)
    table_T([g for g in ga if g[0][2] == MATCHED[g[0][0]]], "(a) lr matched so that T_first is near 200", out)
    table_T(ga, "(a) every lr of the grid", out)
    out.append("\n(a) best lr per optimizer (smallest mean T_last among the lrs whose 3 seeds learn all 4 groups): " +
               ", ".join(f"{NAMES[o]} {lr:g} (T_last {t:.0f})" for (o, e), (t, lr) in best_lr(ga).items()))
    plot_T(ga, lambda o, e, lr: lr == MATCHED[o], os.path.join(a.out, "fig_a_Tk.png"),
           "(a) noiseless, orthogonal: T_k vs p_k, lr matched for T_first ~ 200")

    runs_b = read_runs(os.path.join(a.study, "analysis_b"))
    gb = grouped(runs_b)
    table_T([g for g in gb if g[0][0] in ("signgd", "muon") and (g[0][0] == "signgd" or g[0][2] == 0.05)],
            "(b) SignGD: identity (oracle) vs orthogonal embeddings; Muon for reference", out)
    plot_T(gb, lambda o, e, lr: (o == "signgd" and lr in (0.0025, 0.005, 0.01)) or (o == "muon" and lr == 0.05),
           os.path.join(a.out, "fig_b_signgd_oracle.png"), "(b) SignGD with identity vs orthogonal embeddings")

    runs_c = read_runs(os.path.join(a.study, "analysis_c"))
    out.append("\n### (c) label noise 0.1, beta 1.5, N = M = d = 128: mean loss vs steps\n")
    out.append("| optimizer | lr | seeds | final mean loss (bits) | alpha_S (fit, mean ± sd over seeds) | R² of the fit | loss floor of the fit | paper's predicted exponent |")
    out.append("|---|---|---|---|---|---|---|---|")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (opt, emb, lr), runs in grouped(runs_c):
        al = [num(r["alpha_s"]) for r in runs]
        fl = [num(r["alpha_s_loss_floor"]) for r in runs]
        pred = num(runs[0]["alpha_s_predicted"])
        finals = [num(r["final_mean_loss"]) for r in runs]
        alpha = f"{statistics.mean(al):.2f} ± {statistics.pstdev(al):.2f}" if all(x is not None for x in al) else "—"
        floor = f"{statistics.mean(fl):.3f}" if all(x is not None for x in fl) else "—"
        r2 = [num(r["alpha_s_r2"]) for r in runs]
        win = f"{statistics.mean(r2):.3f}" if all(x is not None for x in r2) else "—"
        out.append(f"| {NAMES[opt]} | {lr:g} | {len(runs)} | {statistics.mean(finals):.4f} | {alpha} | {win} | {floor} | "
                   f"{fmt(pred, 2) if pred is not None else '—'} |")
        s, _ = curves(runs[0]["dir"])
        mean_curve = [statistics.mean(v) for v in zip(*[curves(r["dir"])[1] for r in runs])]
        ax.plot(s, mean_curve, label=f"{NAMES[opt]} (lr {lr:g}): α_S {alpha.split(' ')[0]}, paper "
                                     f"{fmt(pred, 2) if pred is not None else '—'}")
    eps, m = 0.1, 128
    ax.axhline(-math.log2(1 - eps + eps / m), color="gray", ls="--", lw=0.8, label="clean-loss floor −log2(1−ε+ε/M)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean loss Σ p_k loss_k (bits, clean answers)")
    ax.set_title("(c) ε = 0.1, β = 1.5, N = M = d = 128 (mean of 3 seeds)", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "fig_c_loss.png"), dpi=120)
    plt.close(fig)

    with open(os.path.join(a.out, "tables.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
