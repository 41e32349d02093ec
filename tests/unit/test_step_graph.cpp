// When a trainer's step runs eagerly, is captured and is replayed (train/step_graph.h), on a test
// double: the CPU backend's ops with step-graph calls that only record that they were made (the
// CPU backend has no step graphs). Sequences below are worked out by hand from two warm-up steps.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "train/step_graph.h"
#include "train/trainer.h"

#include "support/cpu_forwarding_backend.h"

namespace skillrun {
namespace {

using Calls = std::vector<std::string>;

class RecordingGraphBackend final : public testing::CpuForwardingBackend {
 public:
  bool supports_step_graph() const override { return true; }
  void begin_step_capture(uint32_t step) override {
    calls.push_back("begin " + std::to_string(step));
    if (refuse_capture) throw RuntimeError("capture refused (test)");
  }
  void end_step_capture() override { calls.push_back("end"); }
  void abort_step_capture() noexcept override { calls.push_back("abort"); }
  void launch_step_graph(uint32_t step) override { calls.push_back("launch " + std::to_string(step)); }
  Calls calls;
  bool refuse_capture = false;
};

// Steps [first, last) through `graph`, eager and recorded steps logged into the backend's calls.
std::vector<bool> steps(StepGraph& graph, RecordingGraphBackend& backend, int64_t first, int64_t last,
                        bool timed = false) {
  std::vector<bool> replayed;
  for (int64_t s = first; s < last; ++s)
    replayed.push_back(graph.run(
        s, timed, [&] { backend.calls.push_back("eager " + std::to_string(s)); },
        [&] { backend.calls.push_back("record " + std::to_string(s)); }));
  return replayed;
}

class StepGraphTest : public ::testing::Test {
 protected:
  void SetUp() override { spdlog::set_level(spdlog::level::off); }
  void TearDown() override { spdlog::set_level(spdlog::level::info); }
  RecordingGraphBackend backend_;
  StepGraph graph_{backend_, /*wanted=*/true, [] { return std::string("training step (test)"); }};
};

TEST_F(StepGraphTest, CapturedAfterTwoEagerStepsThenReplayed) {
  EXPECT_EQ(graph_.state(), StepGraph::State::Warmup);
  EXPECT_EQ(steps(graph_, backend_, 0, 5), (std::vector<bool>{false, false, true, true, true}));
  EXPECT_EQ(backend_.calls,
            (Calls{"eager 0", "eager 1", "begin 2", "record 2", "end", "launch 2", "launch 3", "launch 4"}));
  EXPECT_EQ(graph_.state(), StepGraph::State::Captured);
}

TEST_F(StepGraphTest, InvalidatedGraphIsCapturedAgainAfterTwoMoreEagerSteps) {
  steps(graph_, backend_, 0, 4);
  backend_.calls.clear();
  graph_.invalidate();  // the runs a step trains changed
  EXPECT_EQ(graph_.state(), StepGraph::State::Warmup);
  EXPECT_EQ(steps(graph_, backend_, 4, 8), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(backend_.calls, (Calls{"eager 4", "eager 5", "begin 6", "record 6", "end", "launch 6", "launch 7"}));
}

TEST_F(StepGraphTest, TimedStepsRunEagerlyAndCountAsWarmUp) {
  EXPECT_EQ(steps(graph_, backend_, 0, 2, /*timed=*/true), (std::vector<bool>{false, false}));
  EXPECT_EQ(steps(graph_, backend_, 2, 3), (std::vector<bool>{true}));
  EXPECT_EQ(steps(graph_, backend_, 3, 4, /*timed=*/true), (std::vector<bool>{false}));  // a graph is held
  EXPECT_EQ(graph_.state(), StepGraph::State::Captured);
  EXPECT_EQ(backend_.calls, (Calls{"eager 0", "eager 1", "begin 2", "record 2", "end", "launch 2", "eager 3"}));
}

TEST_F(StepGraphTest, AFailedCaptureIsAbortedAndStepsStayEagerForGood) {
  backend_.refuse_capture = true;
  EXPECT_EQ(steps(graph_, backend_, 0, 4), (std::vector<bool>(4, false)));
  EXPECT_EQ(backend_.calls, (Calls{"eager 0", "eager 1", "begin 2", "abort", "eager 2", "eager 3"}));
  EXPECT_EQ(graph_.state(), StepGraph::State::Off);
  backend_.calls.clear();
  graph_.invalidate();  // a change of runs does not try again
  steps(graph_, backend_, 4, 8);
  EXPECT_EQ(backend_.calls, (Calls{"eager 4", "eager 5", "eager 6", "eager 7"}));
}

TEST_F(StepGraphTest, NotWantedNeverTouchesTheBackendsGraphs) {
  StepGraph eager(backend_, /*wanted=*/false, [] { return std::string(); });
  EXPECT_EQ(eager.state(), StepGraph::State::Off);
  steps(eager, backend_, 0, 4);
  EXPECT_EQ(backend_.calls, (Calls{"eager 0", "eager 1", "eager 2", "eager 3"}));
}

ExperimentConfig tiny(const std::vector<std::string>& overrides = {}) {
  return load_experiment(std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", overrides);
}

TEST(StepGraphWanted, OnlyOnABackendWithGraphsWithoutMsignSvdOrTheVariableSayingNo) {
  RecordingGraphBackend graphs;
  testing::CpuForwardingBackend none;
  const ExperimentConfig muon = tiny();
  const ExperimentConfig svd = tiny({"optimizer.msign=svd"});
  EXPECT_TRUE(step_graph_wanted(graphs, {muon, tiny({"seed=2"})}));
  EXPECT_FALSE(step_graph_wanted(none, {muon}));
  EXPECT_FALSE(step_graph_wanted(graphs, {muon, svd}));  // one run with svd keeps the pack eager
  ASSERT_EQ(::setenv("SKILLRUN_CUDA_GRAPH", "0", 1), 0);
  EXPECT_FALSE(step_graph_wanted(graphs, {muon}));
  ASSERT_EQ(::setenv("SKILLRUN_CUDA_GRAPH", "1", 1), 0);
  EXPECT_TRUE(step_graph_wanted(graphs, {muon}));
  ::unsetenv("SKILLRUN_CUDA_GRAPH");
}

// The trainer's side: the recorded step runs nothing on a real graph backend, so it leaves the
// optimizers' step counts as they were, and each replay moves them on by one. (The double runs
// the recorded step on the CPU and replays nothing: only the counts are checked.)
TEST(StepGraphInATrainer, ReplayedStepsCountAsStepsAndTheRecordedOneDoesNot) {
  spdlog::set_level(spdlog::level::off);
  RecordingGraphBackend backend;
  Trainer trainer(backend, std::vector<ExperimentConfig>{tiny(), tiny({"seed=2"})});
  for (int64_t s = 0; s < 5; ++s) trainer.train_step(s);
  spdlog::set_level(spdlog::level::info);
  EXPECT_TRUE(trainer.step_graph_active());
  EXPECT_EQ(backend.calls, (Calls{"begin 2", "end", "launch 2", "launch 3", "launch 4"}));
  EXPECT_EQ(trainer.optimizer(0).steps_taken(), 5);
  EXPECT_EQ(trainer.optimizer(1).steps_taken(), 5);
}

}  // namespace
}  // namespace skillrun
