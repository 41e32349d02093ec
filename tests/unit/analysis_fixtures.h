// Synthetic runs for the analysis tests: a RunRecord whose eval rows put subtask k below τ = 0.1
// exactly from step T_k on, so every expected number can be worked out by hand. The rows are
// read at `tau_bits` (the run's own 0.1 when empty), as read_run reads a run directory.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/run_reader.h"

namespace skillrun::testing_fixtures {

struct FakeRun {
  std::string optimizer = "muon";
  double lr = 0.01;
  int width = 128;
  int seed = 0;
  std::vector<std::optional<int64_t>> T_k;  // multiples of `every`; nullopt: never below τ
  double final_mean_loss = 0.01;
  std::string status = "converged";
  int64_t every = 100;
  int64_t last_step = 0;  // 0: the largest T_k (or 1000 when none is learned)
};

inline RunRecord make_run(const FakeRun& f, std::optional<double> tau_bits = std::nullopt) {
  RunRecord r;
  r.dir = "/fake/" + f.optimizer + "-" + std::to_string(f.lr) + "-w" + std::to_string(f.width) + "-s" +
          std::to_string(f.seed);
  const int n = static_cast<int>(f.T_k.size());
  r.config = {{"seed", f.seed},
              {"optimizer", {{"type", f.optimizer}, {"lr", f.lr}}},
              {"model", {{"width", f.width}}},
              {"task", {{"type", "sparse_parity"}, {"n_tasks", n}, {"zipf_exponent", 1.4}}},
              {"eval", {{"tau_bits", 0.1}}}};
  int64_t last = f.last_step;
  if (last == 0) {
    for (const auto& t : f.T_k)
      if (t) last = std::max(last, *t);
    if (last == 0) last = 1000;
  }
  r.zipf_exponent = 1.4;
  r.metrics = MetricsCurves(n, tau_bits.value_or(0.1));
  for (int64_t step = 0; step <= last; step += f.every) {
    MetricsRow row;
    row.step = step;
    for (const auto& t : f.T_k) row.loss_bits.push_back(t && step >= *t ? 0.01 : 1.0);
    row.accuracy.assign(static_cast<std::size_t>(n), 0.5);
    row.mean_loss_bits = step == last ? f.final_mean_loss : 1.0;
    r.metrics.add(row);
  }
  r.has_summary = true;
  r.status = f.status;
  r.tau_bits = 0.1;
  r.summary_T_k = f.T_k;
  return r;
}

}  // namespace skillrun::testing_fixtures
