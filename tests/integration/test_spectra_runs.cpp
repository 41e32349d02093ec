// Spectral diagnostics on whole runs (eval.spectra_every, train/spectra.h): Muon's updates keep
// many directions where the norm-matched control keeps the momentum's few; turning spectra on
// changes no bit of metrics.csv; a packed run writes the spectra.csv of its lone twin. Coupled
// vs decoupled weight decay on whole runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "support/metrics_rows.h"
#include "backend/cpu/cpu_backend.h"
#include "core/fs.h"
#include "train/trainer.h"

#include "support/temp_dir.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

ExperimentConfig tiny(const std::vector<std::string>& overrides) {
  return load_experiment(std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", overrides);
}

// Trains `configs` as one pack (one config: a run alone) into `dirs`.
void train(const std::vector<ExperimentConfig>& configs, const std::vector<fs::path>& dirs) {
  spdlog::set_level(spdlog::level::warn);
  CpuBackend backend;
  std::vector<std::unique_ptr<RunDirectory>> owned;
  std::vector<RunDirectory*> run_dirs;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    owned.push_back(std::make_unique<RunDirectory>(dirs[i]));
    owned.back()->write_config(to_json(configs[i]));
    run_dirs.push_back(owned.back().get());
  }
  Trainer trainer(backend, configs);
  Progress progress(ProgressMode::Off, configs.front().train.max_steps, configs.front().task.n_tasks);
  trainer.run(run_dirs, progress, std::vector<const CheckpointState*>(configs.size(), nullptr));
}

using testing::metrics_rows;

// stable_rank of every spectra.csv row of (tensor, of), in step order.
std::vector<double> stable_ranks(const fs::path& dir, const std::string& tensor, const std::string& of) {
  std::istringstream in(read_file(dir / kSpectraFile));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, kSpectraHeader);
  std::vector<double> out;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string x; std::getline(fields, x, ',');) f.push_back(x);
    EXPECT_EQ(f.size(), 10u) << line;
    if (f[1] == tensor && f[2] == of) out.push_back(std::stod(f[6]));
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

TEST(SpectraRuns, MuonsUpdatesKeepMoreDirectionsThanTheNormMatchedControlAndChangeNoMetricBit) {
  const fs::path root = skillrun_test::fresh_temp_dir("spectra_runs");
  const std::vector<std::string> base = {"train.max_steps=300"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), base.begin(), base.end());
    return tiny(more);
  };
  train({with({"eval.spectra_every=1"})}, {root / "muon"});
  train({with({})}, {root / "muon-plain"});
  train({with({"eval.spectra_every=1", "optimizer.msign=norm_matched"})}, {root / "norm-matched"});

  EXPECT_EQ(metrics_rows(root / "muon"), metrics_rows(root / "muon-plain"));
  EXPECT_FALSE(fs::exists(root / "muon-plain" / kSpectraFile));

  const auto muon = stable_ranks(root / "muon", "layers.0.weight", "update");
  const auto control = stable_ranks(root / "norm-matched", "layers.0.weight", "update");
  // One row per eval after step 0 (every 25 steps to 300, or to the step where all were learned).
  EXPECT_EQ(muon.size() + 1, metrics_rows(root / "muon").size() - 1);
  ASSERT_FALSE(control.empty());
  EXPECT_GT(median(muon), 2.5 * median(control)) << median(muon) << " vs " << median(control);
  // The weights have rows from step 0; the head (2 x 64) too.
  EXPECT_EQ(stable_ranks(root / "muon", "layers.0.weight", "weight").size(), muon.size() + 1);
  EXPECT_EQ(stable_ranks(root / "muon", "layers.1.weight", "weight").size(), muon.size() + 1);
}

// In a pack every run writes its own spectra.csv, the one it writes alone (byte for byte: the
// CPU computes each run as alone, and the spectra read only its slice).
TEST(SpectraRuns, APackedRunWritesTheSpectraOfItsLoneTwin) {
  const fs::path root = skillrun_test::fresh_temp_dir("spectra_pack");
  const std::vector<std::string> base = {"train.max_steps=60", "eval.spectra_every=2"};
  std::vector<ExperimentConfig> configs;
  for (const char* msign : {"ns5", "norm_matched"}) {
    auto o = base;
    o.push_back(std::string("optimizer.msign=") + msign);
    configs.push_back(tiny(o));
  }
  auto adam = base;
  adam.push_back(R"(optimizer={"type": "adam", "lr": 0.003})");
  configs.push_back(tiny(adam));
  train(configs, {root / "p0", root / "p1", root / "p2"});
  for (std::size_t i = 0; i < configs.size(); ++i) {
    // (std::string + std::string: GCC 12's -Wrestrict misfires on "a" + std::to_string(i).)
    const fs::path alone = root / (std::string(1, 'a') + std::to_string(i));
    train({configs[i]}, {alone});
    const std::string spectra = read_file(alone / kSpectraFile);
    EXPECT_EQ(read_file(root / (std::string(1, 'p') + std::to_string(i)) / kSpectraFile), spectra) << i;
    // Rows at steps 0 and 50 (every 2nd eval row) and 60 (the last): 2 weights, 2 updates after 0.
    EXPECT_EQ(std::count(spectra.begin(), spectra.end(), '\n'), 1 + 2 + 4 + 4) << spectra;
  }
}

TEST(CoupledDecayRuns, DiffersFromDecoupledAboveZeroAndHasTodaysBitsAtZero) {
  const fs::path root = skillrun_test::fresh_temp_dir("coupled_runs");
  const std::vector<std::string> base = {"train.max_steps=50"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), base.begin(), base.end());
    return tiny(more);
  };
  train({with({"optimizer.weight_decay=0.1", "optimizer.weight_decay_mode=coupled"})}, {root / "coupled"});
  train({with({"optimizer.weight_decay=0.1"})}, {root / "decoupled"});
  train({with({"optimizer.weight_decay_mode=coupled"})}, {root / "coupled0"});
  train({with({})}, {root / "today"});
  EXPECT_NE(metrics_rows(root / "coupled"), metrics_rows(root / "decoupled"));
  EXPECT_EQ(metrics_rows(root / "coupled0"), metrics_rows(root / "today"));
}

}  // namespace
}  // namespace skillrun
