// The training loop of sparse-parity runs (and of assoc_memory runs, the same loop on another
// Task and Model: tasks/assoc_memory.h, model/linear_memory.h): batch(t) -> forward ->
// cross-entropy -> backward -> optimizer, with per-subtask evals at step 0 and every eval.every steps, the stop rule (all
// subtasks below tau), divergence detection and signal-safe interruption.
//
// A Trainer trains a pack: one or more runs whose resolved configs differ at most in seed,
// optimizer and name (pack_signature), in lockstep, each a slice of one model arena (Mlp with
// a run axis): one batched GEMM per product for the runs of one seed, which share their batch
// and eval set; every other op runs per run, so each run computes what it would alone (bit for
// bit on the CPU). A single `skillrun run` is a pack of one. Each run keeps its own directory,
// metrics, T_k, stop rule, checkpoints and status; a run that ends leaves the pack and the
// step shrinks (re-captured graph) to the runs left. docs/ARCHITECTURE.md, "Packs".
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"
#include "io/run_dir.h"
#include "model/mlp.h"
#include "model/model.h"
#include "optim/optimizer.h"
#include "optim/pack_optimizer.h"
#include "tasks/sparse_parity.h"
#include "tasks/task.h"
#include "train/checkpoint.h"
#include "train/evaluator.h"
#include "train/pack_members.h"  // check_pack
#include "train/progress.h"
#include "train/run_checkpoint.h"  // checkpoint_to_resume(run_dir, config): a pack's, before a Trainer
#include "train/run_monitor.h"
#include "train/spectra.h"
#include "train/step_graph.h"

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
  // A run alone.
  Trainer(Backend& backend, const ExperimentConfig& config);
  // A pack; run i is configs[i] in every method below (check_pack throws for a mixed set).
  Trainer(Backend& backend, const std::vector<ExperimentConfig>& configs);
  ~Trainer();

  int runs() const { return static_cast<int>(runs_.size()); }
  const ExperimentConfig& config(int run = 0) const;

  // Runs to the stop rule, writing metrics rows, checkpoints and the summary into `dir`.
  // With `resume`, continues from that checkpoint (restored here) as if never stopped.
  RunSummary run(RunDirectory& dir, Progress& progress, const CheckpointState* resume = nullptr);
  // Every run of the pack, run i into dirs[i] from resume[i] (null: from step 0). Runs resumed
  // at different steps train alone until the others catch up with them. An error of one run
  // (its directory or files, its checkpoint) ends that run as failed (summary.json status
  // "failed") and the others train on, even in a pack of one run (the caller's other packs
  // train on); an error of the shared work (a step, an eval round) is recorded in every
  // unfinished run's summary and goes on to the caller, as does any error of a run alone (the
  // overload above). Each run's log lines are logged in a LogScope named by its directory.
  std::vector<RunSummary> run(const std::vector<RunDirectory*>& dirs, Progress& progress,
                              const std::vector<const CheckpointState*>& resume);

  // The state a checkpoint holds after `step` updates; restore() puts it back (throws
  // RuntimeError when its buffers do not fit this model and optimizer).
  CheckpointState snapshot(int64_t step, double wall_seconds, const std::vector<std::optional<int64_t>>& T_k,
                           int run = 0);
  void restore(const CheckpointState& state, int run = 0);
  // The checkpoint a resumed run continues from (train/run_checkpoint.h).
  std::optional<CheckpointState> checkpoint_to_resume(const std::filesystem::path& run_dir, int run = 0) const;

  // One optimisation step of every active run (all, unless run() is driving) on its batch of
  // `step` (0-based); times phases when `times` is set. Untimed steps of a backend with step
  // graphs (CUDA) are captured once, after two eager warm-up steps, and replayed
  // (train/step_graph.h, docs/CUDA.md); timed steps, msign svd and SKILLRUN_CUDA_GRAPH=0 run eagerly.
  void train_step(int64_t step, PhaseTimes* times = nullptr);
  // True once untimed steps replay a captured step graph.
  bool step_graph_active() const { return graph_.state() == StepGraph::State::Captured; }
  EvalResult evaluate(int run = 0);
  // The eval recorded last by run() (the final row of metrics.csv).
  const EvalResult& last_eval(int run = 0) const;
  // Mean loss in bits of the last trained batch.
  double last_train_loss_bits(int run = 0);

  // The pack's model (an Mlp; a LinearMemory for assoc_memory): run i's parameters are
  // model().parameters(slot(i)).
  Model& model() { return *model_; }
  int slot(int run) const;
  Optimizer& optimizer(int run = 0);
  const Task& task(int run = 0) const;
  // eval.spectra_every > 0: the spectral diagnostics of the pack's runs (train/spectra.h); else null.
  SpectraProbe* spectra() { return spectra_.get(); }

 private:
  struct SeedGroup;
  struct RunState;
  RunState& at(int run);
  const RunState& at(int run) const;
  // Both run()s: `alone` (a run alone) rethrows the run's own error after recording it.
  std::vector<RunSummary> run_runs(const std::vector<RunDirectory*>& dirs, Progress& progress,
                                   const std::vector<const CheckpointState*>& resume, bool alone);
  // The slots the next steps train (the optimizers' and the step graph's too).
  void set_active(const std::vector<bool>& active);
  void eager_step(int64_t step, PhaseTimes* times);

  Backend& backend_;
  PackMembers members_;                          // slots, seed groups, active slots and their segments
  std::vector<std::unique_ptr<RunState>> runs_;  // by slot
  std::vector<std::unique_ptr<SeedGroup>> groups_;
  int batch_;
  std::unique_ptr<Model> model_;  // Mlp, or LinearMemory for assoc_memory
  std::unique_ptr<PackOptimizer> optimizers_;  // every run's optimizer; one call per tensor and group
  Buffer<float> loss_;                         // (runs, batch): per-sample nats
  Buffer<float> correct_;                      // (runs, batch)
  Buffer<float> dlogits_;                      // (runs, batch, classes)
  int classes_;
  StepGraph graph_;
  std::unique_ptr<SpectraProbe> spectra_;  // eval.spectra_every > 0: weights before the step, spectra
};

}  // namespace skillrun
