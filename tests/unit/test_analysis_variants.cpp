// Variants (analysis/variants.h): which runs are averaged together, and how variants are named.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/variants.h"
#include "core/error.h"

namespace skillrun {
namespace {

using nlohmann::json;

RunAnalysis run_with(json config) {
  RunAnalysis r;
  r.config = std::move(config);
  return r;
}

json muon(double momentum, int seed, double lr = 0.01, int width = 128) {
  return {{"seed", seed},
          {"name", "m" + std::to_string(seed)},
          {"device", seed ? "cpu" : "auto"},
          {"model", {{"width", width}}},
          {"optimizer",
           {{"type", "muon"}, {"lr", lr}, {"momentum", momentum}, {"msign", "ns5"},
            {"other_params", {{"type", "adam"}, {"lr", 0.001}}}}},
          {"train", {{"checkpoint_every", seed * 100}}}};
}

std::vector<std::string> names(const std::vector<Variant>& vs) {
  std::vector<std::string> out;
  for (const Variant& v : vs) out.push_back(v.name);
  return out;
}

// The quickstart: three types whose blocks hold different keys; one run each: one variant each,
// named by the type alone (keys of one type never make another's name noisy).
TEST(Variants, OneRunPerTypeIsNamedByItsTypeAlone) {
  const std::vector<RunAnalysis> runs = {
      run_with({{"seed", 0}, {"optimizer", {{"type", "nmd"}, {"lr", 0.01}, {"momentum", 0.9}}}}),
      run_with({{"seed", 0}, {"optimizer", {{"type", "adam"}, {"lr", 0.001}, {"beta1", 0.9}}}}),
      run_with(muon(0.95, 0))};
  const std::vector<Variant> vs = split_variants(runs, {});
  EXPECT_EQ(names(vs), (std::vector<std::string>{"adam", "muon", "nmd"}));
  EXPECT_TRUE(variant_keys(vs).empty());
}

// Seeds, names, devices, checkpoint settings, lrs and widths never split; the momentum does.
TEST(Variants, OnlyKeysOtherThanSeedLrAndWidthSplit) {
  std::vector<RunAnalysis> runs;
  for (double m : {0.95, 0.0})
    for (int seed : {0, 1})
      for (double lr : {0.01, 0.001})
        for (int width : {64, 128}) runs.push_back(run_with(muon(m, seed, lr, width)));
  const std::vector<Variant> vs = split_variants(runs, {});
  ASSERT_EQ(vs.size(), 2u);
  EXPECT_EQ(names(vs), (std::vector<std::string>{"muon, momentum=0", "muon, momentum=0.95"}));
  EXPECT_EQ(vs[0].runs.size(), 8u);
  EXPECT_EQ(vs[1].values, (json{{"optimizer.momentum", 0.95}}));
  EXPECT_EQ(variant_keys(vs), (std::vector<std::string>{"optimizer.momentum"}));
}

// A key whose last part another key shares is named by a longer tail.
TEST(Variants, AmbiguousKeyIsNamedByALongerTail) {
  json a = muon(0.95, 0), b = muon(0.95, 1);
  b["optimizer"]["other_params"]["lr"] = 0.003;
  const std::vector<Variant> vs = split_variants({run_with(a), run_with(b)}, {});
  EXPECT_EQ(names(vs), (std::vector<std::string>{"muon, other_params.lr=0.001", "muon, other_params.lr=0.003"}));
}

// A key only some runs of a type have follows from one that differs (another other_params
// type): it splits, but the name shows the key that explains it.
TEST(Variants, KeyPresentInSomeRunsOnlyIsLeftOutOfTheName) {
  json a = muon(0.95, 0), b = muon(0.95, 1);
  b["optimizer"]["other_params"] = {{"type", "sgd"}, {"lr", 0.001}, {"nesterov", true}};
  const std::vector<Variant> vs = split_variants({run_with(a), run_with(b)}, {});
  EXPECT_EQ(names(vs), (std::vector<std::string>{"muon, other_params.type=adam", "muon, other_params.type=sgd"}));
  EXPECT_EQ(vs[1].values["optimizer.other_params.nesterov"], true);
}

TEST(Variants, CompareKeysReplaceTheAutomaticSplit) {
  const std::vector<RunAnalysis> runs = {run_with(muon(0.95, 0)), run_with(muon(0.0, 0))};
  EXPECT_EQ(names(split_variants(runs, {"optimizer.type"})), (std::vector<std::string>{"muon"}));
  EXPECT_EQ(names(split_variants(runs, {"optimizer.msign"})), (std::vector<std::string>{"msign=ns5"}));
  EXPECT_THROW(split_variants(runs, {"optimizer.nope"}), UsageError);
}

TEST(Variants, PooledDifferencesNameConfigKeysAndProvenance) {
  std::vector<RunAnalysis> runs = {run_with(muon(0.95, 0, 0.01, 64)), run_with(muon(0.0, 1, 0.01, 128))};
  runs[0].provenance = {{"device", "cpu"}, {"git_commit", "abc"}};
  runs[1].provenance = {{"device", "cuda"}, {"git_commit", "abc"}};
  EXPECT_EQ(pooled_differences(runs, {0, 1}, {"model.width"}),
            "optimizer.momentum (0, 0.95); device: cpu (1 run), cuda (1 run)");
  EXPECT_EQ(pooled_differences(runs, {0}, {}), "");
}

}  // namespace
}  // namespace skillrun
