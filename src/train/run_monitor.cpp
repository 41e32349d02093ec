// The shared run loop. The order of calls (eval, stop rule, checkpoint) is what makes a resumed
// run write the same rows as an uninterrupted one: change it and resume tests fail.
#include "train/run_monitor.h"

#include <algorithm>
#include <exception>
#include <optional>
#include <utility>

#include "core/log.h"

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
  std::vector<LoopRun> runs(1);
  runs[0].monitor = this;
  runs[0].hooks = hooks;
  runs[0].step = step;
  runs[0].eval_first = eval_first;
  SharedLoopHooks shared;
  shared.train_step = [&hooks](const std::vector<bool>&, int64_t at) { hooks.train_step(at); };
  RunLoop loop(runs, std::move(shared));
  loop.drive();
  if (loop.first_failure()) std::rethrow_exception(loop.first_failure());
  return runs[0].step;
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

RunLoop::RunLoop(std::vector<LoopRun>& runs, SharedLoopHooks shared) : runs_(runs), shared_(std::move(shared)) {}

void RunLoop::for_run(std::size_t i, const std::function<void()>& f) {
  LoopRun& run = runs_[i];
  std::optional<LogScope> scope;  // "": the caller's
  if (!run.log_scope.empty()) scope.emplace(run.log_scope);
  try {
    f();
  } catch (const std::exception& e) {
    if (!first_failure_) first_failure_ = std::current_exception();
    if (shared_.failed) shared_.failed(i, e.what());
    run.monitor->fail(run.step, e.what());
    run.ended = true;
  }
}

void RunLoop::end(std::size_t i) {
  runs_[i].ended = true;
  if (shared_.ended) shared_.ended(i);
}

void RunLoop::drive() {
  const std::size_t n = runs_.size();
  const auto any = [](const std::vector<bool>& which) {
    return std::find(which.begin(), which.end(), true) != which.end();
  };
  try {
    // Runs from step 0 begin with an eval of the untrained model; resumed ones have that row.
    std::vector<bool> fresh(n, false);
    int64_t fresh_step = 0;
    for (std::size_t i = 0; i < n; ++i) {
      fresh[i] = !runs_[i].ended && runs_[i].eval_first;
      if (fresh[i]) fresh_step = runs_[i].step;
    }
    if (any(fresh) && shared_.eval) shared_.eval(fresh, fresh_step);
    for (std::size_t i = 0; i < n; ++i)
      if (!runs_[i].ended)
        for_run(i, [&] {
          if (!runs_[i].monitor->begin(runs_[i].step, fresh[i], runs_[i].hooks)) end(i);
        });
    if (any(fresh) && shared_.evaluated) shared_.evaluated(fresh, fresh_step);

    while (true) {
      // The runs furthest behind step; runs resumed further on wait for them.
      int64_t step = -1;
      for (const LoopRun& run : runs_)
        if (!run.ended && (step < 0 || run.step < step)) step = run.step;
      if (step < 0) break;
      std::vector<bool> active(n, false);
      std::size_t first_active = n;
      for (std::size_t i = 0; i < n; ++i) {
        active[i] = !runs_[i].ended && runs_[i].step == step;
        if (active[i] && first_active == n) first_active = i;
      }
      if (g_stop_requested.load(std::memory_order_relaxed)) {
        for (std::size_t i = 0; i < n; ++i)
          if (!runs_[i].ended)
            for_run(i, [&] {
              runs_[i].monitor->interrupt(runs_[i].step, runs_[i].hooks);
              end(i);
            });
        break;
      }
      shared_.train_step(active, step);
      ++step;
      for (std::size_t i = 0; i < n; ++i)
        if (active[i]) runs_[i].step = step;
      const bool evals = runs_[first_active].monitor->eval_due(step);  // the same schedule for all
      if (evals && shared_.eval) shared_.eval(active, step);
      for (std::size_t i = 0; i < n; ++i)
        if (active[i] && !runs_[i].ended)
          for_run(i, [&] {
            if (!runs_[i].monitor->after_step(step, runs_[i].hooks)) end(i);
          });
      if (evals && shared_.evaluated) shared_.evaluated(active, step);
    }
  } catch (const std::exception& e) {
    for (LoopRun& run : runs_)
      if (!run.ended) run.monitor->fail(run.step, e.what());
    throw;
  }
}

}  // namespace skillrun
