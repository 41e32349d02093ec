// Training loop. Evals happen after `step` updates, at step 0 and every eval.every steps and
// at the last step; T_k is the first eval step with loss_k <= tau (the paper's T_k(tau)).
#include "train/trainer.h"

#include <chrono>
#include <cmath>

#include <spdlog/spdlog.h>

namespace skillrun {

std::atomic<bool> g_stop_requested{false};

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Trainer::Trainer(Backend& backend, const ExperimentConfig& config)
    : backend_(backend),
      config_(config),
      task_(backend, config.task, config.seed),
      model_(backend, task_.input_dim(), config.model.width, config.model.depth, SparseParityTask::kClasses,
             std::max(config.train.batch_size, 1)),
      optimizer_(backend, config.optimizer, model_.parameters()),
      evaluator_(backend, task_, config.eval.samples_per_task, config.train.batch_size),
      x_(backend, static_cast<std::size_t>(config.train.batch_size) * task_.input_dim()),
      labels_(backend, static_cast<std::size_t>(config.train.batch_size)),
      tasks_(backend, static_cast<std::size_t>(config.train.batch_size)),
      loss_(backend, static_cast<std::size_t>(config.train.batch_size)),
      correct_(backend, static_cast<std::size_t>(config.train.batch_size)),
      dlogits_(backend, static_cast<std::size_t>(config.train.batch_size) * SparseParityTask::kClasses) {
  model_.initialize(config.seed);
}

void Trainer::train_step(int64_t step, PhaseTimes* times) {
  const int batch = config_.train.batch_size;
  auto t0 = std::chrono::steady_clock::now();
  auto lap = [&](double PhaseTimes::*field) {
    if (!times) return;
    backend_.synchronize();
    const auto now = std::chrono::steady_clock::now();
    times->*field += std::chrono::duration<double>(now - t0).count();
    t0 = now;
  };
  task_.train_batch(step, batch, x_.data(), labels_.data(), tasks_.data());
  lap(&PhaseTimes::data);
  const float* logits = model_.forward(x_.data(), batch);
  backend_.cross_entropy(logits, labels_.data(), batch, SparseParityTask::kClasses, loss_.data(), correct_.data(),
                         dlogits_.data(), 1.0f / static_cast<float>(batch));
  lap(&PhaseTimes::forward);
  model_.backward(x_.data(), dlogits_.data(), batch);
  lap(&PhaseTimes::backward);
  optimizer_.step();
  lap(&PhaseTimes::optimizer);
  if (times) ++times->steps;
}

double Trainer::last_train_loss_bits() { return mean_bits(loss_.download(), loss_.size()); }

RunSummary Trainer::run(RunDirectory& dir, Progress& progress) {
  const auto start = std::chrono::steady_clock::now();
  const int n_tasks = task_.n_tasks();
  RunSummary summary;
  summary.tau_bits = config_.eval.tau_bits;
  summary.device = backend_.name();
  summary.T_k.assign(n_tasks, std::nullopt);
  dir.open_metrics(n_tasks);
  // A run killed hard (SIGKILL, node failure) leaves status "running" behind, not nothing.
  summary.status = RunStatus::Running;
  dir.write_summary(summary);

  int learned = 0;
  // Evaluates after `step` updates, records the row and T_k; returns false if non-finite.
  auto eval_and_record = [&](int64_t step) {
    MetricsRow row;
    row.step = step;
    if (step > 0) row.train_loss_bits = last_train_loss_bits();
    const EvalResult& r = last_eval_ = evaluator_.evaluate(model_);
    row.wall_seconds = seconds_since(start);
    row.mean_loss_bits = r.mean_loss_bits;
    row.loss_bits = r.loss_bits;
    row.accuracy = r.accuracy;
    dir.append_metrics(row);
    for (int k = 0; k < n_tasks; ++k) {
      if (!summary.T_k[k] && r.loss_bits[k] <= config_.eval.tau_bits) {
        summary.T_k[k] = step;
        ++learned;
        spdlog::info("subtask {} (p = {:.4f}) learned at step {}: loss {:.4f} bits", k, task_.frequencies()[k],
                     step, r.loss_bits[k]);
      }
    }
    progress.update(step, r.mean_loss_bits, learned);
    return r.finite && (!row.train_loss_bits || std::isfinite(*row.train_loss_bits));
  };

  const int64_t max_steps = config_.train.max_steps;
  int64_t step = 0;
  summary.status = RunStatus::MaxSteps;
  if (!eval_and_record(0)) {
    summary.status = RunStatus::Diverged;
    summary.message = "non-finite loss at step 0, before any update";
  } else if (config_.train.stop_when_learned && learned == n_tasks) {
    summary.status = RunStatus::Converged;
  } else {
    while (step < max_steps) {
      if (g_stop_requested.load(std::memory_order_relaxed)) {
        summary.status = RunStatus::Interrupted;
        summary.message = "interrupted by a signal; metrics.csv holds every eval up to here";
        break;
      }
      train_step(step);
      ++step;
      if (step % config_.eval.every != 0 && step != max_steps) continue;
      if (!eval_and_record(step)) {
        summary.status = RunStatus::Diverged;
        summary.message = fmt::format("non-finite loss at step {} (optimizer.lr = {} may be too large)", step,
                                      config_.optimizer.lr);
        break;
      }
      if (config_.train.stop_when_learned && learned == n_tasks) {
        summary.status = RunStatus::Converged;
        break;
      }
    }
  }
  progress.finish();
  summary.steps = step;
  summary.seconds = seconds_since(start);
  if (summary.message.empty())
    summary.message = summary.status == RunStatus::Converged
                          ? fmt::format("all {} subtasks reached tau = {} bits", n_tasks, config_.eval.tau_bits)
                          : fmt::format("{} of {} subtasks reached tau = {} bits by step {}", learned, n_tasks,
                                        config_.eval.tau_bits, step);
  dir.write_summary(summary);
  return summary;
}

}  // namespace skillrun
