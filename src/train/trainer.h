// The training loop of one sparse-parity run: batch(t) -> forward -> cross-entropy ->
// backward -> optimizer, with per-subtask evals at step 0 and every eval.every steps, the
// stop rule (all subtasks below tau), divergence detection and signal-safe interruption.
#pragma once
#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"
#include "io/run_dir.h"
#include "model/mlp.h"
#include "optim/optimizer.h"
#include "tasks/sparse_parity.h"
#include "train/checkpoint.h"
#include "train/evaluator.h"
#include "train/progress.h"
#include "train/run_monitor.h"

namespace skillrun {

// Seconds spent in each phase of a step; filled only when timing is requested (it
// synchronises the backend between phases, which costs a little on the GPU).
struct PhaseTimes {
  double data = 0, forward = 0, backward = 0, optimizer = 0, eval = 0;
  int64_t steps = 0;
  int64_t evals = 0;
};

class Trainer {
 public:
  Trainer(Backend& backend, const ExperimentConfig& config);

  // Runs to the stop rule, writing metrics rows, checkpoints and the summary into `dir`.
  // With `resume`, continues from that checkpoint (restored here) as if never stopped.
  RunSummary run(RunDirectory& dir, Progress& progress, const CheckpointState* resume = nullptr);

  // The state a checkpoint holds after `step` updates; restore() puts it back (throws
  // RuntimeError when its buffers do not fit this model and optimizer).
  CheckpointState snapshot(int64_t step, double wall_seconds, const std::vector<std::optional<int64_t>>& T_k);
  void restore(const CheckpointState& state);
  // The checkpoint a resumed run continues from: the newest of this run (checkpoint_identity)
  // from which no metrics row would be lost, i.e. whose step metrics.csv covers with its whole
  // rows (a malformed row or a deleted file makes older checkpoints, or step 0, the start).
  // Empty: start from step 0 (warned when the directory held checkpoints or rows).
  std::optional<CheckpointState> checkpoint_to_resume(const std::filesystem::path& run_dir) const;

  // One optimisation step on the batch of `step` (0-based); times phases when `times` is set.
  // Untimed steps of a backend with step graphs (CUDA) are captured once, after two eager warm-up
  // steps, and replayed (docs/CUDA.md); timed steps, msign svd and SKILLRUN_CUDA_GRAPH=0 run eagerly.
  void train_step(int64_t step, PhaseTimes* times = nullptr);
  // True once untimed steps replay a captured step graph.
  bool step_graph_active() const { return graph_state_ == GraphState::Captured; }
  EvalResult evaluate() { return evaluator_.evaluate(model_); }
  // The eval recorded last by run() (the final row of metrics.csv).
  const EvalResult& last_eval() const { return last_eval_; }
  // Mean loss in bits of the last trained batch.
  double last_train_loss_bits();

  Mlp& model() { return model_; }
  Optimizer& optimizer() { return optimizer_; }
  const SparseParityTask& task() const { return task_; }

 private:
  Backend& backend_;
  ExperimentConfig config_;
  nlohmann::json identity_;  // checkpoint_identity of config_
  SparseParityTask task_;
  Mlp model_;
  Optimizer optimizer_;
  Evaluator evaluator_;
  Buffer<float> x_;             // (batch, input_dim)
  Buffer<int32_t> labels_;      // (batch)
  Buffer<int32_t> tasks_;       // (batch)
  Buffer<float> loss_;          // (batch): per-sample nats
  Buffer<float> correct_;       // (batch)
  Buffer<float> dlogits_;       // (batch, 2)
  EvalResult last_eval_;
  // Step graph state: eager steps until warm, then one capture; off for good after a failure.
  enum class GraphState { Warmup, Captured, Off };
  GraphState graph_state_ = GraphState::Off;
  int eager_steps_ = 0;
  void eager_step(int64_t step, PhaseTimes* times);
  bool graph_step(int64_t step);
};

}  // namespace skillrun
