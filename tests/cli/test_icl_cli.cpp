// `skillrun run` on icl_linreg configs, as a user runs them: the paper's Figure 5 configs
// shrunk to seconds, the run directory they leave, and the errors of bad icl configs.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_support.h"

namespace skillrun_test {
namespace {

class IclCli : public CliTest {
 protected:
  std::string config(const std::string& name) {
    return std::string(SKILLRUN_SOURCE_DIR) + "/configs/paper/" + name + ".json";
  }
  // A shrunk fig5 run: d = 8, at most 400 steps, evals every 5 steps.
  Result small_run(const std::string& name, const fs::path& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"run", config(name), "--out", out.string(), "--no-progress",
                                     "--set", "task.d=8", "--set", "eval.modes=[1,8]",
                                     "--set", "eval.every=5", "--set", "train.max_steps=400"};
    args.insert(args.end(), extra.begin(), extra.end());
    return skillrun(args);
  }
};

TEST_F(IclCli, SpecGdRunConvergesAndWritesItsRunDirectory) {
  const fs::path out = dir_ / "specgd";
  // Theorem 2 with C = 0.9, rho = 0.99: T = ceil(log(0.9 / 1e-3) / 0.01) = 681 steps at most.
  const Result r = small_run("fig5_specgd", out, {"--set", "train.max_steps=1000"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("status: converged"), std::string::npos) << r.out;
  const auto summary = nlohmann::json::parse(slurp(out / "summary.json"));
  EXPECT_EQ(summary["status"], "converged");
  EXPECT_EQ(summary["task"], "icl_linreg");
  ASSERT_TRUE(summary["steps_to_epsilon"].is_number_integer());
  EXPECT_EQ(summary["steps_to_epsilon"], summary["steps"]);
  EXPECT_LE(summary["final_relative_distance"].get<double>(), 1e-3);
  EXPECT_FALSE(summary.contains("T_k"));
  const std::string metrics = slurp(out / "metrics.csv");
  EXPECT_EQ(metrics.substr(0, metrics.find('\n')),
            "step,wall_s,lr,loss,relative_loss,distance,relative_distance,mode_1,mode_8");
  EXPECT_EQ(metrics.compare(metrics.find('\n') + 1, 4, "0,0."), 0) << "the first row is step 0";
  const auto config = nlohmann::json::parse(slurp(out / "config.json"));
  EXPECT_EQ(config["task"]["d"], 8);
  EXPECT_EQ(config["precision"], "fp64");
}

TEST_F(IclCli, GdStopsAtMaxStepsOnAnIllConditionedProblem) {
  const fs::path out = dir_ / "gd";
  const Result r = small_run("fig5_gd", out, {"--set", "task.sigma_x.kappa=1000"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto summary = nlohmann::json::parse(slurp(out / "summary.json"));
  EXPECT_EQ(summary["status"], "max_steps");
  EXPECT_TRUE(summary["steps_to_epsilon"].is_null());
  EXPECT_GT(summary["final_relative_distance"].get<double>(), 0.1);
  EXPECT_LT(summary["final_loss"].get<double>(), summary["initial_loss"].get<double>());
}

TEST_F(IclCli, DivergingGdIsRecordedAsDiverged) {
  const fs::path out = dir_ / "diverged";
  const Result r = small_run("fig5_gd", out, {"--set", "optimizer.lr=50", "--set", "train.lr_schedule.type=constant"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto summary = nlohmann::json::parse(slurp(out / "summary.json"));
  EXPECT_EQ(summary["status"], "diverged") << summary.dump();
}

// metrics.csv without its wall_s column (the second), which differs run to run.
std::string without_wall_time(const std::string& csv) {
  std::string out;
  std::size_t pos = 0;
  while (pos < csv.size()) {
    const std::size_t end = csv.find('\n', pos);
    const std::string line = csv.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    const std::size_t first = line.find(','), second = line.find(',', first + 1);
    out += line.substr(0, first) + line.substr(second) + "\n";
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return out;
}

TEST_F(IclCli, ResumeRunsAnUnfinishedIclRunAgainAndLeavesAFinishedOneAlone) {
  const fs::path out = dir_ / "again";
  ASSERT_EQ(small_run("fig5_muon", out).status, 0);
  const std::string first = slurp(out / "metrics.csv");
  ASSERT_GT(std::count(first.begin(), first.end(), '\n'), 10);
  // Finished runs are not run twice.
  const Result finished = small_run("fig5_muon", out, {"--resume"});
  ASSERT_EQ(finished.status, 0) << finished.err;
  EXPECT_NE(finished.out.find("already finished"), std::string::npos) << finished.out;
  EXPECT_EQ(slurp(out / "metrics.csv"), first);
  // A run killed hard: summary.json still says "running" and metrics.csv ends early.
  {
    auto summary = nlohmann::json::parse(slurp(out / "summary.json"));
    summary["status"] = "running";
    std::ofstream(out / "summary.json") << summary.dump();
    std::ofstream(out / "metrics.csv") << first.substr(0, first.find('\n', first.size() / 2) + 1) << "120,0.1,";
  }
  const Result again = small_run("fig5_muon", out, {"--resume"});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("running"), std::string::npos) << again.err;  // "... running <dir> again from Q_0"
  EXPECT_EQ(without_wall_time(slurp(out / "metrics.csv")), without_wall_time(first));
  EXPECT_EQ(nlohmann::json::parse(slurp(out / "summary.json"))["status"], "max_steps");
}

TEST_F(IclCli, BadIclConfigsExitTwoNamingThePath) {
  struct Case {
    std::vector<std::string> sets;
    std::string path;
  };
  const std::vector<Case> cases = {
      {{"task.sigma_x.exponent=1"}, "task.sigma_x"},
      {{"train.batch_size=10"}, "train.batch_size"},
      {{"optimizer.type=nmdx"}, "optimizer.type"},
      {{"eval.modes=[0]"}, "eval.modes[0]"},
  };
  for (const Case& k : cases) {
    std::vector<std::string> args = {"validate", config("fig5_gd")};
    for (const auto& s : k.sets) args.insert(args.end(), {"--set", s});
    const Result r = skillrun(args);
    EXPECT_EQ(r.status, 2) << k.path;
    EXPECT_NE(r.err.find(k.path + ":"), std::string::npos) << r.err;
  }
  // fp64 is a CPU-only precision.
  const Result cuda = skillrun({"run", config("fig5_gd"), "--device", "cuda", "--out", (dir_ / "cuda").string()});
  EXPECT_EQ(cuda.status, 2) << cuda.err;
}

}  // namespace
}  // namespace skillrun_test
