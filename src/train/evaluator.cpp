// Scores the eval set chunk by chunk; per-sample losses come back to the host and are summed
// per subtask in double (the eval set is task-major, so a row's subtask is row / samples).
#include "train/evaluator.h"

#include <algorithm>
#include <cmath>

namespace skillrun {

Evaluator::Evaluator(Backend& backend, const SparseParityTask& task, int samples_per_task, int chunk_rows)
    : backend_(backend),
      task_(task),
      samples_per_task_(samples_per_task),
      chunk_rows_(chunk_rows),
      x_(backend, static_cast<std::size_t>(task.n_tasks()) * samples_per_task * task.input_dim()),
      labels_(backend, static_cast<std::size_t>(task.n_tasks()) * samples_per_task),
      loss_(backend, static_cast<std::size_t>(chunk_rows)),
      correct_(backend, static_cast<std::size_t>(chunk_rows)) {
  Buffer<int32_t> tasks(backend, static_cast<std::size_t>(samples_per_task));
  for (int k = 0; k < task.n_tasks(); ++k) {
    const std::size_t row = static_cast<std::size_t>(k) * samples_per_task;
    task.eval_rows(k, 0, samples_per_task, x_.data() + row * task.input_dim(), labels_.data() + row, tasks.data());
  }
}

EvalResult Evaluator::evaluate(Mlp& model) {
  const int n_tasks = task_.n_tasks();
  const std::size_t total = static_cast<std::size_t>(n_tasks) * samples_per_task_;
  std::vector<double> loss_sum(n_tasks, 0.0), correct_sum(n_tasks, 0.0);
  std::vector<float> loss_host, correct_host;
  for (std::size_t first = 0; first < total; first += chunk_rows_) {
    const int rows = static_cast<int>(std::min<std::size_t>(chunk_rows_, total - first));
    const float* logits = model.forward(x_.data() + first * task_.input_dim(), rows);
    backend_.cross_entropy(logits, labels_.data() + first, rows, model.classes(), loss_.data(),
                           correct_.data(), nullptr, 0.0f);
    loss_host = loss_.download();
    correct_host = correct_.download();
    for (int i = 0; i < rows; ++i) {
      const std::size_t k = (first + i) / samples_per_task_;
      loss_sum[k] += loss_host[i];
      correct_sum[k] += correct_host[i];
    }
  }
  EvalResult r;
  for (int k = 0; k < n_tasks; ++k) {
    r.loss_bits.push_back(loss_sum[k] / samples_per_task_ * kBitsPerNat);
    r.accuracy.push_back(correct_sum[k] / samples_per_task_);
    r.mean_loss_bits += task_.frequencies()[k] * r.loss_bits.back();
    r.finite = r.finite && std::isfinite(r.loss_bits.back());
  }
  return r;
}

double mean_bits(const std::vector<float>& nat_losses, std::size_t count) {
  double sum = 0.0;
  for (std::size_t i = 0; i < count; ++i) sum += nat_losses[i];
  return sum / static_cast<double>(count) * kBitsPerNat;
}

}  // namespace skillrun
