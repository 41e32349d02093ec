// Multi-task sparse parity (Michaud et al.; the paper's Section 3): the host-side task family
// (Zipf frequencies p_i, subsets S_i) and the draws of training batches and eval sets, which
// run on the backend through backend/sparse_parity_gen.h.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"
#include "tasks/task.h"

namespace skillrun {

// p_i proportional to (i+1)^(-zipf_exponent), i = 0..n_tasks-1, normalised to sum 1.
std::vector<double> zipf_probabilities(int n_tasks, double zipf_exponent);
// Integer thresholds t_i = round(2^32 * (p_0 + ... + p_i)), i = 0..n_tasks-2, for zipf_task().
std::vector<uint32_t> zipf_thresholds(std::span<const double> probabilities);
// S_i for every task: k distinct bits each, sorted, no two tasks with the same set; drawn from
// the Subsets stream of `seed`. Throws ConfigError when n_tasks exceeds C(n_bits, k).
std::vector<int32_t> draw_subsets(uint64_t seed, int n_tasks, int n_bits, int k);

class SparseParityTask : public Task {
 public:
  SparseParityTask(Backend& backend, const TaskConfig& config, uint64_t seed);

  int n_tasks() const override { return config_.n_tasks; }
  int input_dim() const override { return config_.n_tasks + config_.n_bits; }
  static constexpr int kClasses = 2;
  int classes() const override { return kClasses; }
  const std::vector<double>& frequencies() const override { return frequencies_; }
  const std::vector<int32_t>& subsets() const { return subsets_; }  // (n_tasks, k)

  // The training batch of step `step`: a pure function of (seed, step).
  void train_batch(int64_t step, int rows, float* x, int32_t* labels, int32_t* tasks) const override;
  // Rows [first, first + rows) of the held-out eval set of `task`.
  void eval_rows(int task, int first, int rows, float* x, int32_t* labels, int32_t* tasks) const override;

 private:
  ParityDraw base_draw() const;

  Backend& backend_;
  TaskConfig config_;
  uint64_t seed_;
  std::vector<double> frequencies_;
  std::vector<int32_t> subsets_;
  Buffer<int32_t> subsets_device_;
  Buffer<uint32_t> thresholds_device_;
};

}  // namespace skillrun
