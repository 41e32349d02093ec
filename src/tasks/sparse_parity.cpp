// Host side of multi-task sparse parity: Zipf table, subsets, and the draw descriptors that
// the backend expands into batches (see sparse_parity_gen.h for the per-sample bits).
#include "tasks/sparse_parity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <fmt/format.h>

#include "core/error.h"
#include "core/philox.h"

namespace skillrun {

std::vector<double> zipf_probabilities(int n_tasks, double zipf_exponent) {
  std::vector<double> p(static_cast<std::size_t>(n_tasks));
  double total = 0.0;
  for (int i = 0; i < n_tasks; ++i) total += p[i] = std::pow(static_cast<double>(i + 1), -zipf_exponent);
  for (double& v : p) v /= total;
  return p;
}

std::vector<uint32_t> zipf_thresholds(std::span<const double> probabilities) {
  std::vector<uint32_t> thresholds;
  double cumulative = 0.0;
  for (std::size_t i = 0; i + 1 < probabilities.size(); ++i) {
    cumulative += probabilities[i];
    const double scaled = std::round(cumulative * 4294967296.0);
    thresholds.push_back(static_cast<uint32_t>(std::min(scaled, 4294967295.0)));
  }
  return thresholds;
}

namespace {
// C(n, k) saturated at `cap`, enough to tell whether n_tasks distinct subsets exist.
double binomial_capped(int n, int k, double cap) {
  double c = 1.0;
  for (int i = 1; i <= k && c < cap; ++i) c = c * (n - k + i) / i;
  return c;
}
}  // namespace

std::vector<int32_t> draw_subsets(uint64_t seed, int n_tasks, int n_bits, int k) {
  if (binomial_capped(n_bits, k, n_tasks) < n_tasks)
    throw ConfigError("task.n_tasks", fmt::format("{} tasks need {} distinct subsets of {} bits out "
                                                  "of {}, but only C({}, {}) exist",
                                                  n_tasks, n_tasks, k, n_bits, n_bits, k));
  std::vector<int32_t> subsets;
  subsets.reserve(static_cast<std::size_t>(n_tasks) * k);
  uint32_t draw = 0;
  for (int task = 0; task < n_tasks; ++task) {
    std::vector<int32_t> s;
    while (static_cast<int>(s.size()) < k) {
      // One uniform word per draw, mapped to [0, n_bits) by a multiply-shift (bias < 2^-25).
      const uint32_t word = philox_draw(seed, RngStream::Subsets, static_cast<uint32_t>(task), draw++, 0).v[0];
      const auto bit = static_cast<int32_t>((static_cast<uint64_t>(word) * static_cast<uint64_t>(n_bits)) >> 32);
      if (std::find(s.begin(), s.end(), bit) != s.end()) continue;
      s.push_back(bit);
      if (static_cast<int>(s.size()) == k) {
        std::sort(s.begin(), s.end());
        bool repeats_earlier_task = false;
        for (int other = 0; other < task && !repeats_earlier_task; ++other)
          repeats_earlier_task = std::equal(s.begin(), s.end(), subsets.begin() + other * k);
        if (repeats_earlier_task) s.clear();
      }
    }
    subsets.insert(subsets.end(), s.begin(), s.end());
  }
  return subsets;
}

SparseParityTask::SparseParityTask(Backend& backend, const TaskConfig& config, uint64_t seed)
    : backend_(backend),
      config_(config),
      seed_(seed),
      frequencies_(zipf_probabilities(config.n_tasks, config.zipf_exponent)),
      subsets_(draw_subsets(seed, config.n_tasks, config.n_bits, config.k)),
      subsets_device_(backend, subsets_.size()),
      thresholds_device_(backend, static_cast<std::size_t>(std::max(config.n_tasks - 1, 1))) {
  subsets_device_.upload(subsets_);
  std::vector<uint32_t> thresholds = zipf_thresholds(frequencies_);
  thresholds.resize(thresholds_device_.size(), std::numeric_limits<uint32_t>::max());
  thresholds_device_.upload(thresholds);
}

ParityDraw SparseParityTask::base_draw() const {
  ParityDraw d;
  d.seed = seed_;
  d.n_tasks = config_.n_tasks;
  d.n_bits = config_.n_bits;
  d.k = config_.k;
  return d;
}

void SparseParityTask::train_batch(int64_t step, int rows, float* x, int32_t* labels,
                                   int32_t* tasks) const {
  ParityDraw d = base_draw();
  d.stream = RngStream::TrainBatch;
  d.step_or_task = static_cast<uint32_t>(step);  // config validation keeps max_steps < 2^32
  d.fixed_task = -1;
  d.first_sample = 0;
  backend_.sparse_parity(d, ParityTables{subsets_device_.data(), thresholds_device_.data()}, rows,
                         x, labels, tasks);
}

void SparseParityTask::eval_rows(int task, int first, int rows, float* x, int32_t* labels,
                                 int32_t* tasks) const {
  ParityDraw d = base_draw();
  d.stream = RngStream::EvalSet;
  d.step_or_task = static_cast<uint32_t>(task);
  d.fixed_task = task;
  d.first_sample = static_cast<uint32_t>(first);
  backend_.sparse_parity(d, ParityTables{subsets_device_.data(), thresholds_device_.data()}, rows,
                         x, labels, tasks);
}

}  // namespace skillrun
