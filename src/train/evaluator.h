// Held-out evaluation per subtask: a fixed eval set (samples_per_task rows per subtask, from
// the EvalSet stream), generated once on the backend and scored every eval.every steps.
#pragma once
#include <vector>

#include "backend/backend.h"
#include "model/mlp.h"
#include "tasks/sparse_parity.h"

namespace skillrun {

struct EvalResult {
  std::vector<double> loss_bits;  // per subtask: mean cross-entropy in bits
  std::vector<double> accuracy;   // per subtask
  double mean_loss_bits = 0;      // sum_k p_k loss_k (frequency-weighted)
  bool finite = true;
};

constexpr double kBitsPerNat = 1.4426950408889634;  // 1 / ln 2

class Evaluator {
 public:
  // chunk_rows bounds the rows of one forward pass (the model's activation buffers).
  Evaluator(Backend& backend, const SparseParityTask& task, int samples_per_task, int chunk_rows);
  EvalResult evaluate(Mlp& model);

 private:
  Backend& backend_;
  const SparseParityTask& task_;
  int samples_per_task_;
  int chunk_rows_;
  Buffer<float> x_;         // (n_tasks * samples_per_task, input_dim), task-major
  Buffer<int32_t> labels_;  // (n_tasks * samples_per_task)
  Buffer<float> loss_, correct_;  // (chunk_rows)
};

// Mean of per-sample nat losses in bits, accumulated in double: the train loss we report.
double mean_bits(const std::vector<float>& nat_losses, std::size_t count);

}  // namespace skillrun
