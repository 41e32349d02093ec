// Acquisition times from eval rows. Everything here is order statistics of the T_k: the
// coverage time is the ⌈p·n⌉-th smallest defined T_k, so ties need no special case.
#include "analysis/acquisition.h"

#include <algorithm>
#include <cmath>

namespace skillrun {

void AcquisitionTracker::add(int64_t step, std::span<const double> loss_bits) {
  const std::size_t n = std::min(T_.size(), loss_bits.size());
  for (std::size_t k = 0; k < n; ++k)  // NaN and ±inf never count as learned (−inf <= τ would)
    if (!T_[k] && std::isfinite(loss_bits[k]) && loss_bits[k] <= tau_bits_) T_[k] = step;
}

AcquisitionTimes acquisition_times(const std::vector<MetricsRow>& rows, int n_tasks, double tau_bits) {
  AcquisitionTracker tracker(n_tasks, tau_bits);
  for (const MetricsRow& row : rows) tracker.add(row.step, row.loss_bits);
  return tracker.times();
}

std::optional<int64_t> first_acquisition(const AcquisitionTimes& T) {
  std::optional<int64_t> first;
  for (const auto& t : T)
    if (t && (!first || *t < *first)) first = t;
  return first;
}

int required_subtasks(double p, int n_tasks) {
  // The tolerance is far below 1/n_tasks for any n_tasks a run can have, so it only undoes
  // rounding error and never merges two distinct counts.
  return static_cast<int>(std::ceil(p * n_tasks - 1e-9));
}

std::optional<int64_t> coverage_time(const AcquisitionTimes& T, double p) {
  const int needed = std::max(1, required_subtasks(p, static_cast<int>(T.size())));
  std::vector<int64_t> learned;
  for (const auto& t : T)
    if (t) learned.push_back(*t);
  if (static_cast<int>(learned.size()) < needed) return std::nullopt;
  std::nth_element(learned.begin(), learned.begin() + (needed - 1), learned.end());
  return learned[needed - 1];
}

std::optional<double> skill_acquisition_lag(const AcquisitionTimes& T, double p) {
  const auto t_p = coverage_time(T, p);
  if (!t_p) return std::nullopt;
  const int64_t t_first = *first_acquisition(T);  // defined: T(p) needs at least one learned subtask
  if (*t_p == 0) return 0.0;
  return static_cast<double>(*t_p - t_first) / static_cast<double>(*t_p);
}

std::optional<double> acquisition_time_spread_ratio(const AcquisitionTimes& T) {
  const auto all = coverage_time(T, 1.0);
  const auto first = first_acquisition(T);
  if (!all || !first || *first <= 0) return std::nullopt;
  return static_cast<double>(*all) / static_cast<double>(*first);
}

double fraction_learned(const AcquisitionTimes& T) {
  if (T.empty()) return 0.0;
  const auto n = std::count_if(T.begin(), T.end(), [](const auto& t) { return t.has_value(); });
  return static_cast<double>(n) / static_cast<double>(T.size());
}

}  // namespace skillrun
