// Per-run analysis and the parsing of the analysis flags. T_k always comes from the eval
// rows; when τ is the run's own, it is checked against summary.json's T_k as a consistency
// test of the run directory.
#include "analysis/run_analysis.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "tasks/sparse_parity.h"

namespace skillrun {
namespace {

std::optional<double> parse_fraction(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(v > 0 && v <= 1)) return std::nullopt;
  return v;
}

}  // namespace

std::vector<double> parse_p_list(const std::string& text) {
  std::vector<double> out;
  for (const std::string& item : split(text, ',')) {
    const auto v = parse_fraction(item);
    if (!v) throw UsageError(fmt::format("--p: \"{}\" is not a fraction in (0, 1] (expected e.g. --p 0.5,0.9,1)", item));
    out.push_back(*v);
  }
  return out;
}

std::vector<std::string> parse_key_list(const std::string& text, const std::string& flag) {
  std::vector<std::string> out = split(text, ',');
  for (const std::string& key : out)
    if (key.empty()) throw UsageError(fmt::format("{}: empty key in \"{}\"", flag, text));
  return out;
}

LrSelection parse_lr_selection(const std::string& text) {
  LrSelection s;
  if (text == "coverage") return s;
  if (text == "final_loss") {
    s.metric = LrSelection::Metric::FinalLoss;
    return s;
  }
  if (text.starts_with("coverage:")) {
    if (const auto p = parse_fraction(text.substr(9))) {
      s.p = *p;
      return s;
    }
  }
  throw UsageError(fmt::format("--select-lr: \"{}\" is not coverage, coverage:P (P in (0, 1]) or final_loss", text));
}

std::string to_string(const LrSelection& s) {
  if (s.metric == LrSelection::Metric::FinalLoss) return "final_loss";
  return s.p == 1.0 ? "coverage" : fmt::format("coverage:{}", s.p);
}

std::string display_value(const nlohmann::json& v) {
  if (v.is_null()) return "—";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

RunAnalysis analyze_run(const RunRecord& run, const AnalysisOptions& options) {
  RunAnalysis a;
  a.dir = run.dir;
  a.config = run.config;
  a.status = run.status;
  a.message = run.message;
  a.metrics_truncated = run.metrics.truncated;
  a.provenance = run.provenance;
  for (const std::string& key : options.group_keys) a.group_values.push_back(value_at(run.config, key));

  const MetricsCurves& m = run.metrics;
  a.tau_bits = m.acquisition.tau_bits();
  if (options.tau_bits && *options.tau_bits != a.tau_bits)
    throw std::logic_error("analyze_run: the run was read at another tau than --tau");
  a.last_step = m.steps.empty() ? 0 : m.steps.back();
  a.p_k = run.stream_p.empty() ? zipf_probabilities(m.n_tasks, run.zipf_exponent) : run.stream_p;
  a.T_k = m.acquisition.times();
  if (a.tau_bits == run.tau_bits && run.has_summary && run.summary_T_k.size() == a.T_k.size() &&
      run.summary_T_k != a.T_k && !m.truncated)
    spdlog::warn("{}: T_k from metrics.csv differ from summary.json's; using metrics.csv", run.dir.string());

  a.T_first = first_acquisition(a.T_k);
  for (double p : options.p_grid) {
    a.coverage.push_back(coverage_time(a.T_k, p));
    a.sal.push_back(skill_acquisition_lag(a.T_k, p));
  }
  a.fraction_learned = fraction_learned(a.T_k);
  a.final_mean_loss = m.mean_loss_bits.empty() ? std::numeric_limits<double>::quiet_NaN() : m.mean_loss_bits.back();

  a.frequency_slope = acquisition_frequency_slope(a.T_k, a.p_k);
  a.step_scaling = fit_step_scaling(m.steps, m.mean_loss_bits);
  a.predicted_alpha_s =
      run.stream_p.empty() ? predicted_step_exponent(run.zipf_exponent) : run.assoc_predicted_alpha_s;
  a.atsr = acquisition_time_spread_ratio(a.T_k);
  a.spectra = spectra_at(read_spectra(run.dir), {a.T_first, coverage_time(a.T_k, 0.5), coverage_time(a.T_k, 1.0),
                                                 m.steps.empty() ? std::nullopt : std::optional(a.last_step)});
  return a;
}

}  // namespace skillrun
