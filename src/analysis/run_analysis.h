// The numbers of one run for `skillrun analyze`: T_k(τ) recomputed from its eval rows (so any
// τ works, not just the run's own), T_first, T(p, τ) and Δ_SAL(p, τ) on a grid of p, and the
// two log–log fits. One RunAnalysis per run directory; aggregate.h combines them.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/acquisition.h"
#include "analysis/fits.h"
#include "analysis/run_reader.h"
#include "analysis/spectra.h"

namespace skillrun {

// How the best learning rate of an optimizer is chosen (`--select-lr`).
struct LrSelection {
  enum class Metric { Coverage, FinalLoss };
  Metric metric = Metric::Coverage;
  double p = 1.0;  // Coverage: rank by T(p, τ)
};
// "coverage" (T(1, τ)), "coverage:P" (T(P, τ), P in (0, 1]) or "final_loss"; UsageError otherwise.
LrSelection parse_lr_selection(const std::string& text);
std::string to_string(const LrSelection& s);

struct AnalysisOptions {
  std::optional<double> tau_bits;  // --tau; empty: each run's own tau_bits
  std::vector<double> p_grid = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
  std::vector<std::string> group_keys = {"optimizer.type", "model.width", "optimizer.lr"};
  bool group_keys_given = false;  // --group-by: else the variant keys (variants.h) are added to group_keys
  // --compare: the keys whose values name the per-variant views; empty: optimizer.type and the
  // keys that vary among its runs (variants.h).
  std::vector<std::string> compare_keys;
  LrSelection select_lr;
};
// "0.5,1" -> {0.5, 1}; every value in (0, 1]; UsageError naming the bad entry otherwise.
std::vector<double> parse_p_list(const std::string& text);
// "a.b,c" -> {"a.b", "c"}; UsageError naming `flag` for an empty key.
std::vector<std::string> parse_key_list(const std::string& text, const std::string& flag = "--group-by");

struct RunAnalysis {
  std::filesystem::path dir;
  nlohmann::json config;
  std::string status;
  std::string message;
  bool metrics_truncated = false;
  std::vector<nlohmann::json> group_values;  // one per AnalysisOptions::group_keys, null if absent
  std::map<std::string, std::string> provenance;  // RunRecord::provenance

  double tau_bits = 0;               // the τ used
  int64_t last_step = 0;             // step of the last eval row (0 without rows)
  std::vector<double> p_k;           // Zipf frequency of each subtask
  AcquisitionTimes T_k;              // T_k(τ)
  std::optional<int64_t> T_first;
  std::vector<std::optional<int64_t>> coverage;  // T(p, τ) for each p of the grid
  std::vector<std::optional<double>> sal;        // Δ_SAL(p, τ) for each p of the grid
  double fraction_learned = 0;
  double final_mean_loss = 0;        // bits, last row; NaN without rows
  std::optional<LineFit> frequency_slope;        // log T_k vs log p_k
  std::optional<StepScalingFit> step_scaling;    // α_S
  std::optional<double> predicted_alpha_s;       // α/(α+1)
  std::optional<double> atsr;                    // T(1)/T_first (acquisition_time_spread_ratio)
  std::vector<SpectraAt> spectra;                // from spectra.csv, when the run wrote one
};

// The numbers of one run read by read_run at options.tau_bits (empty: the run's own τ).
RunAnalysis analyze_run(const RunRecord& run, const AnalysisOptions& options);

// How a config value prints in tables: strings bare, numbers as JSON writes them, "—" for null.
std::string display_value(const nlohmann::json& v);

}  // namespace skillrun
