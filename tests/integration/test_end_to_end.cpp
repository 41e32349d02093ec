// End-to-end runs of configs/ci/tiny.json through the library (config -> trainer -> run
// directory): every optimizer learns every subtask, files are valid, runs are reproducible,
// divergence and interruption are recorded rather than lost.
#include <gtest/gtest.h>

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "backend/cpu/cpu_backend.h"
#include "conformance/backends_under_test.h"
#include "core/error.h"
#include "core/fs.h"
#include "train/trainer.h"

#include "support/cpu_forwarding_backend.h"
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

// A backend with a fused layer path reports it once at the end of every run (in that run's log
// scope, so each run of a pack has it in its own run.log: docs/CUDA.md, "Fused epilogues"); the
// CPU backend has none and logs nothing of the kind.
class CpuReportingAFusedPath final : public testing::CpuForwardingBackend {
 public:
  FusedLinearCounts fused_linear_counts() const override {
    FusedLinearCounts counts;
    counts.library = "cuBLASLt";
    counts.problems = 2;
    counts.refused = 1;
    return counts;
  }
};

TEST(EndToEnd, EveryRunEndsWithTheBackendsFusedLinearReport) {
  std::ostringstream log;
  const auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  spdlog::set_level(spdlog::level::info);
  const auto pack = [&](Backend& backend, const std::string& name) {
    std::vector<ExperimentConfig> configs;
    std::vector<std::unique_ptr<RunDirectory>> dirs;
    std::vector<RunDirectory*> dir_ptrs;
    for (const char* seed : {"seed=1", "seed=2"}) {
      configs.push_back(tiny({"train.stop_when_learned=false", "train.max_steps=25", seed}));
      dirs.push_back(std::make_unique<RunDirectory>(fresh_dir(name + "_" + seed)));
      dir_ptrs.push_back(dirs.back().get());
    }
    Trainer trainer(backend, configs);
    Progress progress(ProgressMode::Off, 25, configs.front().task.n_tasks);
    trainer.run(dir_ptrs, progress, std::vector<const CheckpointState*>(2));
    for (const auto& d : dirs) fs::remove_all(d->path());
  };
  CpuReportingAFusedPath fused;
  pack(fused, "fused_report");
  const std::string with_report = log.str();
  log.str("");
  CpuBackend cpu;
  pack(cpu, "no_fused_report");
  const std::string without = log.str();
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::find(sinks.begin(), sinks.end(), sink));
  spdlog::set_level(spdlog::level::warn);

  std::size_t reports = 0;
  for (std::size_t at = with_report.find("cuBLASLt: 2 fused problems, 1 refused;"); at != std::string::npos;
       at = with_report.find("cuBLASLt: 2 fused problems", at + 1))
    ++reports;
  EXPECT_EQ(reports, 2u) << "one line at the end of each run of the pack:\n" << with_report;
  EXPECT_EQ(without.find("cuBLASLt"), std::string::npos) << without;
}

// ---- weights that go non-finite between two evals (docs/CUDA.md, "NaN") -------------------
// The CPU backend with the fused path's ReLU (max(x, 0), as cuBLASLt documents its epilogue):
// NaN comes out 0, so a NaN weight of a hidden unit never reaches the loss (the unit's output is
// 0 and its mask, H > 0, stops its gradient) and only the trainer's parameter check can end the
// run. Every other op is the CPU backend's, so the run is the CPU's to the bit until then.
class CpuWithMaxRelu final : public testing::CpuForwardingBackend {
 public:
  std::string name() const override { return cpu().name() + ", ReLU max(x, 0) (test)"; }
  void bias_activation_runs(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias, int rows,
                            int cols, bool relu, int runs) override {
    cpu().bias_activation_runs(H, stride_h, bias, stride_bias, rows, cols, relu, runs);
    if (!relu) return;
    const std::size_t n = static_cast<std::size_t>(rows) * cols;
    for (int r = 0; r < runs; ++r)
      for (std::size_t i = 0; i < n; ++i) H[r * stride_h + i] = std::isnan(H[r * stride_h + i]) ? 0.0f : H[r * stride_h + i];
  }
};

// Every backend under test (CPU here; cuda, cuda_tf32, cuda_bf16, cuda_unfused on a GPU) and the
// CPU with the fused path's ReLU, which stands in for cuBLASLt's where no GPU is.
constexpr const char* kMaxRelu = "cpu_max_relu";
std::vector<std::string> divergence_backends() {
  std::vector<std::string> names = conformance::backend_names();
  names.push_back(kMaxRelu);
  return names;
}

class NonFiniteWeights : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    if (GetParam() == kMaxRelu) {
      backend_ = std::make_unique<CpuWithMaxRelu>();
      return;
    }
    for (const conformance::BackendUnderTest& b : conformance::backends_under_test()) {
      if (b.name != GetParam()) continue;
      if (const std::string why = b.unavailable(); !why.empty()) GTEST_SKIP() << why;
      backend_ = b.make();
    }
    ASSERT_NE(backend_, nullptr);
  }

  // Trains `seeds` as one pack (a run alone for one seed) to step 25, evals at 0 and 25 included,
  // puts a NaN into the first weight of run `poisoned` through the trainer's model(), and goes on
  // from there in the same directories to step 100 (the runs resumed from their state at 25:
  // every other run continues as if nothing happened). Returns the second part's summaries.
  std::vector<RunSummary> poison_after_step_25(const std::vector<uint64_t>& seeds, int poisoned) {
    std::vector<ExperimentConfig> first, second;
    std::vector<fs::path> paths;
    for (std::size_t i = 0; i < seeds.size(); ++i) {
      const std::string seed = "seed=" + std::to_string(seeds[i]);
      first.push_back(tiny({"train.stop_when_learned=false", "train.max_steps=25", seed}));
      second.push_back(tiny({"train.stop_when_learned=false", "train.max_steps=100", seed}));
      paths.push_back(
          fresh_dir("nonfinite_" + GetParam() + "_" + std::to_string(seeds.size()) + "_" + std::to_string(i)));
      dirs_.push_back(paths.back());
    }
    Progress progress(ProgressMode::Off, 100, first.front().task.n_tasks);
    std::vector<CheckpointState> states;
    {
      std::vector<std::unique_ptr<RunDirectory>> dirs;
      std::vector<RunDirectory*> dir_ptrs;
      for (std::size_t i = 0; i < seeds.size(); ++i) {
        dirs.push_back(std::make_unique<RunDirectory>(paths[i]));
        dirs.back()->write_config(to_json(first[i]));
        dir_ptrs.push_back(dirs.back().get());
      }
      Trainer trainer(*backend_, first);
      const auto summaries = trainer.run(dir_ptrs, progress, std::vector<const CheckpointState*>(seeds.size()));
      for (const RunSummary& s : summaries) EXPECT_EQ(s.status, RunStatus::MaxSteps) << s.message;
      Parameter& w = trainer.model().parameters(trainer.slot(poisoned)).front();
      EXPECT_TRUE(w.is_matrix && w.is_hidden) << w.name << ": the first hidden layer's weight expected";
      std::vector<float> values = w.value.download();
      values[0] = std::numeric_limits<float>::quiet_NaN();  // unit 0's first input weight
      w.value.upload(values);
      for (std::size_t i = 0; i < seeds.size(); ++i)
        states.push_back(trainer.snapshot(25, 0.0, summaries[i].T_k, static_cast<int>(i)));
    }
    std::vector<std::unique_ptr<RunDirectory>> dirs;
    std::vector<RunDirectory*> dir_ptrs;
    std::vector<const CheckpointState*> resume;
    for (std::size_t i = 0; i < seeds.size(); ++i) {
      dirs.push_back(std::make_unique<RunDirectory>(paths[i], RunDirMode::Resume));
      dir_ptrs.push_back(dirs.back().get());
      resume.push_back(&states[i]);
    }
    Trainer trainer(*backend_, second);
    return trainer.run(dir_ptrs, progress, resume);
  }

  // The poisoned run: diverged at step 50, the first eval after the NaN, which its message names
  // and its last metrics row is; on the CPU with the fused path's ReLU the loss stayed finite, so
  // the parameters must be what ended it.
  void expect_diverged_at_50(const RunSummary& s, const fs::path& dir) {
    EXPECT_EQ(s.status, RunStatus::Diverged) << s.message;
    EXPECT_EQ(s.steps, 50) << s.message;
    EXPECT_NE(s.message.find("non-finite"), std::string::npos) << s.message;
    EXPECT_NE(s.message.find("at step 50"), std::string::npos) << s.message;
    if (GetParam() == kMaxRelu) {
      EXPECT_NE(s.message.find("non-finite parameters"), std::string::npos) << s.message;
    }
    const auto summary = nlohmann::json::parse(read_file(dir / "summary.json"));
    EXPECT_EQ(summary["status"], "diverged");
    EXPECT_EQ(summary["steps"], 50);
    const auto rows = lines_of(dir / "metrics.csv");
    ASSERT_FALSE(rows.empty());
    EXPECT_EQ(rows.back().substr(0, rows.back().find(',')), "50") << "the eval that found it is recorded";
  }

  void TearDown() override {
    for (const fs::path& d : dirs_) fs::remove_all(d);
  }

  std::unique_ptr<Backend> backend_;
  std::vector<fs::path> dirs_;
};

TEST_P(NonFiniteWeights, ARunIsDivergedAtTheFirstEvalAfter) {
  const std::vector<RunSummary> s = poison_after_step_25({1}, 0);
  ASSERT_EQ(s.size(), 1u);
  expect_diverged_at_50(s[0], dirs_[0]);
}

// Seeds {2, 1, 2}: slots put the runs of a seed together, so run 1 is slot 2 and run 2 is slot 1;
// the NaN goes into run 1's weights. Only run 1 ends (at step 50); the others run to step 100.
TEST_P(NonFiniteWeights, APackedRunIsDivergedAtTheFirstEvalAfterAndOnlyIt) {
  const std::vector<RunSummary> s = poison_after_step_25({2, 1, 2}, 1);
  ASSERT_EQ(s.size(), 3u);
  expect_diverged_at_50(s[1], dirs_[1]);
  for (const int run : {0, 2}) {
    EXPECT_EQ(s[run].status, RunStatus::MaxSteps) << "run " << run << ": " << s[run].message;
    EXPECT_EQ(s[run].steps, 100) << "run " << run;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, NonFiniteWeights, ::testing::ValuesIn(divergence_backends()),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace skillrun
