// The shared run loop on fake hooks: when it evaluates, checkpoints and stops, independent of
// any task. Schedules below are worked out by hand from max_steps 10, eval.every 3,
// checkpoint_every 4: evals at 0, 3, 6, 9 and 10 (the last step), checkpoints at 4 and 8.
// RunLoop: the same for runs in lockstep (a pack), on fake shared and per-run hooks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
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

// What RunLoop did to each of two runs, and the shared work it asked for.
class RunLoopTest : public RunMonitorTest {
 protected:
  struct PerRun {
    std::vector<int64_t> evals, checkpoints;
    int ended = 0;
  };
  using Flags = std::vector<bool>;

  void SetUp() override {
    RunMonitorTest::SetUp();
    for (int i = 0; i < 2; ++i) dirs_.push_back(std::make_unique<RunDirectory>(dir_ / std::to_string(i)));
    for (int i = 0; i < 2; ++i) monitors_.push_back(std::make_unique<RunMonitor>(config_, *dirs_[i]));
  }
  void TearDown() override {
    dirs_.clear();
    RunMonitorTest::TearDown();
  }
  // Run i starts at starts[i] (eval first only from step 0); its eval throws at `throw_at[i]`.
  std::vector<LoopRun> runs(const std::vector<int64_t>& starts, std::vector<int64_t> throw_at = {-1, -1}) {
    std::vector<LoopRun> out(2);
    for (std::size_t i = 0; i < 2; ++i) {
      out[i].monitor = monitors_[i].get();
      out[i].step = starts[i];
      out[i].eval_first = starts[i] == 0;
      PerRun& r = per_run_[i];
      out[i].hooks.eval = [&r, t = throw_at[i]](int64_t s) {
        if (s == t) throw std::runtime_error("disk full");
        r.evals.push_back(s);
        return true;
      };
      out[i].hooks.learned = [] { return false; };
      out[i].hooks.checkpoint = [&r](int64_t s) { r.checkpoints.push_back(s); };
      out[i].hooks.diverged_message = [](int64_t) { return std::string("diverged"); };
      out[i].hooks.interrupted_message = [](int64_t) { return std::string("interrupted"); };
    }
    return out;
  }
  SharedLoopHooks shared() {
    SharedLoopHooks h;
    h.train_step = [this](const Flags& active, int64_t s) { trained_.emplace_back(active, s); };
    h.eval = [this](const Flags& which, int64_t s) { shared_evals_.emplace_back(which, s); };
    h.ended = [this](std::size_t i) { ++per_run_[i].ended; };
    h.failed = [this](std::size_t i, const std::string& what) { failed_.push_back(std::to_string(i) + ": " + what); };
    return h;
  }
  nlohmann::json summary(int i) { return nlohmann::json::parse(read_file(dir_ / std::to_string(i) / "summary.json")); }

  std::vector<std::unique_ptr<RunDirectory>> dirs_;
  std::vector<std::unique_ptr<RunMonitor>> monitors_;
  PerRun per_run_[2];
  std::vector<std::pair<Flags, int64_t>> trained_, shared_evals_;
  std::vector<std::string> failed_;
};

TEST_F(RunLoopTest, RunsBehindStepAloneUntilTheOthersStepThenAllGoTogether) {
  std::vector<LoopRun> r = runs({0, 4});  // run 1 resumed at step 4
  RunLoop loop(r, shared());
  loop.drive();
  EXPECT_FALSE(loop.first_failure());
  std::vector<std::pair<Flags, int64_t>> expected;
  for (int64_t s = 0; s < 10; ++s) expected.emplace_back(s < 4 ? Flags{true, false} : Flags{true, true}, s);
  EXPECT_EQ(trained_, expected);
  EXPECT_EQ(shared_evals_,
            (std::vector<std::pair<Flags, int64_t>>{
                {{true, false}, 0}, {{true, false}, 3}, {{true, true}, 6}, {{true, true}, 9}, {{true, true}, 10}}));
  EXPECT_EQ(per_run_[0].evals, (std::vector<int64_t>{0, 3, 6, 9, 10}));
  EXPECT_EQ(per_run_[1].evals, (std::vector<int64_t>{6, 9, 10}));  // its rows up to 4 exist
  EXPECT_EQ(per_run_[0].checkpoints, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(per_run_[1].checkpoints, (std::vector<int64_t>{8}));
  EXPECT_EQ(r[0].step, 10);
  EXPECT_EQ(r[1].step, 10);
  EXPECT_EQ(per_run_[0].ended, 1);
  EXPECT_EQ(per_run_[1].ended, 1);
  EXPECT_EQ(monitors_[1]->summary().status, RunStatus::MaxSteps);
}

TEST_F(RunLoopTest, ARunsOwnErrorFailsItAloneAndTheOthersTrainOn) {
  std::vector<LoopRun> r = runs({0, 0}, {-1, /*throw_at=*/6});
  RunLoop loop(r, shared());
  loop.drive();
  ASSERT_TRUE(loop.first_failure());
  EXPECT_THROW(std::rethrow_exception(loop.first_failure()), std::runtime_error);
  EXPECT_EQ(failed_, (std::vector<std::string>{"1: disk full"}));
  EXPECT_EQ(summary(1)["status"], "failed");
  EXPECT_EQ(summary(1)["steps"], 6);
  EXPECT_EQ(per_run_[1].ended, 0);  // failed, not ended with a status of its own
  EXPECT_EQ(trained_.back(), (std::pair<Flags, int64_t>{{true, false}, 9}));
  EXPECT_EQ(per_run_[0].evals.back(), 10);
  EXPECT_EQ(monitors_[0]->summary().status, RunStatus::MaxSteps);
}

TEST_F(RunLoopTest, AnErrorOfTheSharedWorkFailsEveryUnfinishedRunAndGoesOn) {
  std::vector<LoopRun> r = runs({0, 4});
  SharedLoopHooks h = shared();
  h.train_step = [](const Flags&, int64_t s) {
    if (s == 5) throw std::runtime_error("device lost");
  };
  RunLoop loop(r, h);
  EXPECT_THROW(loop.drive(), std::runtime_error);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(summary(i)["status"], "failed");
    EXPECT_EQ(summary(i)["steps"], 5);
    EXPECT_EQ(summary(i)["message"], "device lost");
  }
  EXPECT_TRUE(failed_.empty());  // no run's own error
}

TEST_F(RunLoopTest, StopRequestCheckpointsEveryRunAtItsOwnStep) {
  std::vector<LoopRun> r = runs({0, 4});
  RunLoop loop(r, shared());
  g_stop_requested.store(true);
  loop.drive();
  g_stop_requested.store(false);
  EXPECT_TRUE(trained_.empty());
  EXPECT_EQ(per_run_[0].checkpoints, (std::vector<int64_t>{0}));
  EXPECT_EQ(per_run_[1].checkpoints, (std::vector<int64_t>{4}));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(monitors_[i]->summary().status, RunStatus::Interrupted);
    EXPECT_EQ(per_run_[i].ended, 1);
  }
}

}  // namespace
}  // namespace skillrun
