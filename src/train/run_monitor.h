// The bookkeeping every task's run loop shares: the eval schedule (step 0, every eval.every
// steps, the last step), the stop rule (train.stop_when_learned), divergence (a non-finite
// eval), interruption by a signal, checkpoint timing, wall time and summary.json. A task says
// what a step, an eval and a checkpoint are (RunLoopHooks). RunLoop drives runs in lockstep,
// one RunMonitor each: a pack, or a run alone (RunMonitor::drive).
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "config/experiment.h"
#include "io/run_dir.h"

namespace skillrun {

// Set from a signal handler (SIGINT/SIGTERM/SIGUSR1); the loop checkpoints at the next step
// boundary and stops as interrupted.
extern std::atomic<bool> g_stop_requested;

// Seconds since t0 on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point t0);

struct RunLoopHooks {
  std::function<void(int64_t step)> train_step;               // RunMonitor::drive: one update after `step` updates
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
  // The loop of this run alone (a RunLoop of one, whose step is hooks.train_step) from `step`
  // updates (0, or a checkpoint's step) to the stop rule or max_steps; with eval_first, the
  // eval at `step` comes first (not after a resume: its row exists). Sets the summary's status
  // (and message, for divergence and interruption); returns the number of updates done. A hook
  // that throws ends the run as failed: summary.json records the steps and T_k reached and the
  // error, and the exception goes on to the caller.
  int64_t drive(int64_t step, bool eval_first, const RunLoopHooks& hooks);
  // Records the end: steps, seconds, `message` unless the loop set one; writes summary.json.
  const RunSummary& finish(int64_t steps, const std::string& message);
  // Records a failure at `step` in summary.json (best effort), as the loop does when a hook throws.
  void fail(int64_t step, const std::string& message) noexcept;

 private:
  friend class RunLoop;
  // The loop's pieces, in this order: begin(step) once, then per step: interrupt() if
  // g_stop_requested (the run ends), else the update and after_step(step + 1). begin and
  // after_step return false when the run ended (status set: converged or diverged; max_steps
  // when step reached train.max_steps).
  bool begin(int64_t step, bool eval_first, const RunLoopHooks& hooks);
  bool after_step(int64_t step, const RunLoopHooks& hooks);
  void interrupt(int64_t step, const RunLoopHooks& hooks);
  // Whether there is an eval (a metrics row) after `step` updates: every eval.every, and the last.
  bool eval_due(int64_t step) const { return step % eval_.every == 0 || step == train_.max_steps; }
  bool checkpoint_due(int64_t step) const;
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

// One run of a RunLoop.
struct LoopRun {
  RunMonitor* monitor = nullptr;
  RunLoopHooks hooks;      // its eval, stop rule, checkpoint and messages (train_step: the loop's)
  int64_t step = 0;        // updates done
  bool eval_first = true;  // the eval at its first step comes first (false after a resume)
  std::string log_scope;   // its log lines' LogScope while the loop works on it ("": the caller's)
  bool ended = false;
};

// The work a RunLoop's runs share. Sets of runs are flags by index into the loop's runs.
struct SharedLoopHooks {
  // One update of the runs in `active`, which have all done `step` updates.
  std::function<void(const std::vector<bool>& active, int64_t step)> train_step;
  // Optional: the evals at `step` of the runs in `which`, together, before each one's hooks.eval.
  std::function<void(const std::vector<bool>& which, int64_t step)> eval;
  // Optional: after the runs in `which` recorded their eval at `step` (progress).
  std::function<void(const std::vector<bool>& which, int64_t step)> evaluated;
  // Optional: run `i` ended with its status set (not failed); called in its scope, as its own work.
  std::function<void(std::size_t i)> ended;
  // Optional: run `i`'s own work threw `what`; it ends as failed, the others go on.
  std::function<void(std::size_t i, const std::string& what)> failed;
};

// The run loop: runs trained in lockstep (a pack; one run alone is a loop of one), each with its
// own RunMonitor. Each step trains the runs furthest behind (runs resumed further on wait for
// them, then all go together): g_stop_requested -> every run interrupted (checkpoint), else the
// shared update, the shared eval when due, and after_step of each run stepped. An error of a
// run's own work (its hooks, its directory) ends that run as failed and the others go on; an
// error of the shared work fails every unfinished run and goes on to the caller.
class RunLoop {
 public:
  RunLoop(std::vector<LoopRun>& runs, SharedLoopHooks shared);
  // Runs f as run i's own work: in its log scope, an exception ends it as failed.
  void for_run(std::size_t i, const std::function<void()>& f);
  // Runs every run not ended yet to its end.
  void drive();
  // The first error of a run's own work (for_run), or null.
  std::exception_ptr first_failure() const { return first_failure_; }

 private:
  void end(std::size_t i);
  std::vector<LoopRun>& runs_;
  SharedLoopHooks shared_;
  std::exception_ptr first_failure_;
};

}  // namespace skillrun
