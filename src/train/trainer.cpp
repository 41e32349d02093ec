// Training loop. Evals happen after `step` updates, at step 0 and every eval.every steps and
// at the last step; T_k is the first eval step with loss_k <= tau (the paper's T_k(tau)).
#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

#include "core/error.h"

namespace skillrun {

namespace {
// Step graphs need every per-step value of the step on the device; cuSOLVER's SVD (msign svd)
// queries its workspace on the host, so such runs stay eager, as do runs that ask for it.
bool step_graph_wanted(const Backend& backend, const ExperimentConfig& config) {
  if (!backend.supports_step_graph()) return false;
  if (const char* env = std::getenv("SKILLRUN_CUDA_GRAPH"); env != nullptr && std::string(env) == "0") return false;
  return !(config.optimizer.type == OptimizerType::Muon && config.optimizer.msign == MsignMethod::Svd);
}

}  // namespace

Trainer::Trainer(Backend& backend, const ExperimentConfig& config)
    : backend_(backend),
      config_(config),
      identity_(checkpoint_identity(to_json(config))),
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
  graph_state_ = step_graph_wanted(backend, config) ? GraphState::Warmup : GraphState::Off;
}

void Trainer::train_step(int64_t step, PhaseTimes* times) {
  if (times == nullptr && graph_state_ != GraphState::Off && graph_step(step)) return;
  eager_step(step, times);
}

// Returns false when the step must run eagerly (warming up, or the capture failed).
bool Trainer::graph_step(int64_t step) {
  constexpr int kWarmupSteps = 2;  // sizes every scratch buffer before the capture
  if (graph_state_ == GraphState::Warmup) {
    if (eager_steps_ < kWarmupSteps) return false;
    // The recorded step runs nothing, so the optimizer's step count goes back to what it was.
    const int64_t steps_before = optimizer_.steps_taken();
    try {
      backend_.begin_step_capture(static_cast<uint32_t>(step));
      eager_step(step, nullptr);  // recorded, not run
      backend_.end_step_capture();
      graph_state_ = GraphState::Captured;
      spdlog::info("training step captured as a CUDA graph at step {}; replaying it from now on", step);
    } catch (const std::exception& e) {
      backend_.abort_step_capture();
      graph_state_ = GraphState::Off;
      spdlog::warn("could not capture the training step as a CUDA graph ({}); running eagerly", e.what());
      optimizer_.set_steps_taken(steps_before);
      return false;
    }
    optimizer_.set_steps_taken(steps_before);
  }
  backend_.launch_step_graph(static_cast<uint32_t>(step));
  optimizer_.set_steps_taken(optimizer_.steps_taken() + 1);
  return true;
}

void Trainer::eager_step(int64_t step, PhaseTimes* times) {
  ++eager_steps_;
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

namespace {
// Every buffer a checkpoint carries, in a fixed order: parameters, then optimizer state.
std::vector<std::pair<std::string, Buffer<float>*>> checkpoint_buffers(Mlp& model, Optimizer& optimizer) {
  std::vector<std::pair<std::string, Buffer<float>*>> all;
  for (Parameter& p : model.parameters()) all.emplace_back(p.name, &p.value);
  const auto state = optimizer.state();
  for (std::size_t i = 0; i < state.size(); ++i) all.emplace_back("optimizer.state." + std::to_string(i), state[i]);
  return all;
}
}  // namespace

CheckpointState Trainer::snapshot(int64_t step, double wall_seconds, const std::vector<std::optional<int64_t>>& T_k) {
  CheckpointState s;
  s.run_config = identity_;
  s.step = step;
  s.optimizer_steps = optimizer_.steps_taken();
  s.wall_seconds = wall_seconds;
  s.T_k = T_k;
  for (auto& [name, buffer] : checkpoint_buffers(model_, optimizer_)) {
    s.names.push_back(name);
    s.buffers.push_back(buffer->download());
  }
  return s;
}

void Trainer::restore(const CheckpointState& s) {
  const auto buffers = checkpoint_buffers(model_, optimizer_);
  if (s.buffers.size() != buffers.size() || s.T_k.size() != static_cast<std::size_t>(task_.n_tasks()))
    throw RuntimeError(fmt::format("checkpoint at step {} holds {} buffers, this run needs {}", s.step,
                                   s.buffers.size(), buffers.size()));
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    if (s.names[i] != buffers[i].first || s.buffers[i].size() != buffers[i].second->size())
      throw RuntimeError(fmt::format("checkpoint buffer {} ({} values) does not fit {} ({} values)", s.names[i],
                                     s.buffers[i].size(), buffers[i].first, buffers[i].second->size()));
    buffers[i].second->upload(s.buffers[i]);
  }
  optimizer_.set_steps_taken(s.optimizer_steps);
}

std::optional<CheckpointState> Trainer::checkpoint_to_resume(const std::filesystem::path& run_dir) const {
  const std::optional<int64_t> last_row = last_whole_metrics_step(run_dir, /*warn=*/true);
  // Eval rows fall on multiples of eval.every (checkpoints never at max_steps, which ends the
  // run): from a checkpoint at step s the run writes the rows after s again, so the rows up to
  // s must be there, i.e. s < last_row + every.
  const int64_t usable_through = last_row ? *last_row + config_.eval.every - 1 : -1;
  const bool has_checkpoints = has_checkpoint_files(run_dir);
  if (!last_row && has_checkpoints)
    spdlog::warn(
        "{}: metrics.csv is missing or holds no whole row, so no checkpoint can continue it without losing "
        "rows; the run starts over from step 0",
        run_dir.string());
  std::optional<CheckpointState> checkpoint = load_latest_checkpoint(run_dir, identity_, usable_through);
  if (!checkpoint && (last_row || has_checkpoints))
    spdlog::warn("no usable checkpoint in {}; starting the run over from step 0", run_dir.string());
  return checkpoint;
}

double Trainer::last_train_loss_bits() {
  // Summed per subtask on the backend: 2 * n_tasks doubles come back, not the batch's losses.
  return mean_loss_bits(backend_, loss_.data(), correct_.data(), tasks_.data(), static_cast<int>(loss_.size()),
                        task_.n_tasks());
}

RunSummary Trainer::run(RunDirectory& dir, Progress& progress, const CheckpointState* resume) {
  RunMonitor monitor(config_, dir, resume ? resume->wall_seconds : 0.0);
  const int n_tasks = task_.n_tasks();
  RunSummary& summary = monitor.summary();
  summary.tau_bits = config_.eval.tau_bits;
  summary.device = backend_.name();
  summary.T_k.assign(n_tasks, std::nullopt);
  int64_t step = 0;
  if (resume) {
    restore(*resume);
    step = resume->step;
    summary.T_k = resume->T_k;
    spdlog::info("resuming from the checkpoint at step {}", step);
  }
  dir.open_metrics(n_tasks, resume ? std::optional<int64_t>(step) : std::nullopt);
  monitor.start();

  int learned = static_cast<int>(std::count_if(summary.T_k.begin(), summary.T_k.end(), [](const auto& t) { return t.has_value(); }));
  RunLoopHooks hooks;
  hooks.train_step = [&](int64_t at_step) { train_step(at_step); };
  // Evaluates after `at_step` updates, records the row and T_k; false if non-finite.
  hooks.eval = [&](int64_t at_step) {
    MetricsRow row;
    row.step = at_step;
    if (at_step > 0) row.train_loss_bits = last_train_loss_bits();
    const EvalResult& r = last_eval_ = evaluator_.evaluate(model_);
    row.wall_seconds = monitor.wall();
    row.mean_loss_bits = r.mean_loss_bits;
    row.loss_bits = r.loss_bits;
    row.accuracy = r.accuracy;
    dir.append_metrics(row);
    for (int k = 0; k < n_tasks; ++k) {
      if (!summary.T_k[k] && r.loss_bits[k] <= config_.eval.tau_bits) {
        summary.T_k[k] = at_step;
        ++learned;
        spdlog::info("subtask {} (p = {:.4f}) learned at step {}: loss {:.4f} bits", k, task_.frequencies()[k],
                     at_step, r.loss_bits[k]);
      }
    }
    progress.update(at_step, r.mean_loss_bits, learned);
    return r.finite && (!row.train_loss_bits || std::isfinite(*row.train_loss_bits));
  };
  hooks.learned = [&] { return learned == n_tasks; };
  hooks.checkpoint = [&](int64_t at_step) {
    write_checkpoint(dir.path(), snapshot(at_step, monitor.wall(), summary.T_k));
  };
  hooks.diverged_message = [&](int64_t at_step) {
    return at_step == 0 ? std::string("non-finite loss at step 0, before any update")
                        : fmt::format("non-finite loss at step {} (optimizer.lr = {} may be too large)", at_step,
                                      config_.optimizer.lr);
  };
  hooks.interrupted_message = [](int64_t at_step) {
    return fmt::format("interrupted by a signal at step {}; checkpoint written, resume with --resume", at_step);
  };
  step = monitor.drive(step, /*eval_first=*/resume == nullptr, hooks);
  progress.finish();
  return monitor.finish(step, summary.status == RunStatus::Converged
                                  ? fmt::format("all {} subtasks reached tau = {} bits", n_tasks, config_.eval.tau_bits)
                                  : fmt::format("{} of {} subtasks reached tau = {} bits by step {}", learned, n_tasks,
                                                config_.eval.tau_bits, step));
}

}  // namespace skillrun
