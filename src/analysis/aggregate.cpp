// Groups, best-lr ranking and the per-variant view. Runs are referred to by index into
// AnalysisResult::runs so every table and analysis.json can point back at run directories.
#include "analysis/aggregate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "analysis/variants.h"

namespace skillrun {
namespace {

template <class T>
std::optional<double> as_double(const std::optional<T>& v) {
  return v ? std::optional<double>(static_cast<double>(*v)) : std::nullopt;
}

// NaN and ±inf sort as +inf: a diverged run is never the best.
double finite_or_worst(const std::optional<double>& v) {
  return v && std::isfinite(*v) ? *v : std::numeric_limits<double>::infinity();
}

template <class F>
Stat stat_of(const std::vector<RunAnalysis>& all, const std::vector<std::size_t>& indices, F value) {
  std::vector<std::optional<double>> v;
  for (std::size_t i : indices) v.push_back(value(all[i]));
  return summarize(v);
}

}  // namespace

Stat summarize(const std::vector<std::optional<double>>& values) {
  Stat s;
  s.total = static_cast<int>(values.size());
  double sum = 0;
  for (const auto& v : values)
    if (v) ++s.defined, sum += *v;
  if (s.total == 0 || s.defined < s.total) return s;
  const double mean = sum / s.total;
  s.mean = mean;
  if (s.total >= 2) {
    double ss = 0;
    for (const auto& v : values) ss += (*v - mean) * (*v - mean);
    s.std = std::sqrt(ss / (s.total - 1));
  }
  return s;
}

RunSet summarize_runs(const std::vector<RunAnalysis>& all, std::vector<std::size_t> indices) {
  RunSet set;
  set.runs = std::move(indices);
  if (set.runs.empty()) return set;
  const RunAnalysis& first = all[set.runs.front()];
  set.p_k = first.p_k;
  set.predicted_alpha_s = first.predicted_alpha_s;
  for (std::size_t i : set.runs) ++set.status_counts[all[i].status];
  for (std::size_t k = 0; k < first.T_k.size(); ++k)
    set.T_k.push_back(stat_of(all, set.runs, [k](const RunAnalysis& r) {
      return k < r.T_k.size() ? as_double(r.T_k[k]) : std::nullopt;
    }));
  for (std::size_t j = 0; j < first.coverage.size(); ++j) {
    set.coverage.push_back(stat_of(all, set.runs, [j](const RunAnalysis& r) { return as_double(r.coverage[j]); }));
    set.sal.push_back(stat_of(all, set.runs, [j](const RunAnalysis& r) { return r.sal[j]; }));
  }
  set.T_first = stat_of(all, set.runs, [](const RunAnalysis& r) { return as_double(r.T_first); });
  set.fraction_learned = stat_of(all, set.runs, [](const RunAnalysis& r) { return std::optional(r.fraction_learned); });
  set.final_mean_loss = stat_of(all, set.runs, [](const RunAnalysis& r) {
    return std::isnan(r.final_mean_loss) ? std::nullopt : std::optional(r.final_mean_loss);
  });
  set.frequency_slope = stat_of(all, set.runs, [](const RunAnalysis& r) {
    return r.frequency_slope ? std::optional(r.frequency_slope->slope) : std::nullopt;
  });
  set.alpha_s = stat_of(all, set.runs, [](const RunAnalysis& r) {
    return r.step_scaling ? std::optional(r.step_scaling->alpha_s) : std::nullopt;
  });
  set.atsr = stat_of(all, set.runs, [](const RunAnalysis& r) { return r.atsr; });
  for (std::size_t e = 0; e < first.spectra.size(); ++e) {
    const SpectraAt& want = first.spectra[e];
    const auto entry = [&](const RunAnalysis& r) -> const SpectraAt* {
      const bool same = e < r.spectra.size() && r.spectra[e].tensor == want.tensor && r.spectra[e].of == want.of &&
                        r.spectra[e].moment == want.moment;
      return same ? &r.spectra[e] : nullptr;
    };
    set.spectra_stable_rank.push_back(stat_of(all, set.runs, [&](const RunAnalysis& r) {
      const SpectraAt* a = entry(r);
      return a ? a->stable_rank : std::nullopt;
    }));
    set.spectra_effective_rank.push_back(stat_of(all, set.runs, [&](const RunAnalysis& r) {
      const SpectraAt* a = entry(r);
      return a ? a->effective_rank : std::nullopt;
    }));
  }
  return set;
}

std::vector<Group> group_runs(const std::vector<RunAnalysis>& runs) {
  std::map<std::vector<nlohmann::json>, std::vector<std::size_t>> by_key;  // json's < orders numbers numerically
  for (std::size_t i = 0; i < runs.size(); ++i) by_key[runs[i].group_values].push_back(i);
  std::vector<Group> groups;
  for (auto& [key, indices] : by_key) groups.push_back({key, summarize_runs(runs, std::move(indices)), ""});
  return groups;
}

std::vector<LrCandidate> rank_learning_rates(const std::vector<RunAnalysis>& runs,
                                             const std::vector<std::size_t>& indices, const LrSelection& selection) {
  std::map<nlohmann::json, std::vector<std::size_t>> by_lr;
  for (std::size_t i : indices) by_lr[value_at(runs[i].config, "optimizer.lr")].push_back(i);
  std::vector<LrCandidate> out;
  for (const auto& [lr, members] : by_lr) {
    LrCandidate c;
    c.lr = lr;
    c.runs = static_cast<int>(members.size());
    c.fraction_learned = stat_of(runs, members, [](const RunAnalysis& r) { return std::optional(r.fraction_learned); });
    c.final_mean_loss = stat_of(runs, members, [](const RunAnalysis& r) { return std::optional(r.final_mean_loss); });
    if (selection.metric == LrSelection::Metric::FinalLoss)
      c.metric = c.final_mean_loss;
    else
      c.metric = stat_of(runs, members, [&](const RunAnalysis& r) { return as_double(coverage_time(r.T_k, selection.p)); });
    out.push_back(std::move(c));
  }
  // Sort key: (metric undefined, metric, −fraction learned, final loss, lr); for FinalLoss the
  // metric is the final loss itself, so only its value and the lr order matter.
  const auto key = [](const LrCandidate& c) {
    return std::make_tuple(!c.metric.mean.has_value(), finite_or_worst(c.metric.mean),
                           -c.fraction_learned.mean.value_or(0), finite_or_worst(c.final_mean_loss.mean));
  };
  std::stable_sort(out.begin(), out.end(), [&](const LrCandidate& a, const LrCandidate& b) { return key(a) < key(b); });
  return out;  // by_lr iterated in lr order, so the stable sort breaks ties towards the smaller lr
}

std::string view_label(const OptimizerView& o) {
  return fmt::format("{} (lr {})", o.variant, display_value(o.ranking.front().lr));
}

AnalysisResult aggregate(std::vector<RunAnalysis> runs, const AnalysisOptions& options) {
  AnalysisResult result;
  result.options = options;
  result.runs = std::move(runs);
  const std::vector<Variant> variants = split_variants(result.runs, options.compare_keys);
  result.variant_keys = variant_keys(variants);
  // Without --group-by the groups split by variant too: only seeds are averaged over.
  std::vector<std::string>& keys = result.options.group_keys;
  if (!options.group_keys_given) {
    for (const std::string& k : result.variant_keys)
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    for (RunAnalysis& r : result.runs) {
      r.group_values.clear();
      for (const std::string& k : keys) r.group_values.push_back(value_at(r.config, k));
    }
  }
  result.groups = group_runs(result.runs);
  for (Group& g : result.groups) g.pooled = pooled_differences(result.runs, g.set.runs, {});

  for (const Variant& variant : variants) {
    OptimizerView view;
    std::set<std::string> types;
    for (std::size_t i : variant.runs) types.insert(display_value(value_at(result.runs[i].config, "optimizer.type")));
    view.optimizer = fmt::format("{}", fmt::join(types, "/"));
    view.variant = variant.name;
    view.variant_values = variant.values;
    view.ranking = rank_learning_rates(result.runs, variant.runs, options.select_lr);
    std::vector<std::size_t> at_best;
    std::vector<nlohmann::json> widths;
    for (std::size_t i : variant.runs) {
      if (value_at(result.runs[i].config, "optimizer.lr") != view.ranking.front().lr) continue;
      at_best.push_back(i);
      const nlohmann::json w = value_at(result.runs[i].config, "model.width");
      if (std::find(widths.begin(), widths.end(), w) == widths.end()) widths.push_back(w);
    }
    std::sort(widths.begin(), widths.end());
    view.pooled = pooled_differences(result.runs, at_best, {"model.width"});
    view.at_best_lr = summarize_runs(result.runs, std::move(at_best));
    view.widths = std::move(widths);
    result.optimizers.push_back(std::move(view));
  }
  return result;
}

}  // namespace skillrun
