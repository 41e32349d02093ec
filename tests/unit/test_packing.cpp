// Pack planning (issue 14): runs that differ only in seed and optimizer share a pack; anything
// that changes a shape or the step (width, batch, task, max_steps, precision) starts another.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "sweep/packing.h"
#include "sweep/sweep.h"

namespace skillrun {
namespace {

nlohmann::json config(int seed, const std::string& optimizer, int width) {
  return {{"name", "n"},
          {"seed", seed},
          {"optimizer", {{"type", optimizer}, {"lr", 0.01}}},
          {"model", {{"type", "mlp"}, {"width", width}, {"depth", 2}}},
          {"train", {{"batch_size", 1000}, {"max_steps", 100}}}};
}

std::vector<SweepRun> runs_of(const std::vector<nlohmann::json>& configs) {
  std::vector<SweepRun> runs;
  for (std::size_t i = 0; i < configs.size(); ++i) runs.push_back({i, "run" + std::to_string(i), {}, configs[i]});
  return runs;
}

TEST(PackSignature, IgnoresSeedOptimizerAndNameOnly) {
  const nlohmann::json base = config(0, "muon", 250);
  nlohmann::json other = config(7, "adam", 250);
  other["name"] = "another label";
  EXPECT_EQ(pack_signature(base), pack_signature(other));
  nlohmann::json wider = base, longer = base;
  wider["model"]["width"] = 450;
  longer["train"]["max_steps"] = 200;
  EXPECT_NE(pack_signature(base), pack_signature(wider));
  EXPECT_NE(pack_signature(base), pack_signature(longer));
}

TEST(PlanPacks, GroupsByShapeInSweepOrderAndCutsAtTheCap) {
  // widths 250, 450, 250, 250, 450, 250: groups {0, 2, 3, 5} and {1, 4}; cap 3 cuts the first.
  const auto runs = runs_of({config(0, "nmd", 250), config(0, "nmd", 450), config(1, "adam", 250),
                             config(2, "muon", 250), config(1, "adam", 450), config(3, "nmd", 250)});
  const std::vector<Pack> packs = plan_packs(runs, 3);
  ASSERT_EQ(packs.size(), 3u);
  EXPECT_EQ(packs[0].runs, (std::vector<std::size_t>{0, 2, 3}));
  EXPECT_EQ(packs[1].runs, (std::vector<std::size_t>{5}));
  EXPECT_EQ(packs[2].runs, (std::vector<std::size_t>{1, 4}));
  EXPECT_EQ(plan_packs(runs, 1).size(), runs.size());  // --pack 1: one run per pack
  EXPECT_THROW(plan_packs(runs, 0), std::invalid_argument);
}

TEST(PlanPacks, PaperFig4GridIsFivePacksOfTwentySevenByWidth) {
  const Sweep s = load_sweep(std::filesystem::path(SKILLRUN_SOURCE_DIR) / "configs/sweeps/paper_fig4.json");
  const std::vector<Pack> packs = plan_packs(s.runs, 27);  // the issue: 5 packs of 27
  ASSERT_EQ(packs.size(), 5u);
  std::set<int> widths;
  for (const Pack& pack : packs) {
    EXPECT_EQ(pack.runs.size(), 27u);
    const int width = s.runs[pack.runs.front()].config["model"]["width"].get<int>();
    widths.insert(width);
    for (std::size_t i : pack.runs) EXPECT_EQ(s.runs[i].config["model"]["width"], width);
  }
  EXPECT_EQ(widths, (std::set<int>{250, 450, 650, 850, 1050}));
}

}  // namespace
}  // namespace skillrun
