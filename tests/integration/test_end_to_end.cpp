// End-to-end runs of configs/ci/tiny.json through the library (config -> trainer -> run
// directory): every optimizer learns every subtask, files are valid, runs are reproducible,
// divergence and interruption are recorded rather than lost.
#include <gtest/gtest.h>

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/fs.h"
#include "train/trainer.h"

#include "support/temp_dir.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) { return skillrun_test::fresh_temp_dir("e2e_" + name, /*create=*/false); }

ExperimentConfig tiny(const std::vector<std::string>& overrides = {}) {
  return load_experiment(std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", overrides);
}

// Trains `config` into `dir`: a fresh run, or with `resume` the continuation of the run there.
RunSummary run_in(const ExperimentConfig& config, const fs::path& dir, const CheckpointState* resume = nullptr) {
  spdlog::set_level(spdlog::level::warn);  // keep the test log to failures
  CpuBackend backend;
  RunDirectory run_dir(dir, resume ? RunDirMode::Resume : RunDirMode::Fresh);
  run_dir.write_config(to_json(config));
  Trainer trainer(backend, config);
  Progress progress(ProgressMode::Off, config.train.max_steps, config.task.n_tasks);
  return trainer.run(run_dir, progress, resume);
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::istringstream in(read_file(file));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Each row's columns after wall_s (train_loss onwards): deterministic across runs.
std::vector<std::string> deterministic_columns(const fs::path& metrics) {
  std::vector<std::string> out;
  for (const std::string& line : lines_of(metrics)) {
    const auto first = line.find(','), second = line.find(',', first + 1);
    out.push_back(line.substr(0, first) + line.substr(second));
  }
  return out;
}

class EveryOptimizer : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(EveryOptimizer, LearnsEverySubtaskOfTheTinyTask) {
  const ExperimentConfig config = tiny(GetParam());
  const fs::path dir = fresh_dir("learn_" + std::string(name(config.optimizer.type)));
  const RunSummary s = run_in(config, dir);
  EXPECT_EQ(s.status, RunStatus::Converged) << s.message;
  for (std::size_t k = 0; k < s.T_k.size(); ++k) EXPECT_TRUE(s.T_k[k].has_value()) << "subtask " << k;
  // Converged means stopped at the eval where the last subtask crossed tau.
  EXPECT_EQ(s.steps, *std::max_element(s.T_k.begin(), s.T_k.end()));
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Optimizers, EveryOptimizer,
    ::testing::Values(std::vector<std::string>{},  // muon ns5 (the config's own)
                      std::vector<std::string>{"optimizer.msign=polar_express"},
                      std::vector<std::string>{"optimizer.msign=svd"},
                      std::vector<std::string>{"optimizer={\"type\":\"adam\",\"lr\":0.01}"},
                      std::vector<std::string>{"optimizer={\"type\":\"adamw\",\"lr\":0.01,\"weight_decay\":0.01}"},
                      std::vector<std::string>{"optimizer={\"type\":\"nmd\",\"lr\":0.02}"},
                      std::vector<std::string>{"optimizer={\"type\":\"sgd\",\"lr\":0.5}"},
                      std::vector<std::string>{"optimizer={\"type\":\"signgd\",\"lr\":0.001}"}));

TEST(EndToEnd, RunDirectoryHoldsConfigMetricsAndSummary) {
  const ExperimentConfig config = tiny();
  const fs::path dir = fresh_dir("files");
  const RunSummary s = run_in(config, dir);

  // config.json re-parses to the same resolved config.
  EXPECT_EQ(to_json(parse_experiment(nlohmann::json::parse(read_file(dir / "config.json")))), to_json(config));

  const auto lines = lines_of(dir / "metrics.csv");
  EXPECT_EQ(lines[0], "step,wall_s,train_loss,mean_loss,loss_0,loss_1,loss_2,acc_0,acc_1,acc_2");
  // One row per eval: step 0 and every 25 steps up to the stop.
  ASSERT_EQ(static_cast<int64_t>(lines.size()), 1 + 1 + s.steps / 25);
  EXPECT_EQ(lines[1].substr(0, 2), "0,");
  EXPECT_EQ(lines[1].find(",,"), lines[1].find(',', 2)) << "train_loss is empty at step 0";
  EXPECT_EQ(lines.back().substr(0, lines.back().find(',')), std::to_string(s.steps));

  const auto summary = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_EQ(summary["status"], "converged");
  EXPECT_EQ(summary["steps"], s.steps);
  EXPECT_EQ(summary["T_k"].size(), 3u);
  EXPECT_EQ(summary["tau_bits"], 0.1);
  for (const char* key : {"seconds", "device", "git_commit", "version"}) EXPECT_TRUE(summary.contains(key)) << key;
  fs::remove_all(dir);
}

TEST(EndToEnd, SameSeedReproducesEveryLossBitForBit) {
  const ExperimentConfig config = tiny({"train.stop_when_learned=false", "train.max_steps=100"});
  const fs::path a = fresh_dir("repro_a"), b = fresh_dir("repro_b"), c = fresh_dir("repro_c");
  run_in(config, a);
  run_in(config, b);
  EXPECT_EQ(deterministic_columns(a / "metrics.csv"), deterministic_columns(b / "metrics.csv"));
  run_in(tiny({"train.stop_when_learned=false", "train.max_steps=100", "seed=2"}), c);
  EXPECT_NE(deterministic_columns(a / "metrics.csv"), deterministic_columns(c / "metrics.csv"));
  for (const auto& d : {a, b, c}) fs::remove_all(d);
}

TEST(EndToEnd, HugeLearningRateIsRecordedAsDiverged) {
  const ExperimentConfig config = tiny({"optimizer={\"type\":\"sgd\",\"lr\":1e30}"});
  const fs::path dir = fresh_dir("diverge");
  const RunSummary s = run_in(config, dir);
  EXPECT_EQ(s.status, RunStatus::Diverged);
  EXPECT_NE(s.message.find("non-finite"), std::string::npos) << s.message;
  const auto summary = nlohmann::json::parse(read_file(dir / "summary.json"));
  EXPECT_EQ(summary["status"], "diverged");
  EXPECT_GE(lines_of(dir / "metrics.csv").size(), 2u);  // the step-0 row survives
  fs::remove_all(dir);
}

TEST(EndToEnd, StopRequestEndsTheRunAsInterrupted) {
  const ExperimentConfig config = tiny();
  const fs::path dir = fresh_dir("interrupt");
  g_stop_requested.store(true);
  const RunSummary s = run_in(config, dir);
  g_stop_requested.store(false);
  EXPECT_EQ(s.status, RunStatus::Interrupted);
  EXPECT_EQ(s.steps, 0);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "summary.json"))["status"], "interrupted");
  fs::remove_all(dir);
}

TEST(EndToEnd, RunDirectoryRefusesToOverwriteARun) {
  const fs::path dir = fresh_dir("overwrite");
  run_in(tiny({"train.max_steps=25", "train.stop_when_learned=false"}), dir);
  EXPECT_THROW(RunDirectory{dir}, UsageError);
  fs::remove_all(dir);
}

// Interrupt a run mid-way (the signal flag, set from another thread after a delay), resume it
// from its checkpoint in the same directory: metrics.csv must equal an uninterrupted run's
// row for row and bit for bit, wall_s aside.
TEST(Resume, InterruptedThenResumedEqualsUninterrupted) {
  const ExperimentConfig config =
      tiny({"train.stop_when_learned=false", "train.max_steps=1500", "train.checkpoint_every=7"});
  const fs::path whole = fresh_dir("resume_whole"), split = fresh_dir("resume_split");
  run_in(config, whole);

  std::thread stopper([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    g_stop_requested.store(true);
  });
  const RunSummary first = run_in(config, split);
  stopper.join();
  g_stop_requested.store(false);
  ASSERT_EQ(first.status, RunStatus::Interrupted) << "the run finished before the stop; make it longer";
  EXPECT_EQ(nlohmann::json::parse(read_file(split / "summary.json"))["status"], "interrupted");

  const auto checkpoint = load_latest_checkpoint(split, checkpoint_identity(to_json(config)));
  ASSERT_TRUE(checkpoint.has_value());
  EXPECT_EQ(checkpoint->step, first.steps);  // written at the step boundary where it stopped
  EXPECT_EQ(run_in(config, split, &*checkpoint).status, RunStatus::MaxSteps);
  EXPECT_EQ(deterministic_columns(whole / "metrics.csv"), deterministic_columns(split / "metrics.csv"));
  fs::remove_all(whole);
  fs::remove_all(split);
}
// The same seed gives the same bits whatever the thread count: GEMM blocks and reductions are
// cut independently of it. Without this, a run resumed on a node with another core count
// would not match its first part.
TEST(EndToEnd, ThreadCountDoesNotChangeAnyLoss) {
  const ExperimentConfig config =
      tiny({"train.stop_when_learned=false", "train.max_steps=100", "optimizer={\"type\":\"nmd\",\"lr\":0.02}"});
  const int saved = omp_get_max_threads();
  std::vector<std::vector<std::string>> metrics;
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    const fs::path dir = fresh_dir("threads_" + std::to_string(threads));
    run_in(config, dir);
    metrics.push_back(deterministic_columns(dir / "metrics.csv"));
    fs::remove_all(dir);
  }
  omp_set_num_threads(saved);
  EXPECT_EQ(metrics[0], metrics[1]);
}
}  // namespace
}  // namespace skillrun
