// The shared run loop on fake hooks: when it evaluates, checkpoints and stops, independent of
// any task. Schedules below are worked out by hand from max_steps 10, eval.every 3,
// checkpoint_every 4: evals at 0, 3, 6, 9 and 10 (the last step), checkpoints at 4 and 8.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <vector>

#include "core/fs.h"
#include "train/run_monitor.h"

namespace skillrun {
namespace {
namespace fs = std::filesystem;

struct Calls {
  std::vector<int64_t> steps, evals, checkpoints;
};

class RunMonitorTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("skillrun_monitor_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    config_.train.max_steps = 10;
    config_.train.checkpoint_every = 4;
    config_.train.checkpoint_seconds = 0;
    config_.eval.every = 3;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Hooks that record every call; eval is finite unless at `diverge_at`, learned from `learn_at`.
  RunLoopHooks hooks(int64_t learn_at = -1, int64_t diverge_at = -1) {
    RunLoopHooks h;
    h.train_step = [this](int64_t s) { calls_.steps.push_back(s); };
    h.eval = [this, diverge_at](int64_t s) {
      calls_.evals.push_back(s);
      last_eval_ = s;
      return s != diverge_at;
    };
    h.learned = [this, learn_at] { return learn_at >= 0 && last_eval_ >= learn_at; };
    h.checkpoint = [this](int64_t s) { calls_.checkpoints.push_back(s); };
    h.diverged_message = [](int64_t s) { return "diverged at " + std::to_string(s); };
    h.interrupted_message = [](int64_t s) { return "interrupted at " + std::to_string(s); };
    return h;
  }

  fs::path dir_;
  ExperimentConfig config_;
  Calls calls_;
  int64_t last_eval_ = -1;
};

TEST_F(RunMonitorTest, RunsToMaxStepsEvaluatingAndCheckpointingOnSchedule) {
  RunDirectory dir(dir_);
  RunMonitor monitor(config_, dir);
  EXPECT_EQ(monitor.drive(0, true, hooks()), 10);
  EXPECT_EQ(monitor.summary().status, RunStatus::MaxSteps);
  EXPECT_EQ(calls_.evals, (std::vector<int64_t>{0, 3, 6, 9, 10}));
  EXPECT_EQ(calls_.checkpoints, (std::vector<int64_t>{4, 8}));  // never at max_steps: the run ends there
  EXPECT_EQ(calls_.steps.size(), 10u);
}

TEST_F(RunMonitorTest, StopsAtTheEvalWhereTheStopRuleHolds) {
  RunDirectory dir(dir_);
  RunMonitor monitor(config_, dir);
  EXPECT_EQ(monitor.drive(0, true, hooks(/*learn_at=*/6)), 6);
  EXPECT_EQ(monitor.summary().status, RunStatus::Converged);
  EXPECT_EQ(calls_.checkpoints, (std::vector<int64_t>{4}));
}

TEST_F(RunMonitorTest, NonFiniteEvalEndsTheRunAsDivergedWithTheMessage) {
  RunDirectory dir(dir_);
  RunMonitor monitor(config_, dir);
  EXPECT_EQ(monitor.drive(0, true, hooks(-1, /*diverge_at=*/9)), 9);
  EXPECT_EQ(monitor.summary().status, RunStatus::Diverged);
  EXPECT_EQ(monitor.finish(9, "unused").message, "diverged at 9");
}

TEST_F(RunMonitorTest, ResumedLoopSkipsTheEvalItsRowAlreadyHas) {
  RunDirectory dir(dir_);
  RunMonitor monitor(config_, dir);
  EXPECT_EQ(monitor.drive(4, /*eval_first=*/false, hooks()), 10);
  EXPECT_EQ(calls_.evals, (std::vector<int64_t>{6, 9, 10}));
  EXPECT_EQ(calls_.steps.front(), 4);
}

TEST_F(RunMonitorTest, StopRequestCheckpointsAndEndsInterrupted) {
  RunDirectory dir(dir_);
  RunMonitor monitor(config_, dir);
  g_stop_requested.store(true);
  const int64_t steps = monitor.drive(0, true, hooks());
  g_stop_requested.store(false);
  EXPECT_EQ(steps, 0);
  EXPECT_EQ(monitor.summary().status, RunStatus::Interrupted);
  EXPECT_EQ(calls_.checkpoints, (std::vector<int64_t>{0}));
  EXPECT_EQ(monitor.finish(steps, "unused").message, "interrupted at 0");
}

TEST_F(RunMonitorTest, ThrowingHookEndsTheRunFailedWithWhatItHadReached) {
  RunDirectory dir(dir_);
  RunMonitor monitor(config_, dir);
  monitor.summary().T_k = {3, std::nullopt};
  RunLoopHooks h = hooks();
  h.train_step = [](int64_t s) {
    if (s == 5) throw std::runtime_error("disk full");
  };
  EXPECT_THROW(monitor.drive(0, true, h), std::runtime_error);
  const auto j = nlohmann::json::parse(read_file(dir_ / "summary.json"));
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["steps"], 5);  // the updates done before the failing one
  EXPECT_EQ(j["message"], "disk full");
  EXPECT_EQ(j["T_k"][0], 3);
}

}  // namespace
}  // namespace skillrun
