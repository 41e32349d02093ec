// The paper's Section 4 acquisition quantities, computed from the eval rows of one run:
// T_k(τ) per subtask, T_first, the p-coverage time T(p, τ) and the skill acquisition lag
// Δ_SAL(p, τ). A time that was never reached is an empty optional, never 0 or a sentinel.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "io/run_dir.h"

namespace skillrun {

// One entry per subtask: the step it was learned at, empty if it never was.
using AcquisitionTimes = std::vector<std::optional<int64_t>>;

// T_k(τ) gathered one eval row at a time (metrics.csv is streamed, not held): the first step
// at which loss_k is finite and <= tau_bits. Rows must come in step order.
class AcquisitionTracker {
 public:
  AcquisitionTracker(int n_tasks, double tau_bits) : T_(static_cast<std::size_t>(n_tasks)), tau_bits_(tau_bits) {}
  void add(int64_t step, std::span<const double> loss_bits);
  const AcquisitionTimes& times() const { return T_; }
  double tau_bits() const { return tau_bits_; }

 private:
  AcquisitionTimes T_;
  double tau_bits_;
};

// T_k(τ) of whole rows (AcquisitionTracker over them). Rows must be in step order.
AcquisitionTimes acquisition_times(const std::vector<MetricsRow>& rows, int n_tasks, double tau_bits);

// T_first = min_k T_k over the subtasks that were learned; empty if none was.
std::optional<int64_t> first_acquisition(const AcquisitionTimes& T);

// ⌈p · n_tasks⌉, robust to rounding in p · n_tasks (0.14 · 50 is 7.000000000000001 in double).
int required_subtasks(double p, int n_tasks);

// T(p, τ): the first step t at which at least ⌈p · n_tasks⌉ subtasks have T_k <= t, i.e. the
// ⌈p·n⌉-th smallest T_k; empty if fewer subtasks were learned. p in (0, 1].
std::optional<int64_t> coverage_time(const AcquisitionTimes& T, double p);

// Δ_SAL(p, τ) = (T(p, τ) − T_first) / T(p, τ), in [0, 1): 0 when subtasks are learned together,
// near 1 when the last ones come long after the first. Empty where T(p, τ) is; 0 when
// T(p, τ) = 0 (everything already below τ at initialisation).
std::optional<double> skill_acquisition_lag(const AcquisitionTimes& T, double p);

// The acquisition-time spread ratio ATSR = T(1, τ) / T_first (arXiv 2606.08388), = 1 / (1 −
// Δ_SAL(1, τ)): 1 when every subtask is learned at once. Empty where T(1, τ) is, or T_first is 0.
std::optional<double> acquisition_time_spread_ratio(const AcquisitionTimes& T);

// Fraction of subtasks learned at all (T_k defined), in [0, 1]; 0 for no subtasks.
double fraction_learned(const AcquisitionTimes& T);

}  // namespace skillrun
