// Combining runs: groups by resolved-config keys with mean ± std over the runs in each group
// (seeds), the best learning rate per variant (variants.h: an optimizer type, split by the
// config keys its runs differ in), and the paper's Fig. 3 view (T(p, τ) and Δ_SAL(p, τ) per
// variant at its best lr, averaged across widths and seeds).
// A censored value (a T never reached) is never averaged in as a number: a mean exists only
// when every run in the set has the value, and the count of runs that do is kept beside it.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/run_analysis.h"

namespace skillrun {

struct Stat {
  std::optional<double> mean;  // only when defined == total > 0
  std::optional<double> std;   // sample standard deviation (n − 1), only when the mean exists and n >= 2
  int defined = 0;             // runs with the value
  int total = 0;               // runs in the set
};
Stat summarize(const std::vector<std::optional<double>>& values);

// Mean ± std over a set of runs.
struct RunSet {
  std::vector<std::size_t> runs;               // indices into AnalysisResult::runs
  std::map<std::string, int> status_counts;    // status -> runs
  std::vector<double> p_k;                     // of the first run (runs in one set share the task)
  std::vector<Stat> T_k, coverage, sal;        // per subtask / per p of the grid
  Stat T_first, fraction_learned, final_mean_loss, frequency_slope, alpha_s;
  std::optional<double> predicted_alpha_s;     // of the first run
  Stat atsr;                                   // T(1)/T_first
  // Per entry of the first run's spectra (same tensor, of, moment in every run of one shape):
  // the stable and effective rank over the runs; empty without spectra.
  std::vector<Stat> spectra_stable_rank, spectra_effective_rank;
};
RunSet summarize_runs(const std::vector<RunAnalysis>& all, std::vector<std::size_t> indices);

struct Group {
  std::vector<nlohmann::json> key_values;  // one per group key
  RunSet set;
  std::string pooled;  // pooled_differences of its runs (variants.h); empty when they differ in seeds only
};
// One group per distinct tuple of key values, sorted by those values (numbers numerically).
std::vector<Group> group_runs(const std::vector<RunAnalysis>& runs);

// One learning rate of an optimizer, with the numbers it was ranked by.
struct LrCandidate {
  nlohmann::json lr;
  Stat metric;            // T(p, τ) or final mean loss, per LrSelection
  Stat fraction_learned;
  Stat final_mean_loss;
  int runs = 0;
};
// Best first. Coverage: the lrs whose runs all reach T(p, τ) first, by mean T(p, τ); then the
// rest by mean fraction of subtasks learned (higher first), then by mean final loss. FinalLoss:
// by mean final loss. Non-finite losses (diverged runs) rank last; ties go to the smaller lr.
std::vector<LrCandidate> rank_learning_rates(const std::vector<RunAnalysis>& runs,
                                             const std::vector<std::size_t>& indices, const LrSelection& selection);

// One variant (variants.h) at its best lr.
struct OptimizerView {
  std::string optimizer;             // optimizer.type ("adam/muon" when --compare pools types)
  std::string variant;               // Variant::name: "muon", "muon, momentum=0"
  nlohmann::json variant_values;     // Variant::values
  std::vector<LrCandidate> ranking;  // ranking.front() is the chosen lr
  RunSet at_best_lr;                 // every run of the variant at that lr (all widths and seeds)
  std::vector<nlohmann::json> widths;  // model.width values among those runs, sorted
  std::string pooled;  // pooled_differences of those runs beyond their widths; empty when seeds only
};
// "muon (lr 0.01)", "muon, momentum=0 (lr 0.001)": a view's column header, legend and JSON label.
std::string view_label(const OptimizerView& o);

struct AnalysisResult {
  AnalysisOptions options;               // group_keys with the variant keys added (unless --group-by)
  std::vector<RunAnalysis> runs;
  std::vector<Group> groups;
  std::vector<OptimizerView> optimizers;  // one per variant, sorted by type, then values
  std::vector<std::string> variant_keys;  // the keys that split variants (variants.h), sorted
};
AnalysisResult aggregate(std::vector<RunAnalysis> runs, const AnalysisOptions& options);

}  // namespace skillrun
