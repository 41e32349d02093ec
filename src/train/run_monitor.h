// The bookkeeping every task's run loop shares: the eval schedule (step 0, every eval.every
// steps, the last step), the stop rule (train.stop_when_learned), divergence (a non-finite
// eval), interruption by a signal, checkpoint timing, wall time and summary.json. A task says
// what a step, an eval and a checkpoint are (RunLoopHooks); a pack of runs can hold one each.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "config/experiment.h"
#include "io/run_dir.h"

namespace skillrun {

// Set from a signal handler (SIGINT/SIGTERM/SIGUSR1); the loop checkpoints at the next step
// boundary and stops as interrupted.
extern std::atomic<bool> g_stop_requested;

// Seconds since t0 on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point t0);

struct RunLoopHooks {
  std::function<void(int64_t step)> train_step;               // one update after `step` updates
  std::function<bool(int64_t step)> eval;                     // records the eval row at `step`; false when non-finite
  std::function<bool()> learned;                              // the stop rule: every subtask learned / epsilon reached
  std::function<void(int64_t step)> checkpoint;               // empty: the task keeps no checkpoints
  std::function<std::string(int64_t step)> diverged_message;  // why, for summary.json
  std::function<std::string(int64_t step)> interrupted_message;  // what --resume will do
};

class RunMonitor {
 public:
  // wall_offset: the run time of the part before a resume, so wall_s continues.
  RunMonitor(const ExperimentConfig& config, RunDirectory& dir, double wall_offset = 0);

  double wall() const { return wall_offset_ + seconds_since(start_); }
  RunSummary& summary() { return summary_; }
  // Writes summary.json with status running: a run killed hard leaves that, not nothing.
  void start();
  // The loop from `step` updates (0, or a checkpoint's step) to the stop rule or max_steps;
  // with eval_first, the eval at `step` comes first (not after a resume: its row exists).
  // Sets the summary's status (and message, for divergence and interruption); returns the
  // number of updates done. A hook that throws ends the run as failed: summary.json records
  // the steps and T_k reached and the error, and the exception goes on to the caller.
  int64_t drive(int64_t step, bool eval_first, const RunLoopHooks& hooks);
  // Records the end: steps, seconds, `message` unless the loop set one; writes summary.json.
  const RunSummary& finish(int64_t steps, const std::string& message);

  // drive() in pieces, for a loop that steps many runs together (a pack), in this order:
  // begin(step) once, then per step: interrupt() if g_stop_requested (the run ends), else
  // the shared update and after_step(step + 1). begin and after_step return false when the run
  // ended (status set: converged or diverged; max_steps when step reached train.max_steps).
  bool begin(int64_t step, bool eval_first, const RunLoopHooks& hooks);
  bool after_step(int64_t step, const RunLoopHooks& hooks);
  void interrupt(int64_t step, const RunLoopHooks& hooks);
  // Whether there is an eval (a metrics row) after `step` updates: every eval.every, and the last.
  bool eval_due(int64_t step) const { return step % eval_.every == 0 || step == train_.max_steps; }
  // Records a failure at `step` in summary.json (best effort), as drive() does when a hook throws.
  void fail(int64_t step, const std::string& message) noexcept;

 private:
  bool checkpoint_due(int64_t step) const;
  int64_t loop(int64_t& step, bool eval_first, const RunLoopHooks& hooks);  // drive's body
  void checkpoint(int64_t step, const RunLoopHooks& hooks);
  // With `eval`, the eval at `step` (non-finite: diverged); then the stop rule (converged).
  // True when either ended the run (status and message set).
  bool ended_by_eval(int64_t step, bool eval, const RunLoopHooks& hooks);

  const TrainConfig& train_;
  const EvalConfig& eval_;
  RunDirectory& dir_;
  double wall_offset_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_checkpoint_ = start_;
  RunSummary summary_;
};

}  // namespace skillrun
