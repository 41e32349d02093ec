// The shared run loop. The order of calls (eval, stop rule, checkpoint) is what makes a resumed
// run write the same rows as an uninterrupted one: change it and resume tests fail.
#include "train/run_monitor.h"

#include <exception>

namespace skillrun {

std::atomic<bool> g_stop_requested{false};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

RunMonitor::RunMonitor(const ExperimentConfig& config, RunDirectory& dir, double wall_offset)
    : train_(config.train), eval_(config.eval), dir_(dir), wall_offset_(wall_offset) {}

void RunMonitor::start() {
  summary_.status = RunStatus::Running;
  dir_.write_summary(summary_);
}

bool RunMonitor::checkpoint_due(int64_t step) const {
  return (train_.checkpoint_every > 0 && step % train_.checkpoint_every == 0) ||
         (train_.checkpoint_seconds > 0 && seconds_since(last_checkpoint_) >= train_.checkpoint_seconds);
}

int64_t RunMonitor::drive(int64_t step, bool eval_first, const RunLoopHooks& hooks) {
  try {
    return loop(step, eval_first, hooks);
  } catch (const std::exception& e) {
    fail(step, e.what());
    throw;
  }
}

void RunMonitor::fail(int64_t step, const std::string& message) noexcept {
  // The summary keeps what the run had reached (steps, time, T_k), not what it had at start.
  summary_.status = RunStatus::Failed;
  summary_.steps = step;
  summary_.seconds = wall();
  try {
    summary_.message = message;
    dir_.write_summary(summary_);
  } catch (const std::exception&) {
    // the failure may be the disk itself; the caller still reports the first error
  }
}

int64_t RunMonitor::loop(int64_t& step, bool eval_first, const RunLoopHooks& hooks) {
  if (!begin(step, eval_first, hooks)) return step;
  while (step < train_.max_steps) {
    if (g_stop_requested.load(std::memory_order_relaxed)) {
      interrupt(step, hooks);
      break;
    }
    hooks.train_step(step);
    ++step;
    if (!after_step(step, hooks)) break;
  }
  return step;
}

void RunMonitor::checkpoint(int64_t step, const RunLoopHooks& hooks) {
  dir_.guarded_write([&] { hooks.checkpoint(step); });  // into the directory the run locked, or not at all
  last_checkpoint_ = std::chrono::steady_clock::now();
}

bool RunMonitor::ended_by_eval(int64_t step, bool eval, const RunLoopHooks& hooks) {
  if (eval && !hooks.eval(step)) {
    summary_.status = RunStatus::Diverged;
    summary_.message = hooks.diverged_message(step);
    return true;
  }
  if (train_.stop_when_learned && hooks.learned()) {
    summary_.status = RunStatus::Converged;
    return true;
  }
  return false;
}

bool RunMonitor::begin(int64_t step, bool eval_first, const RunLoopHooks& hooks) {
  summary_.status = RunStatus::MaxSteps;
  if (ended_by_eval(step, eval_first, hooks)) return false;
  return step < train_.max_steps;
}

bool RunMonitor::after_step(int64_t step, const RunLoopHooks& hooks) {
  if (eval_due(step) && ended_by_eval(step, true, hooks)) return false;
  if (hooks.checkpoint && step < train_.max_steps && checkpoint_due(step)) checkpoint(step, hooks);
  return step < train_.max_steps;
}

void RunMonitor::interrupt(int64_t step, const RunLoopHooks& hooks) {
  if (hooks.checkpoint) checkpoint(step, hooks);
  summary_.status = RunStatus::Interrupted;
  summary_.message = hooks.interrupted_message(step);
}

const RunSummary& RunMonitor::finish(int64_t steps, const std::string& message) {
  summary_.steps = steps;
  summary_.seconds = wall();
  if (summary_.message.empty()) summary_.message = message;
  dir_.write_summary(summary_);
  return summary_;
}

}  // namespace skillrun
