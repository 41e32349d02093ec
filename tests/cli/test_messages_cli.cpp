// Mistyped command lines get a hint that names the fix (issue 22, "Costs and examples that
// hold"): a near-miss option, and --set/--axis given KEY and VALUE as two arguments.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli_support.h"

namespace {

using skillrun_test::Result;

const std::string kTiny = std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json";

class MessagesCli : public skillrun_test::CliTest {};

TEST_F(MessagesCli, NearMissOptionSuggestsTheOption) {
  const Result r = skillrun({"sweep", "--base", kTiny, "--axis", "seed=1,2", "--job", "2", "--list"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("sweep has no option --job: did you mean --jobs?"), std::string::npos) << r.err;
  const Result unknown = skillrun({"run", kTiny, "--frobnicate"});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.err.find("run has no option --frobnicate (see --help)"), std::string::npos) << unknown.err;
}

TEST_F(MessagesCli, SetWithASpaceInsteadOfEqualsSaysKeyEqualsValue) {
  const Result r = skillrun({"run", kTiny, "--set", "model.width", "64", "--out", (dir_ / "x").string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--set takes KEY=VALUE in one argument, e.g. --set model.width=64"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "x"));
}

// The multirun's resume hint names the program as it was run, so it can be copied as printed.
TEST_F(MessagesCli, MultirunHintNamesTheProgramAsItWasRun) {
  const Result r = skillrun({"sweep", "--base", kTiny, "--set", "train.max_steps=10", "--axis", "seed=1", "--out",
                             (dir_ / "mr").string()});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(std::string("list it with: ") + SKILLRUN_BIN + " sweep "), std::string::npos) << r.out;
}

// `sweep --list` shortens keys to their last part and keeps values whole, saying so.
TEST_F(MessagesCli, ListShortensKeysAndKeepsValuesWhole) {
  const Result r = skillrun({"sweep", "--base", kTiny, "--axis", "model.width=32,64", "--axis",
                             "optimizer.lr=0.00123456789,0.003", "--out", (dir_ / "l").string(), "--list"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("width=32,lr=0.00123456789"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(names: width = model.width, lr = optimizer.lr;"), std::string::npos) << r.out;
}

// A config named after its optimizer (quickstart-muon) run with another optimizer type gets a
// directory named by the type it runs, not by both.
TEST_F(MessagesCli, DefaultRunNameFollowsAChangedOptimizerType) {
  const std::string quickstart = std::string(SKILLRUN_SOURCE_DIR) + "/configs/quickstart.json";
  const Result r = sh("cd " + skillrun_test::shell_quote(dir_.string()) + " && " +
                      skillrun_test::shell_quote(SKILLRUN_BIN) + " run " + skillrun_test::shell_quote(quickstart) +
                      " --no-progress --set 'optimizer={\"type\":\"adam\",\"lr\":0.001}' --set train.max_steps=5");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "runs")) names.push_back(e.path().filename());
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0].rfind("quickstart-adam,optimizer.lr=0.001,train.max_steps=5-", 0), 0u) << names[0];
  EXPECT_EQ(names[0].find("muon"), std::string::npos) << names[0];
  EXPECT_EQ(names[0].find("optimizer.type"), std::string::npos) << names[0];
}

}  // namespace
