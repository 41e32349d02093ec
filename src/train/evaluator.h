// Held-out evaluation per subtask: a fixed eval set (samples_per_task rows per subtask, from
// the EvalSet stream), generated once on the backend and scored every eval.every steps.
#pragma once
#include <vector>

#include "backend/backend.h"
#include "model/model.h"
#include "tasks/task.h"

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
  // chunk_rows bounds the rows of one forward pass (the model's activation buffers); max_runs
  // the runs of one evaluate(model, range) (the runs of a pack that share this task's seed).
  Evaluator(Backend& backend, const Task& task, int samples_per_task, int chunk_rows, int max_runs = 1);
  EvalResult evaluate(Model& model) { return evaluate(model, RunRange{}).front(); }
  // Every run of `range` of a pack on this eval set, one forward pass per chunk for all of them;
  // each run's result is what evaluate() gives for it alone.
  std::vector<EvalResult> evaluate(Model& model, RunRange range);

 private:
  Backend& backend_;
  const Task& task_;
  int samples_per_task_;
  int chunk_rows_;
  int max_runs_;
  Buffer<float> x_;         // (n_tasks * samples_per_task, input_dim), task-major
  Buffer<int32_t> labels_;  // (n_tasks * samples_per_task)
  Buffer<int32_t> tasks_;   // (n_tasks * samples_per_task): each row's subtask
  Buffer<float> loss_, correct_;  // (max_runs, chunk_rows)
  Buffer<double> sums_;     // (max_runs, 2 * n_tasks): loss sums then correct sums, filled by task_sums
};

// Mean loss in bits of `rows` per-sample nat losses in backend memory (tasks: their subtask
// ids in [0, n_tasks)), summed in double on the backend by task_sums: only 2 * n_tasks sums
// come back to the host. The train loss we report.
double mean_loss_bits(Backend& backend, const float* loss, const float* correct, const int32_t* tasks, int rows,
                      int n_tasks);

}  // namespace skillrun
