// Builds the report tables from an AnalysisResult. Group rows carry mean ± std over seeds; a
// group of one run shows its fits' standard errors instead (there is no spread to show).
#include "analysis/summary_tables.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iterator>
#include <set>

#include <fmt/format.h>

namespace skillrun {
namespace {

// Display width of UTF-8 text: code points, not bytes ("—" and "±" are one column each).
std::size_t display_width(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string pad(const std::string& s, std::size_t width, bool right) {
  const std::string fill(width > display_width(s) ? width - display_width(s) : 0, ' ');
  return right ? fill + s : s + fill;
}

// Text columns (names, statuses) align left, numbers right: a column is text when any of its
// cells starts with a letter.
std::vector<bool> left_aligned(const Table& t) {
  std::vector<bool> left(t.header.size(), false);
  for (const auto& row : t.rows)
    for (std::size_t c = 0; c < row.size() && c < left.size(); ++c)
      if (!row[c].empty() && std::isalpha(static_cast<unsigned char>(row[c][0])) && row[c] != "nan") left[c] = true;
  return left;
}

std::string format_number(double v, int decimals) {
  if (std::isnan(v)) return "nan";
  return fmt::format("{:.{}f}", v, decimals);
}

std::string format_fit(double value, double se, int decimals) {
  if (std::isnan(se)) return format_number(value, decimals);
  return format_number(value, decimals) + " ± " + format_number(se, decimals);
}

std::string format_percent(const Stat& s) {
  if (!s.mean) return format_stat(s, 0);
  return fmt::format("{:.0f}%", 100 * *s.mean);
}

std::string p_label(double p) { return fmt::format("{:g}", p); }

std::string metric_label(const LrSelection& s) {
  return s.metric == LrSelection::Metric::FinalLoss ? "final loss (bits)" : fmt::format("T({:g})", s.p);
}

// Group key columns, each named by the last part of its key ("optimizer.lr" -> "lr") unless two
// keys end alike; the title names the keys in full.
std::vector<std::string> key_headers(const std::vector<std::string>& keys) {
  std::vector<std::string> out;
  for (const std::string& k : keys) out.push_back(k.substr(k.rfind('.') + 1));
  for (std::size_t i = 0; i < out.size(); ++i)
    if (std::count(out.begin(), out.end(), out[i]) > 1) out[i] = keys[i];
  return out;
}

std::string groups_title(const AnalysisResult& r, const std::string& what) {
  return fmt::format("Runs by group ({}): {}", fmt::join(r.options.group_keys, ", "), what);
}

// Sentences for a note: what the runs of each named set differ in beyond seeds (pairs of name
// and pooled_differences; empty ones left out), one sentence for the sets that differ alike (a
// sweep run on two devices has many). `noun`/`nouns` go before one name/several.
std::string pooled_note(const std::vector<std::pair<std::string, std::string>>& named, const std::string& noun,
                        const std::string& nouns) {
  std::vector<std::pair<std::string, std::vector<std::string>>> alike;  // what they differ in, the names
  for (const auto& [name, what] : named) {
    if (what.empty()) continue;
    auto it = std::find_if(alike.begin(), alike.end(), [&](const auto& a) { return a.first == what; });
    if (it == alike.end()) it = alike.insert(alike.end(), {what, {}});
    it->second.push_back(name);
  }
  std::string out;
  for (const auto& [what, names] : alike)
    out += names.size() == 1
               ? fmt::format(" {}{}: its runs differ in {}.", noun.empty() ? "" : noun + " ", names.front(), what)
               : fmt::format(" {}{}: the runs of each differ in {}.", nouns.empty() ? "" : nouns + " ",
                             fmt::join(names, "; "), what);
  return out;
}

Table groups_table(const AnalysisResult& r) {
  Table t;
  const double p_max = r.options.p_grid.back();
  t.title = groups_title(r, "learning times (steps, mean ± std over seeds)");
  t.header = key_headers(r.options.group_keys);
  for (const char* h : {"runs", "status", "T_first"}) t.header.emplace_back(h);
  t.header.push_back(fmt::format("T({})", p_label(p_max)));
  t.header.push_back(fmt::format("SAL({})", p_label(p_max)));
  t.header.emplace_back("ATSR");
  t.header.emplace_back("learned");
  for (const Group& g : r.groups) {
    std::vector<std::string> row;
    for (const auto& v : g.key_values) row.push_back(display_value(v));
    const RunSet& s = g.set;
    row.push_back(std::to_string(s.runs.size()));
    row.push_back(format_status(s.status_counts));
    row.push_back(format_stat(s.T_first, 0));
    row.push_back(format_stat(s.coverage.back(), 0));
    row.push_back(format_stat(s.sal.back(), 3));
    row.push_back(format_stat(s.atsr, 2));
    row.push_back(format_percent(s.fraction_learned));
    t.rows.push_back(std::move(row));
  }
  t.note = "SAL(p) = (T(p) − T_first)/T(p); ATSR = T(1)/T_first = 1/(1 − SAL(1)); learned: subtasks with T_k "
           "defined.";
  std::vector<std::pair<std::string, std::string>> pooled;
  for (const Group& g : r.groups) {
    std::vector<std::string> key;
    for (const auto& v : g.key_values) key.push_back(display_value(v));
    pooled.emplace_back(fmt::format("{}", fmt::join(key, " ")), g.pooled);
  }
  t.note += pooled_note(pooled, "Group", "Groups");
  return t;
}

Table fits_table(const AnalysisResult& r) {
  Table t;
  t.title = groups_title(r, "loss and fits");
  t.header = key_headers(r.options.group_keys);
  for (const char* h : {"final loss", "slope T_k~p_k", "alpha_S", "alpha/(alpha+1)"}) t.header.emplace_back(h);
  std::size_t fewest_tasks = 0;
  for (const Group& g : r.groups) {
    std::vector<std::string> row;
    for (const auto& v : g.key_values) row.push_back(display_value(v));
    const RunSet& s = g.set;
    row.push_back(format_stat(s.final_mean_loss, 4));
    const RunAnalysis& only = r.runs[s.runs.front()];
    if (fewest_tasks == 0 || only.p_k.size() < fewest_tasks) fewest_tasks = only.p_k.size();
    if (s.runs.size() == 1) {
      row.push_back(only.frequency_slope ? format_fit(only.frequency_slope->slope, only.frequency_slope->slope_stderr, 2) : "—");
      row.push_back(only.step_scaling ? format_fit(only.step_scaling->alpha_s, only.step_scaling->alpha_s_stderr, 2) : "—");
    } else {
      row.push_back(format_stat(s.frequency_slope, 2));
      row.push_back(format_stat(s.alpha_s, 2));
    }
    row.push_back(s.predicted_alpha_s ? format_number(*s.predicted_alpha_s, 2) : "—");
    t.rows.push_back(std::move(row));
  }
  t.note = "Final loss in bits. Slope of log T_k on log p_k: −1 sequential (quantization model), 0 parallel. "
           "alpha_S: mean_loss ≈ L∞ + C·t^(−alpha_S), beside the prediction alpha/(alpha+1), alpha = "
           "zipf_exponent − 1. For one run, ± is the fit's standard error.";
  if (fewest_tasks > 0 && fewest_tasks < 20)
    t.note += fmt::format(" Caveat: with {} subtasks the mean loss falls in {} drops, not along the smooth power law "
                          "the prediction assumes (many subtasks); compare alpha_S with it only roughly.",
                          fewest_tasks, fewest_tasks);
  return t;
}

Table best_lr_table(const AnalysisResult& r) {
  Table t;
  const LrSelection& sel = r.options.select_lr;
  t.title = fmt::format("Best learning rate per optimizer (by {})", metric_label(sel));
  t.header = {"optimizer", "lr", "runs", metric_label(sel), "learned", "final loss", "other lrs (ranked)"};
  const int decimals = sel.metric == LrSelection::Metric::FinalLoss ? 4 : 0;
  for (const OptimizerView& o : r.optimizers) {
    const LrCandidate& best = o.ranking.front();
    std::string others;
    for (std::size_t i = 1; i < o.ranking.size(); ++i) {
      const LrCandidate& c = o.ranking[i];
      others += fmt::format("{}{}: {}", others.empty() ? "" : "; ", display_value(c.lr), format_stat(c.metric, decimals));
      if (!c.metric.mean && sel.metric == LrSelection::Metric::Coverage)
        others += fmt::format(", {} learned", format_percent(c.fraction_learned));
    }
    t.rows.push_back({o.variant, display_value(best.lr), std::to_string(best.runs), format_stat(best.metric, decimals),
                      format_percent(best.fraction_learned), format_stat(best.final_mean_loss, 4),
                      others.empty() ? "—" : others});
  }
  t.note = "Runs that never reach the metric rank after those that do, by fraction learned, then final loss.";
  if (!r.options.compare_keys.empty())
    t.note += fmt::format(" One row per value of {} (--compare).", fmt::join(r.options.compare_keys, ", "));
  else if (!r.variant_keys.empty())
    t.note += fmt::format(" Variants differ in {}; each has its own best lr, and only its seeds (and widths) "
                          "are averaged.",
                          fmt::join(r.variant_keys, ", "));
  std::vector<std::pair<std::string, std::string>> pooled;
  for (const OptimizerView& o : r.optimizers) pooled.emplace_back(view_label(o), o.pooled);
  t.note += pooled_note(pooled, "", "");
  return t;
}

Table acquisition_table(const AnalysisResult& r) {
  Table t;
  t.title = "T_k: first eval step with loss_k <= tau, per subtask, at the best lr (steps)";
  t.header = {"subtask", "p_k"};
  std::size_t n_tasks = 0;
  const std::vector<double>* p_k = nullptr;
  for (const OptimizerView& o : r.optimizers) {
    t.header.push_back(view_label(o));
    if (o.at_best_lr.T_k.size() > n_tasks) n_tasks = o.at_best_lr.T_k.size(), p_k = &o.at_best_lr.p_k;
  }
  for (std::size_t k = 0; k < n_tasks; ++k) {
    std::vector<std::string> row{std::to_string(k), fmt::format("{:.4f}", (*p_k)[k])};
    for (const OptimizerView& o : r.optimizers)
      row.push_back(k < o.at_best_lr.T_k.size() ? format_stat(o.at_best_lr.T_k[k], 0) : "");
    t.rows.push_back(std::move(row));
  }
  t.note = "p_k ∝ (k+1)^(−zipf_exponent); mean ± std over the runs at the best lr (all widths and seeds).";
  return t;
}

// The rows of the p grid worth showing: with one n_tasks for every run, p values that ask for
// the same ⌈p·n_tasks⌉ subtasks give the same row, so only the largest of them is kept.
std::vector<std::size_t> distinct_p_rows(const AnalysisResult& r) {
  std::set<std::size_t> n_tasks;
  for (const RunAnalysis& a : r.runs) n_tasks.insert(a.p_k.size());
  const auto needed = [&](std::size_t j) {
    return static_cast<long long>(std::ceil(r.options.p_grid[j] * static_cast<double>(*n_tasks.begin()) - 1e-9));
  };
  std::vector<std::size_t> rows;
  for (std::size_t j = 0; j < r.options.p_grid.size(); ++j)
    if (n_tasks.size() != 1 || j + 1 == r.options.p_grid.size() || needed(j) != needed(j + 1)) rows.push_back(j);
  return rows;
}

// T(p) (time) or SAL(p) (!time) per variant at its best lr.
Table coverage_table(const AnalysisResult& r, bool time) {
  Table t;
  t.title = time ? "p-coverage time T(p, tau) at the best lr, averaged across widths and seeds (Fig. 3, steps)"
                 : "Skill acquisition lag SAL(p, tau) at the best lr, averaged across widths and seeds (Fig. 3)";
  t.header = {"p"};
  for (const OptimizerView& o : r.optimizers) t.header.push_back(view_label(o));
  std::set<std::size_t> n_tasks;
  for (const RunAnalysis& a : r.runs) n_tasks.insert(a.p_k.size());
  for (std::size_t j : distinct_p_rows(r)) {
    std::vector<std::string> row{p_label(r.options.p_grid[j])};
    for (const OptimizerView& o : r.optimizers)
      row.push_back(time ? format_stat(o.at_best_lr.coverage[j], 0) : format_stat(o.at_best_lr.sal[j], 3));
    t.rows.push_back(std::move(row));
  }
  if (!time) {  // the acquisition-time spread ratio beside SAL
    std::vector<std::string> row{"ATSR"};
    for (const OptimizerView& o : r.optimizers) row.push_back(format_stat(o.at_best_lr.atsr, 2));
    t.rows.push_back(std::move(row));
  }
  t.note = time ? "T(p): first step with at least ⌈p·n_tasks⌉ subtasks learned."
                : "SAL(p) = (T(p) − T_first)/T(p). 0: learned together; near 1: in sequence. ATSR = T(1)/T_first = "
                  "1/(1 − SAL(1)).";
  if (n_tasks.size() == 1 && t.rows.size() < r.options.p_grid.size())
    t.note += fmt::format(" With {} subtasks, p values asking for the same number of subtasks share one row (the "
                          "largest p shown).",
                          *n_tasks.begin());
  return t;
}

// `text` broken at spaces into lines of at most `width` display columns.
std::string wrapped(const std::string& text, std::size_t width) {
  std::string out, line;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (!line.empty() && display_width(line) + 1 + display_width(word) > width) {
      out += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    start = end + 1;
  }
  return out + line;
}

}  // namespace

std::string format_status(const std::map<std::string, int>& counts) {
  if (counts.size() == 1 && counts.begin()->second == 1) return counts.begin()->first;
  std::string out;
  for (const auto& [status, n] : counts) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", n, status);
  return out;
}

std::string format_stat(const Stat& s, int decimals) {
  if (s.mean) return s.std ? format_number(*s.mean, decimals) + " ± " + format_number(*s.std, decimals)
                           : format_number(*s.mean, decimals);
  if (s.defined == 0) return "—";
  return fmt::format("— ({}/{})", s.defined, s.total);
}

std::string render_text(const Table& t) {
  std::vector<std::size_t> width(t.header.size(), 0);
  for (std::size_t c = 0; c < t.header.size(); ++c) width[c] = display_width(t.header[c]);
  for (const auto& row : t.rows)
    for (std::size_t c = 0; c < row.size() && c < width.size(); ++c) width[c] = std::max(width[c], display_width(row[c]));
  const std::vector<bool> left = left_aligned(t);
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t c = 0; c < width.size(); ++c)
      out.append(c ? "  " : "").append(pad(c < cells.size() ? cells[c] : "", width[c], !left[c]));
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = wrapped(t.title, 100) + "\n" + line(t.header);
  std::size_t total = 0;
  for (std::size_t w : width) total += w;
  out += std::string(total + 2 * (width.size() - 1), '-') + "\n";
  for (const auto& row : t.rows) out += line(row);
  if (!t.note.empty()) out += wrapped(t.note, 100) + "\n";
  return out;
}

std::string render_markdown(const Table& t) {
  const auto line = [](const std::vector<std::string>& cells) {
    std::string out = "|";
    for (const auto& c : cells) out += " " + c + " |";
    return out + "\n";
  };
  const std::vector<bool> left = left_aligned(t);
  std::string out = "### " + t.title + "\n\n" + line(t.header) + "|";
  for (std::size_t c = 0; c < t.header.size(); ++c) out += left[c] ? "---|" : "---:|";
  out += "\n";
  for (const auto& row : t.rows) out += line(row);
  if (!t.note.empty()) out += "\n" + t.note + "\n";
  return out;
}

// Stable and effective rank of every weight and update at T_first, T(0.5), T(1) and the end, per
// variant at its best lr (runs that wrote spectra.csv: eval.spectra_every); no rows without them.
Table spectra_table(const AnalysisResult& r) {
  Table t;
  t.title = "Spectra at the learning times: stable rank | effective rank, at the best lr (mean ± std over runs)";
  t.header = {"variant", "tensor", "of"};
  for (const char* what : {"SR", "ER"})
    for (const char* m : kSpectraMoments) t.header.push_back(fmt::format("{} {}", what, m));
  for (const OptimizerView& o : r.optimizers) {
    const RunSet& s = o.at_best_lr;
    if (s.runs.empty()) continue;
    const std::vector<SpectraAt>& entries = r.runs[s.runs.front()].spectra;
    const std::size_t moments = std::size(kSpectraMoments);
    for (std::size_t e = 0; e + moments <= entries.size() && e + moments <= s.spectra_stable_rank.size();
         e += moments) {
      std::vector<std::string> row{view_label(o), entries[e].tensor, entries[e].of};
      for (std::size_t m = 0; m < moments; ++m) row.push_back(format_stat(s.spectra_stable_rank[e + m], 2));
      for (std::size_t m = 0; m < moments; ++m) row.push_back(format_stat(s.spectra_effective_rank[e + m], 2));
      t.rows.push_back(std::move(row));
    }
  }
  t.note = "SR: stable rank ||X||_F^2/sigma_max^2; ER: effective rank exp(H(sigma/sum sigma)); from the last spectra row "
           "at or before each time (spectra.csv, eval.spectra_every). update: W_t - W_{t-1}.";
  return t;
}

std::vector<Table> summary_tables(const AnalysisResult& r) {
  std::vector<Table> tables{groups_table(r), fits_table(r), best_lr_table(r), acquisition_table(r),
                            coverage_table(r, true), coverage_table(r, false)};
  if (Table spectra = spectra_table(r); !spectra.rows.empty()) tables.push_back(std::move(spectra));
  return tables;
}

std::string summary_headline(const AnalysisResult& r) {
  std::map<std::string, int> statuses;
  std::set<double> taus;
  for (const RunAnalysis& a : r.runs) ++statuses[a.status], taus.insert(a.tau_bits);
  std::string tau;
  if (r.options.tau_bits)
    tau = fmt::format("tau = {:g} bits (--tau)", *r.options.tau_bits);
  else if (taus.size() == 1)
    tau = fmt::format("tau = {:g} bits (the runs' own)", *taus.begin());
  else
    tau = fmt::format("tau = each run's own ({})", fmt::join(taus, ", "));
  return fmt::format("{} run{} ({}); {}", r.runs.size(), r.runs.size() == 1 ? "" : "s", format_status(statuses), tau);
}

std::string render_report_text(const AnalysisResult& r) {
  std::string out = summary_headline(r) + "\n";
  for (const Table& t : summary_tables(r)) out += "\n" + render_text(t);
  return out;
}

std::string render_report_markdown(const AnalysisResult& r) {
  std::string out = "# skillrun analysis\n\n" + summary_headline(r) + "\n";
  for (const Table& t : summary_tables(r)) out += "\n" + render_markdown(t);
  return out;
}

}  // namespace skillrun
