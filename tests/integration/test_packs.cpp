// Packs (docs/ARCHITECTURE.md, "Packs"): runs trained together in one Trainer must each write
// exactly what they write alone on the CPU: metrics.csv bit for bit (wall_s aside), summary,
// T_k and checkpoints, whether they end together or apart, diverge, or resume at other steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "support/metrics_rows.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/fs.h"
#include "sweep/packing.h"
#include "train/trainer.h"

#include "support/temp_dir.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

ExperimentConfig tiny(const std::vector<std::string>& overrides = {}) {
  return load_experiment(std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", overrides);
}

std::vector<std::string> rows_of(const fs::path& dir) { return testing::metrics_rows(dir); }

// Trains `configs` as one pack into dirs (fresh, or resumed from `resume`).
std::vector<RunSummary> train_pack(const std::vector<ExperimentConfig>& configs, const std::vector<fs::path>& dirs,
                                   const std::vector<const CheckpointState*>& resume = {}) {
  spdlog::set_level(spdlog::level::warn);
  CpuBackend backend;
  std::vector<std::unique_ptr<RunDirectory>> owned;
  std::vector<RunDirectory*> run_dirs;
  std::vector<const CheckpointState*> from = resume;
  from.resize(configs.size(), nullptr);
  for (std::size_t i = 0; i < configs.size(); ++i) {
    owned.push_back(std::make_unique<RunDirectory>(dirs[i], from[i] ? RunDirMode::Resume : RunDirMode::Fresh));
    owned.back()->write_config(to_json(configs[i]));
    run_dirs.push_back(owned.back().get());
  }
  Trainer trainer(backend, configs);
  Progress progress(ProgressMode::Off, configs.front().train.max_steps, configs.front().task.n_tasks);
  return trainer.run(run_dirs, progress, from);
}

// Sets the stop flag (what a signal does) once `metrics` holds more than `rows` lines: a stop
// mid-run whatever the machine's speed.
std::thread stop_after_rows(fs::path metrics, std::size_t rows) {
  return std::thread([metrics = std::move(metrics), rows] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::error_code ec;
      if (fs::exists(metrics, ec)) {
        const std::string text = read_file(metrics);
        if (static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) > rows) break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    g_stop_requested.store(true);
  });
}

class Packs : public ::testing::Test {
 protected:
  void SetUp() override { root_ = skillrun_test::fresh_temp_dir("packs"); }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

// Mixed seeds, learning rates and optimizer types (Muon with its Adam for the rest, Adam, SGD
// with Nesterov momentum, NMD, SignGD), ending at their own steps: each equals itself alone.
TEST_F(Packs, MixedPackEqualsTheSameRunsAlone) {
  const std::vector<ExperimentConfig> configs = {
      tiny({"seed=1", R"(optimizer={"type":"muon","lr":0.02})"}),
      tiny({"seed=2", R"(optimizer={"type":"adam","lr":0.01})"}),
      tiny({"seed=1", R"(optimizer={"type":"sgd","lr":0.5,"momentum":0.9,"nesterov":true})"}),
      tiny({"seed=1", R"(optimizer={"type":"nmd","lr":0.05})"}),
      tiny({"seed=2", R"(optimizer={"type":"signgd","lr":0.002,"momentum":0.9})"}),
      tiny({"seed=1", R"(optimizer={"type":"adam","lr":0.003})"}),
  };
  std::vector<fs::path> packed, alone;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    packed.push_back(root_ / ("pack" + std::to_string(i)));
    alone.push_back(root_ / ("alone" + std::to_string(i)));
    train_pack({configs[i]}, {alone.back()});
  }
  const std::vector<RunSummary> summaries = train_pack(configs, packed);
  std::set<int64_t> end_steps;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    SCOPED_TRACE(configs[i].name + " #" + std::to_string(i));
    const std::vector<std::string> rows = rows_of(packed[i]);
    EXPECT_GT(rows.size(), 3u);
    EXPECT_EQ(rows, rows_of(alone[i]));
    const auto a = nlohmann::json::parse(read_file(packed[i] / "summary.json"));
    const auto b = nlohmann::json::parse(read_file(alone[i] / "summary.json"));
    for (const char* key : {"status", "steps", "T_k", "message"}) EXPECT_EQ(a[key], b[key]) << key;
    EXPECT_EQ(summaries[i].steps, a["steps"].get<int64_t>());
    end_steps.insert(summaries[i].steps);
  }
  EXPECT_GE(end_steps.size(), 3u) << "the runs should leave the pack at different steps";
}

// A run whose learning rate blows up leaves the pack as diverged; the others are untouched.
TEST_F(Packs, DivergingRunLeavesThePackAndDisturbsNoOther) {
  const std::vector<ExperimentConfig> configs = {
      tiny({R"(optimizer={"type":"adam","lr":0.01})"}),
      tiny({R"(optimizer={"type":"sgd","lr":1e30})"}),
      tiny({R"(optimizer={"type":"nmd","lr":0.05})"}),
  };
  const std::vector<fs::path> packed = {root_ / "p0", root_ / "p1", root_ / "p2"};
  const std::vector<RunSummary> s = train_pack(configs, packed);
  EXPECT_EQ(s[1].status, RunStatus::Diverged);
  EXPECT_EQ(nlohmann::json::parse(read_file(packed[1] / "summary.json"))["status"], "diverged");
  for (const std::size_t i : {0u, 2u}) {
    train_pack({configs[i]}, {root_ / ("alone" + std::to_string(i))});
    EXPECT_EQ(s[i].status, RunStatus::Converged);
    EXPECT_EQ(rows_of(packed[i]), rows_of(root_ / ("alone" + std::to_string(i))));
  }
}

// The issue-21 sweep: lr outer, seed inner (a sweep's usual order), so the runs' slots (grouped by
// seed) are not their indices and a diverging run sits in a slot a healthy run's index names.
// Every run, healthy or diverged, ends as it ends alone: status, steps, T_k, message, rows.
TEST_F(Packs, InterleavedSeedsWithADivergingRunEachEndAsAlone) {
  std::vector<ExperimentConfig> configs;
  for (const char* lr : {"0.003", "1e30"})
    for (const char* seed : {"1", "2", "3"})
      configs.push_back(tiny({std::string("seed=") + seed,
                              std::string(R"(optimizer={"type":"adam","lr":)") + lr + "}"}));
  std::vector<fs::path> packed;
  for (std::size_t i = 0; i < configs.size(); ++i) packed.push_back(root_ / ("pack" + std::to_string(i)));
  const std::vector<RunSummary> summaries = train_pack(configs, packed);
  int diverged = 0;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    SCOPED_TRACE("run " + std::to_string(i) + ": " + configs[i].name);
    const fs::path alone = root_ / ("alone" + std::to_string(i));
    const std::vector<RunSummary> own = train_pack({configs[i]}, {alone});
    EXPECT_EQ(summaries[i].status, own.front().status);
    EXPECT_EQ(summaries[i].steps, own.front().steps);
    EXPECT_EQ(rows_of(packed[i]), rows_of(alone));
    const auto a = nlohmann::json::parse(read_file(packed[i] / "summary.json"));
    const auto b = nlohmann::json::parse(read_file(alone / "summary.json"));
    for (const char* key : {"status", "steps", "T_k", "message"}) EXPECT_EQ(a[key], b[key]) << key;
    diverged += own.front().status == RunStatus::Diverged;
    EXPECT_EQ(own.front().status, i < 3 ? RunStatus::Converged : RunStatus::Diverged);
  }
  EXPECT_EQ(diverged, 3);
}

// Interrupted in a pack, each run resumes alone (and one alone resumes in a pack): the rows
// equal an uninterrupted run's. The resumed runs stand at different steps: the pack trains the
// one behind until the other's step, then both together.
TEST_F(Packs, InterruptedPackResumesAloneAndRunsResumeTogetherFromDifferentSteps) {
  const std::vector<std::string> base = {"train.stop_when_learned=false", "train.max_steps=1200",
                                         "train.checkpoint_every=10"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), base.begin(), base.end());
    return tiny(extra);
  };
  const std::vector<ExperimentConfig> configs = {with({"seed=1", R"(optimizer={"type":"adam","lr":0.01})"}),
                                                 with({"seed=2", R"(optimizer={"type":"muon","lr":0.02})"})};
  const std::vector<fs::path> whole = {root_ / "w0", root_ / "w1"};
  for (std::size_t i = 0; i < 2; ++i) train_pack({configs[i]}, {whole[i]});

  // The pack, stopped by a signal's flag mid-way.
  const std::vector<fs::path> split = {root_ / "s0", root_ / "s1"};
  std::thread stopper = stop_after_rows(split[0] / "metrics.csv", 8);
  const std::vector<RunSummary> first = train_pack(configs, split);
  stopper.join();
  g_stop_requested.store(false);
  ASSERT_EQ(first[0].status, RunStatus::Interrupted) << "the pack finished before the stop; make it longer";
  ASSERT_EQ(first[1].status, RunStatus::Interrupted);
  EXPECT_EQ(first[0].steps, first[1].steps);

  // Run 0 resumes alone to the end.
  auto c0 = load_latest_checkpoint(split[0], checkpoint_identity(to_json(configs[0])));
  ASSERT_TRUE(c0.has_value());
  EXPECT_EQ(c0->step, first[0].steps);
  EXPECT_EQ(train_pack({configs[0]}, {split[0]}, {&*c0})[0].status, RunStatus::MaxSteps);
  EXPECT_EQ(rows_of(split[0]), rows_of(whole[0]));

  // Run 1 goes on alone for a while (stopped again), then resumes in a pack with a fresh
  // copy of run 0 that starts from step 0: two runs at different steps in one pack.
  auto c1 = load_latest_checkpoint(split[1], checkpoint_identity(to_json(configs[1])));
  ASSERT_TRUE(c1.has_value());
  std::thread stopper2 = stop_after_rows(split[1] / "metrics.csv", rows_of(split[1]).size() + 6);
  const RunSummary second = train_pack({configs[1]}, {split[1]}, {&*c1})[0];
  stopper2.join();
  g_stop_requested.store(false);
  ASSERT_EQ(second.status, RunStatus::Interrupted);
  c1 = load_latest_checkpoint(split[1], checkpoint_identity(to_json(configs[1])));
  ASSERT_TRUE(c1.has_value());
  ASSERT_GT(c1->step, first[1].steps);
  const fs::path again = root_ / "again0";
  const std::vector<RunSummary> last = train_pack(configs, {again, split[1]}, {nullptr, &*c1});
  EXPECT_EQ(last[0].status, RunStatus::MaxSteps);
  EXPECT_EQ(last[1].status, RunStatus::MaxSteps);
  EXPECT_EQ(rows_of(split[1]), rows_of(whole[1]));
  EXPECT_EQ(rows_of(again), rows_of(whole[0]));
}

TEST(PackCheck, RunsOfAnotherShapeMayNotShareAPack) {
  try {
    check_pack({tiny(), tiny({"model.width=32"})});
    FAIL() << "a pack of two widths was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("model.width"), std::string::npos) << e.what();
  }
  EXPECT_THROW(check_pack({}), UsageError);
  EXPECT_NO_THROW(check_pack({tiny({"seed=5"}), tiny({R"(optimizer={"type":"sgd","lr":0.1})"})}));
}

// The packs' model: run r's parameters are their own tensors, strided by run_stride.
TEST(PackModel, EachRunHasItsOwnParametersAtItsStride) {
  CpuBackend backend;
  Mlp model(backend, 8, 16, 3, 2, 4, /*runs=*/3);
  ASSERT_EQ(model.runs(), 3);
  for (int r = 0; r < 3; ++r) model.initialize(r, static_cast<uint64_t>(10 + r));
  for (std::size_t i = 0; i < model.parameters(0).size(); ++i) {
    const float* p0 = model.parameters(0)[i].value.data();
    EXPECT_EQ(model.parameters(2)[i].value.data(), p0 + 2 * model.run_stride());
    EXPECT_NE(model.parameters(1)[i].value.download(), model.parameters(0)[i].value.download());
  }
  // Run 1 of the pack computes what a lone model of its seed computes, bit for bit.
  Mlp alone(backend, 8, 16, 3, 2, 4);
  alone.initialize(11);
  std::vector<float> x(4 * 8);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7) % 5) - 2.0f;
  Buffer<float> xb(backend, x.size());
  xb.upload(x);
  const float* packed = model.forward(xb.data(), 4, RunRange{0, 3});
  const std::vector<float> logits_alone = [&] {
    const float* l = alone.forward(xb.data(), 4);
    return std::vector<float>(l, l + 8);
  }();
  EXPECT_EQ(std::vector<float>(packed + model.logits_stride(), packed + model.logits_stride() + 8), logits_alone);
}

TEST(FitPacks, APackThatCannotFitIsSplitWithANote) {
  std::vector<SweepRun> runs(5);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    runs[i].index = i;
    runs[i].config = to_json(tiny({"seed=" + std::to_string(i)}));
  }
  const std::vector<Pack> one = plan_packs(runs, 8);
  ASSERT_EQ(one.size(), 1u);
  const std::size_t per_run = estimated_memory_bytes(tiny());
  std::vector<std::string> notes;
  EXPECT_EQ(fit_packs(one, runs, 5 * per_run, notes).size(), 1u);
  EXPECT_TRUE(notes.empty());
  const std::vector<Pack> cut = fit_packs(one, runs, 2 * per_run + 1, notes);
  ASSERT_EQ(cut.size(), 3u);
  EXPECT_EQ(cut[0].runs, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(cut[2].runs, (std::vector<std::size_t>{4}));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("it trains as 3 packs of at most 2"), std::string::npos) << notes[0];
  // A budget below one run still trains each run, alone.
  EXPECT_EQ(fit_packs(one, runs, 1, notes).size(), 5u);
}

// fit_pack is the one split: the sweep's plan cuts by it (above) and so does a pack process
// (`skillrun pack`, tests/cli: the pack log shows this note). A pack fits when the sum of its
// runs fits, whatever the largest; else it is cut into packs of budget / largest runs.
TEST(FitPacks, OnePackIsWholeWhenItsSumFitsElseCutByItsLargestRun) {
  const PackFit whole = fit_pack({300, 100, 100}, 500);
  EXPECT_EQ(whole.runs_per_pack, 3u);  // 3 x the largest (900) would not fit; the runs (500) do
  EXPECT_TRUE(whole.note.empty()) << whole.note;
  const PackFit cut = fit_pack({300, 100, 100, 100}, 500);
  EXPECT_EQ(cut.runs_per_pack, 1u);
  EXPECT_NE(cut.note.find("a pack of 4 runs needs about"), std::string::npos) << cut.note;
  EXPECT_NE(cut.note.find("it trains as 4 packs of at most 1"), std::string::npos) << cut.note;
  EXPECT_EQ(fit_pack({100, 100, 100, 100, 100}, 250).runs_per_pack, 2u);
  EXPECT_NE(fit_pack({100, 100, 100, 100, 100}, 250).note.find("3 packs of at most 2"), std::string::npos);
  EXPECT_EQ(fit_pack({100}, 1).runs_per_pack, 1u);  // below one run: each alone
  EXPECT_EQ(fit_pack({}, 0).runs_per_pack, 1u);
  EXPECT_EQ(fit_pack({SIZE_MAX, SIZE_MAX}, SIZE_MAX - 1).runs_per_pack, 1u);  // saturates, no overflow
  // The sweep's plan cuts a pack exactly so: the same sizes, the same note.
  std::vector<SweepRun> runs(5);
  for (std::size_t i = 0; i < runs.size(); ++i) runs[i].config = to_json(tiny({"seed=" + std::to_string(i)}));
  const std::size_t per_run = estimated_memory_bytes(tiny());
  std::vector<std::string> notes;
  const std::vector<Pack> planned = fit_packs(plan_packs(runs, 8), runs, 3 * per_run, notes);
  const PackFit alone = fit_pack(std::vector<std::size_t>(5, per_run), 3 * per_run);
  ASSERT_EQ(notes, std::vector<std::string>{alone.note});
  ASSERT_EQ(planned.size(), 2u);
  EXPECT_EQ(planned[0].runs.size(), alone.runs_per_pack);
}

}  // namespace
}  // namespace skillrun
