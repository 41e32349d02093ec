#!/usr/bin/env python3
"""scripts/plot.py on hand-written analysis.json files and metrics.csv: what each figure draws
(distinct ⌈p·n⌉ points, seed bands, which run a one-run curve is, labels of per-variant entries).
The figures are caught before they are saved and their axes inspected.

python3 tests/scripts/test_plot.py   (python3 + matplotlib; exit 77, a skip, without matplotlib)
"""
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import unittest

try:
    import matplotlib  # noqa: F401
except ImportError:  # a python3 without matplotlib first on the PATH: try Debian's own, else skip
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("skipped: no python3 with matplotlib", file=sys.stderr)
    sys.exit(77)

from matplotlib.collections import PolyCollection  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import plot  # noqa: E402

P = [round(0.1 * i, 1) for i in range(1, 11)]
TAU = 0.1


def zipf(n):
    weights = [(k + 1) ** -1.4 for k in range(n)]
    return [w / sum(weights) for w in weights]


def write_run(root, name, n_tasks, last_step, scale, seed, width=64, momentum=0.95):
    """A run directory whose subtask k's loss is exp(-step / (scale·(k+1)·100)); returns its
    analysis.json "runs" entry."""
    run_dir = os.path.join(root, name)
    os.makedirs(run_dir)
    header = ["step", "wall_s", "train_loss", "mean_loss"] + [f"loss_{k}" for k in range(n_tasks)]
    header += [f"acc_{k}" for k in range(n_tasks)]
    t_k = [None] * n_tasks
    with open(os.path.join(run_dir, "metrics.csv"), "w") as f:
        f.write(",".join(header) + "\n")
        for step in range(0, last_step + 1, 50):
            losses = [math.exp(-step / (scale * (k + 1) * 100)) for k in range(n_tasks)]
            for k, v in enumerate(losses):
                if v <= TAU and t_k[k] is None:
                    t_k[k] = step
            f.write(",".join(str(x) for x in [step, 0.1, "", sum(losses) / n_tasks] + losses + [0.5] * n_tasks) + "\n")
    config = {"seed": seed, "name": name, "model": {"width": width},
              "optimizer": {"type": "muon", "lr": 0.01, "momentum": momentum}}
    return {"dir": run_dir, "config": config, "T_k": t_k, "p_k": zipf(n_tasks), "tau_bits": TAU,
            "status": "converged" if None not in t_k else "max_steps"}


def stat(values):
    defined = [v for v in values if v is not None]
    if len(defined) < len(values):
        return {"mean": None, "std": None, "defined": len(defined), "runs": len(values)}
    mean = sum(defined) / len(defined)
    std = math.sqrt(sum((v - mean) ** 2 for v in defined) / (len(defined) - 1)) if len(defined) > 1 else None
    return {"mean": mean, "std": std, "defined": len(defined), "runs": len(values)}


def coverage(t_k, p):
    """T(p) of one run as analyze computes it: the ⌈p·n⌉-th smallest T_k."""
    learned = sorted(t for t in t_k if t is not None)
    m = math.ceil(p * len(t_k) - 1e-9)  # as analyze counts it (written out: the oracle)
    return learned[m - 1] if m <= len(learned) else None


def entry(runs, indices, label=None, optimizer="muon"):
    """An analysis.json "optimizers" entry over runs[indices] (label: a per-variant entry's name)."""
    chosen = [runs[i] for i in indices]
    cov = [stat([coverage(r["T_k"], p) for r in chosen]) for p in P]
    sal = [stat([None if c is None else (c - min(t for t in r["T_k"] if t is not None)) / c
                 for r, c in ((r, coverage(r["T_k"], p)) for r in chosen)]) for p in P]
    e = {"optimizer": optimizer, "lr": 0.01, "runs": list(indices), "p_k": chosen[0]["p_k"],
         "widths": sorted({r["config"]["model"]["width"] for r in chosen}), "coverage": cov, "sal": sal}
    if label:
        e["label"] = label
    return e


def write_analysis(root, runs, entries):
    path = os.path.join(root, "analysis")
    os.makedirs(path)
    with open(os.path.join(path, "analysis.json"), "w") as f:
        json.dump({"p": P, "tau_bits": None, "runs": runs, "optimizers": entries}, f)
    return path


class Figures(unittest.TestCase):
    """Runs plot.main on an analysis directory and keeps each figure, by name, unsaved."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.figures = {}
        self.saved_save = plot.save

        def keep(fig, out_dir, name):
            self.figures[name] = fig
            return [os.path.join(out_dir, name)]

        plot.save = keep

    def tearDown(self):
        plot.save = self.saved_save
        for fig in self.figures.values():
            plot.plt.close(fig)
        self.tmp.cleanup()

    def plot(self, analysis_dir, *flags):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = plot.main([analysis_dir, "--out", os.path.join(self.root, "figs")] + list(flags))
        self.assertEqual(status, 0, err.getvalue())
        return err.getvalue()

    def two_variants(self, n_tasks=5):
        """2 variants (momentum 0.95 and 0) x 3 seeds of different lengths, one width."""
        runs = []
        for v, momentum in enumerate((0.95, 0.0)):
            for seed in range(3):
                runs.append(write_run(self.root, f"m{momentum}-s{seed}", n_tasks, 1000 + 200 * seed + 400 * v,
                                      scale=0.5 + 0.1 * seed + 0.3 * v, seed=seed, momentum=momentum))
        return write_analysis(self.root, runs, [entry(runs, [0, 1, 2], "muon, momentum=0.95"),
                                                entry(runs, [3, 4, 5], "muon, momentum=0")])

    def one_run_each(self):
        """Today's format (no "label"): two optimizers, one run each."""
        runs = [write_run(self.root, "adam", 5, 2000, 1.0, seed=0), write_run(self.root, "muon", 5, 800, 0.4, seed=0)]
        return write_analysis(self.root, runs, [entry(runs, [0], optimizer="adam"), entry(runs, [1])])

    def test_fig3_draws_each_distinct_number_of_subtasks_once(self):
        self.plot(self.two_variants(n_tasks=5))
        ax_t, ax_s = self.figures["fig3_coverage_sal"].axes[:2]
        for ax in (ax_t, ax_s):
            for line in ax.get_lines():
                x = list(line.get_xdata())
                # 10 p values ask for 1..5 of 5 subtasks: 5 points at m/5, not a 10-point staircase
                self.assertEqual([round(v, 1) for v in x], [0.2, 0.4, 0.6, 0.8, 1.0])

    def test_fig3_with_three_subtasks_plots_thirds(self):
        self.plot(self.two_variants(n_tasks=3))
        line = self.figures["fig3_coverage_sal"].axes[0].get_lines()[0]
        x = list(line.get_xdata())  # each line is dodged sideways by less than 0.01
        self.assertEqual(len(x), 3)
        for got, want in zip(x, (1 / 3, 2 / 3, 1.0)):
            self.assertAlmostEqual(got, want, delta=0.01)

    def test_distinct_fractions_counts_subtasks_as_analyze_does(self):
        self.assertEqual(plot.distinct_fractions(P, 5), [(0.2, 1), (0.4, 3), (0.6, 5), (0.8, 7), (1.0, 9)])
        self.assertEqual(plot.distinct_fractions([0.14], 50), [(7 / 50, 0)])  # 0.14·50 is 7, not 8
        self.assertEqual(plot.distinct_fractions([0.5, 1.0], 0), [(0.5, 0), (1.0, 1)])  # n unknown: as given

    def test_fig3_writes_tau_and_says_one_run(self):
        self.plot(self.one_run_each())
        fig = self.figures["fig3_coverage_sal"]
        text = " ".join([fig._suptitle.get_text()] + [ax.get_title() + ax.get_ylabel() for ax in fig.axes])
        self.assertIn("τ", text)
        self.assertNotIn("tau", text)
        self.assertIn("one run", fig._suptitle.get_text())
        self.assertNotIn("averaged", fig._suptitle.get_text())

    def test_several_seeds_draw_a_band_and_say_so(self):
        self.plot(self.two_variants())
        for name in ("fig2_subtask_losses", "fig2_overlay"):
            fig = self.figures[name]
            bands = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
            self.assertGreaterEqual(len(bands), 10, name)  # 2 variants x 5 subtasks
            self.assertIn("band: min–max", fig._suptitle.get_text(), name)
        titles = [ax.get_title() for ax in self.figures["fig2_subtask_losses"].axes]
        self.assertIn("muon, momentum=0.95\nwidth 64, 3 seeds (0, 1, 2)", titles)
        self.assertIn("muon, momentum=0\nwidth 64, 3 seeds (0, 1, 2)", titles)

    def test_seed_band_is_the_geometric_mean_with_min_and_max(self):
        band = plot.seed_band([([0, 50, 100], [1.0, 0.1, 0.01]), ([0, 50], [1.0, 0.4])])
        self.assertEqual(band["steps"], [0, 50, 100])
        self.assertAlmostEqual(band["mean"][1], 0.2)  # sqrt(0.1 · 0.4)
        self.assertEqual((band["lo"][1], band["hi"][1]), (0.1, 0.4))
        self.assertEqual(band["count"], [2, 2, 1])  # the second seed stopped at step 50

    def test_one_run_names_its_seed_and_draws_no_band(self):
        self.plot(self.one_run_each())
        fig = self.figures["fig2_subtask_losses"]
        titles = [ax.get_title() for ax in fig.axes[:2]]
        self.assertEqual(titles, ["adam (lr 0.01)\nwidth 64, seed 0", "muon (lr 0.01)\nwidth 64, seed 0"])
        self.assertFalse([c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)])

    def test_fig2_uses_a_log_step_axis_for_several_entries(self):
        analysis = self.one_run_each()
        self.plot(analysis)
        self.assertEqual(self.figures["fig2_subtask_losses"].axes[0].get_xscale(), "log")
        self.assertEqual(self.figures["fig2_overlay"].axes[0].get_xscale(), "log")
        self.plot(analysis, "--steps", "panel")
        fig = self.figures["fig2_subtask_losses"]
        # per-panel ranges: muon's panel ends near its own 800 steps, and names the shared range
        self.assertLess(fig.axes[1].get_xlim()[1], 900)
        self.assertIn("of the shared 0–2,000", fig.axes[1].get_xlabel())

    def test_overlay_becomes_small_multiples_beyond_eight_lines(self):
        self.plot(self.two_variants(n_tasks=5))  # 10 lines
        fig = self.figures["fig2_overlay"]
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        self.assertEqual(len(titles), 5)
        self.assertTrue(all(t.startswith("subtask ") for t in titles))

    def test_legend_says_t_k(self):
        self.plot(self.one_run_each())
        legend_text = [t.get_text() for t in self.figures["fig2_subtask_losses"].legends[0].get_texts()]
        self.assertTrue(any(t.startswith("T_k") for t in legend_text), legend_text)
        self.assertFalse(any("T_i" in t for t in legend_text), legend_text)

    def test_runs_that_differ_in_more_than_the_seed_are_called_out(self):
        runs = [write_run(self.root, f"r{i}", 3, 600, 0.5, seed=0, momentum=m) for i, m in enumerate((0.95, 0.0))]
        err = self.plot(write_analysis(self.root, runs, [entry(runs, [0, 1])]))
        self.assertIn("differ in optimizer.momentum", err)
        self.assertIn("runs differ in optimizer.momentum", self.figures["fig2_subtask_losses"].axes[0].get_title())

    def test_fig4_draws_every_seed_of_each_width(self):
        runs = [write_run(self.root, f"w{w}-s{s}", 3, 800 + 100 * s, 0.5 + 0.1 * s, seed=s, width=w)
                for w in (32, 64) for s in range(3)]
        self.plot(write_analysis(self.root, runs, [entry(runs, range(6))]))
        fig = self.figures["fig4_width_grid"]
        panels = [ax for ax in fig.axes if ax.get_lines()]
        self.assertEqual(len(panels), 2)
        for ax in panels:
            self.assertEqual(len([c for c in ax.collections if isinstance(c, PolyCollection)]), 3)
        self.assertIn("3 seeds (0, 1, 2) per panel", fig._suptitle.get_text())

    def test_fig5_bands_the_seeds_of_an_icl_group(self):
        runs = []
        for seed in range(2):
            run_dir = os.path.join(self.root, f"icl-{seed}")
            os.makedirs(run_dir)
            with open(os.path.join(run_dir, "metrics.csv"), "w") as f:
                f.write("step,wall_s,loss,relative_loss,relative_distance\n")
                for step in range(0, 101, 10):
                    f.write(f"{step},0.1,1,{math.exp(-step / (20 + 5 * seed))},1\n")
            runs.append({"dir": run_dir, "seed": seed, "steps_to_epsilon": None})
        group = {"optimizer": "gd", "settings": {}, "sigma_x": {"kappa": 100}, "sigma_x_label": "kappa=100",
                 "sigma_w": {"kappa": 10}, "sigma_w_label": "kappa=10", "candidates": [{"lr": 1.0, "runs": [0, 1]}]}
        path = os.path.join(self.root, "icl-analysis")
        os.makedirs(path)
        with open(os.path.join(path, "analysis.json"), "w") as f:
            json.dump({"optimizers": [], "icl": {"groups": [group], "runs": runs, "varying": []}}, f)
        self.plot(path)
        ax = self.figures["fig5"].axes[0]
        self.assertEqual(len([c for c in ax.collections if isinstance(c, PolyCollection)]), 1)
        self.assertIn("2 seeds, reached 0/2", ax.get_legend().get_texts()[0].get_text())

    def test_spectra_figures_draw_each_entry_with_its_t_k_and_sigma_ratios(self):
        runs = []
        for v, momentum in enumerate((0.95, 0.0)):
            for seed in range(2):
                run = write_run(self.root, f"sp{momentum}-s{seed}", 3, 600, scale=0.3, seed=seed, momentum=momentum)
                with open(os.path.join(run["dir"], "spectra.csv"), "w") as f:
                    f.write("step,tensor,of,rows,cols,sigma_max,stable_rank,effective_rank,spectral_entropy,"
                            "singular_values\n")
                    for step in range(0, 601, 100):
                        f.write(f"{step},layers.0.weight,weight,4,8,2,{1 + step / 100 + v},2,0.5,2 1 0.5 0.25\n")
                        if step:
                            f.write(f"{step},layers.0.weight,update,4,8,1,{3 - v},2,0.9,1 1 1 0.5\n")
                run["T_first"], run["steps"], run["coverage"] = min(run["T_k"]), 600, [None] * 9 + [max(run["T_k"])]
                runs.append(run)
        self.plot(write_analysis(self.root, runs, [entry(runs, [0, 1], "muon, momentum=0.95"),
                                                   entry(runs, [2, 3], "muon, momentum=0")]))
        ranks = self.figures["spectra_ranks"].axes[0]  # layers.0.weight (weight): stable rank
        lines = [l for l in ranks.get_lines() if len(l.get_xdata()) > 1]
        self.assertEqual(len(lines), 2)
        self.assertEqual(list(lines[0].get_ydata()), [1 + s / 100 for s in range(0, 601, 100)])  # mean over seeds
        self.assertEqual(list(lines[1].get_ydata()), [2 + s / 100 for s in range(0, 601, 100)])
        ticks = [l for l in ranks.get_lines() if l.get_marker() == "|"]
        self.assertEqual(len(ticks), 2 * 3)  # each entry's 3 mean T_k
        values = self.figures["spectra_values"].axes[0]  # the first entry's weight
        self.assertEqual(list(values.get_lines()[0].get_ydata()), [1, 0.5, 0.25, 0.125])  # sigma / sigma_max
        self.assertNotIn("atsr_vs_weight_decay", self.figures)  # no weight-decay grid here

    def test_atsr_against_weight_decay_draws_one_line_per_mode_and_marks_unreached(self):
        runs, entries = [], []
        for mode in ("decoupled", "coupled"):
            for wd in (0, 0.001, 0.01):
                run = write_run(self.root, f"{mode}-{wd}", 3, 400, 0.3, seed=0)
                run["config"]["optimizer"].update({"weight_decay": wd, "weight_decay_mode": mode})
                runs.append(run)
                e = entry(runs, [len(runs) - 1], f"muon, {mode}, {wd}")
                unreached = mode == "coupled" and wd == 0.01
                e["atsr"] = stat([None if unreached else 2.0 + wd])
                e["fraction_learned"] = stat([0.4 if unreached else 1.0])
                entries.append(e)
        self.plot(write_analysis(self.root, runs, entries))
        ax = self.figures["atsr_vs_weight_decay"].axes[0]
        self.assertEqual(sorted(t.get_text() for t in ax.get_legend().get_texts()),
                         ["muon, coupled", "muon, decoupled"])
        self.assertEqual(len([l for l in ax.get_lines() if l.get_marker() == "x"]), 1)
        self.assertIn("40%", [t.get_text() for t in ax.texts])

    def test_entry_label(self):
        self.assertEqual(plot.entry_label({"optimizer": "adam", "lr": 0.001}), "adam (lr 0.001)")
        self.assertEqual(plot.entry_label({"optimizer": "muon", "lr": 0.01, "label": "muon, momentum=0"}),
                         "muon, momentum=0")


if __name__ == "__main__":
    unittest.main(verbosity=1)
