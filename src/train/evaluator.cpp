// Scores the eval set chunk by chunk; the backend adds each chunk's per-sample losses and
// correctness into per-subtask sums in its own memory (Backend::task_sums), and the 2 * n_tasks
// sums come back once per eval.
#include "train/evaluator.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace skillrun {

namespace {
// sums (2 * n_tasks doubles of backend memory) = 0. Uploaded: fill has no fp64 version on
// every backend, and 2 * n_tasks doubles are nothing next to an eval.
void zero(Buffer<double>& sums) { sums.upload(std::vector<double>(sums.size(), 0.0)); }
}  // namespace

Evaluator::Evaluator(Backend& backend, const Task& task, int samples_per_task, int chunk_rows,
                     int max_runs)
    : backend_(backend),
      task_(task),
      samples_per_task_(samples_per_task),
      chunk_rows_(chunk_rows),
      max_runs_(max_runs),
      x_(backend, static_cast<std::size_t>(task.n_tasks()) * samples_per_task * task.input_dim()),
      labels_(backend, static_cast<std::size_t>(task.n_tasks()) * samples_per_task),
      tasks_(backend, static_cast<std::size_t>(task.n_tasks()) * samples_per_task),
      loss_(backend, static_cast<std::size_t>(max_runs) * chunk_rows),
      correct_(backend, static_cast<std::size_t>(max_runs) * chunk_rows),
      sums_(backend, 2 * static_cast<std::size_t>(max_runs) * task.n_tasks()) {
  for (int k = 0; k < task.n_tasks(); ++k) {
    const std::size_t row = static_cast<std::size_t>(k) * samples_per_task;
    task.eval_rows(k, 0, samples_per_task, x_.data() + row * task.input_dim(), labels_.data() + row,
                   tasks_.data() + row);
  }
}

std::vector<EvalResult> Evaluator::evaluate(Model& model, RunRange range) {
  if (range.count > max_runs_) throw std::length_error("Evaluator::evaluate: more runs than its buffers hold");
  const int n_tasks = task_.n_tasks();
  const std::size_t total = static_cast<std::size_t>(n_tasks) * samples_per_task_;
  const std::size_t logits_stride = model.logits_stride();
  const std::size_t chunk = static_cast<std::size_t>(chunk_rows_);
  const std::size_t sums_stride = 2 * static_cast<std::size_t>(n_tasks);
  zero(sums_);
  for (std::size_t first = 0; first < total; first += chunk) {
    const int rows = static_cast<int>(std::min(chunk, total - first));
    const float* logits = model.forward(x_.data() + first * task_.input_dim(), rows, range);
    backend_.cross_entropy_runs(logits, logits_stride, labels_.data() + first, rows, model.classes(), loss_.data(),
                                correct_.data(), chunk, nullptr, 0, 0.0f, range.count);
    for (int r = 0; r < range.count; ++r)
      backend_.task_sums(loss_.data() + r * chunk, correct_.data() + r * chunk, tasks_.data() + first, rows, n_tasks,
                         sums_.data() + r * sums_stride);
  }
  const std::vector<double> sums = sums_.download();  // per run: loss sums, then correct sums
  std::vector<EvalResult> results(static_cast<std::size_t>(range.count));
  for (int run = 0; run < range.count; ++run) {
    const double* s = sums.data() + run * sums_stride;
    EvalResult& r = results[static_cast<std::size_t>(run)];
    for (int k = 0; k < n_tasks; ++k) {
      r.loss_bits.push_back(s[k] / samples_per_task_ * kBitsPerNat);
      r.accuracy.push_back(s[n_tasks + k] / samples_per_task_);
      r.mean_loss_bits += task_.frequencies()[k] * r.loss_bits.back();
      r.finite = r.finite && std::isfinite(r.loss_bits.back());
    }
  }
  return results;
}

double mean_loss_bits(Backend& backend, const float* loss, const float* correct, const int32_t* tasks, int rows,
                      int n_tasks) {
  Buffer<double> sums(backend, 2 * static_cast<std::size_t>(n_tasks));
  zero(sums);
  backend.task_sums(loss, correct, tasks, rows, n_tasks, sums.data());
  const std::vector<double> host = sums.download();
  double total = 0.0;
  for (int k = 0; k < n_tasks; ++k) total += host[k];
  return total / static_cast<double>(rows) * kBitsPerNat;
}

}  // namespace skillrun
