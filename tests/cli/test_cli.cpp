// The skillrun executable as a user meets it: config mistakes end with exit status 2 and one
// `error: <path>: <reason>` line on stderr (never a stack trace or "terminate called"), before
// anything is created on disk; a good config validates to its resolved JSON on stdout.
// Each test writes its configs into its own temp directory and runs SKILLRUN_BIN through sh.
#include "cli_support.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using skillrun_test::Result;
using skillrun_test::slurp;

using skillrun_test::contains;

class Cli : public skillrun_test::CliTest {
 protected:
  std::string write_config(const std::string& contents, const std::string& name = "config.json") {
    const fs::path p = dir_ / name;
    std::ofstream(p) << contents;
    return p.string();
  }

  Result run(std::initializer_list<std::string> args) { return skillrun(std::vector<std::string>(args)); }

  // `skillrun run configs/ci/tiny.json ARGS` from the working directory `cwd` (ARGS as sh reads them).
  Result run_tiny_in(const fs::path& cwd, const std::string& args) {
    return sh("cd " + skillrun_test::shell_quote(cwd.string()) + " && " + skillrun_test::shell_quote(SKILLRUN_BIN) +
              " run " + skillrun_test::shell_quote(std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json") + " " +
              args + " --no-progress --log-level warn");
  }

  // A config error as main() must report it: status 2, the message on stderr, no crash text.
  static void expect_config_error(const Result& r, const std::string& part) {
    EXPECT_EQ(r.status, 2) << "stderr: " << r.err;
    EXPECT_TRUE(r.err.starts_with("error: ")) << r.err;
    EXPECT_TRUE(contains(r.err, part));
    EXPECT_FALSE(contains(r.err, "terminate called"));
  }

};

const char* const kGoodConfig = R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": 0.1}})";

TEST_F(Cli, ValidateOfGoodConfigPrintsResolvedJsonWithDefaults) {
  const Result r = run({"validate", write_config(kGoodConfig)});
  ASSERT_EQ(r.status, 0) << "stderr: " << r.err;
  const auto j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON: " << r.out;
  EXPECT_EQ(j["eval"]["every"], 50);
  EXPECT_EQ(j["task"]["n_bits"], 100);
  EXPECT_EQ(j["optimizer"]["momentum"], 0.0);
}

TEST_F(Cli, ValidateAppliesSetOverrides) {
  const Result r = run({"validate", write_config(kGoodConfig), "--set", "model.width=64"});
  ASSERT_EQ(r.status, 0) << "stderr: " << r.err;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON: " << r.out;
  EXPECT_EQ(j["model"]["width"], 64);
}

TEST_F(Cli, SetMayComeBeforeTheConfigAndRepeat) {
  const Result r = run({"validate", "--set", "model.width=64", write_config(kGoodConfig), "--set", "model.depth=3"});
  ASSERT_EQ(r.status, 0) << "stderr: " << r.err;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "stdout is not JSON: " << r.out;
  EXPECT_EQ(j["model"]["width"], 64);
  EXPECT_EQ(j["model"]["depth"], 3);
}

TEST_F(Cli, UnknownKeyExitsTwoNamingItsPath) {
  const auto config = write_config(
      R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": 0.1}, "model": {"widht": 100}})");
  expect_config_error(run({"validate", config}), "model.widht");
}

TEST_F(Cli, MistypedCommandIsNamedWithTheNearestCommand) {
  const auto r = run({"analyse", "runs"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown command \"analyse\": did you mean \"analyze\"?"), std::string::npos) << r.err;
}

TEST_F(Cli, NegativeLrExitsTwoNamingOptimizerLr) {
  const auto config = write_config(R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": -1}})");
  expect_config_error(run({"validate", config}), "optimizer.lr");
}

// Line 3 is `  "lr": 0.1,,`: two spaces, "lr" (cols 3-6), ':' 7, ' ' 8, 0.1 (9-11), ',' 12,
// and the second ',' at column 13 is where the parser stops.
TEST_F(Cli, MalformedJsonExitsTwoWithLineAndColumn) {
  const auto config = write_config(
      "{\"optimizer\": {\n"
      "  \"type\": \"sgd\",\n"
      "  \"lr\": 0.1,,\n"
      "}}\n");
  expect_config_error(run({"validate", config}), "line 3, column 13");
}

TEST_F(Cli, KAboveNBitsExitsTwoNamingTaskK) {
  const auto config = write_config(
      R"({"optimizer": {"type": "sgd", "lr": 0.1}, "task": {"type": "sparse_parity", "n_bits": 10, "k": 11}})");
  expect_config_error(run({"validate", config}), "task.k");
}

TEST_F(Cli, BadSetOverrideExitsTwoNamingItsPath) {
  const Result r = run({"validate", write_config(kGoodConfig), "--set", "optimizer.lr=-1"});
  expect_config_error(r, "optimizer.lr");
}

// device and precision, from the config, --set or --device, are read by the one parser: a bad
// value exits 2 naming the key and listing the spellings; a good one is written back as given.
TEST_F(Cli, BadDeviceOrPrecisionExitsTwoNamingTheKey) {
  const std::string config = write_config(kGoodConfig);
  expect_config_error(run({"validate", config, "--device", "gpu"}),
                      "error: device: unknown device \"gpu\" (expected one of: auto, cpu, cuda)");
  expect_config_error(run({"validate", config, "--set", "precision=fp16"}),
                      "error: precision: unknown precision \"fp16\" (expected one of: fp32, tf32, bf16, fp64)");
  expect_config_error(run({"run", write_config(R"({"task": {"type": "sparse_parity"}, "device": "GPU",
                                                   "optimizer": {"type": "sgd", "lr": 0.1}})"),
                           "--out", (dir_ / "never").string()}),
                      "error: device: unknown device \"GPU\"");
  EXPECT_FALSE(fs::exists(dir_ / "never"));
  const Result good = run({"validate", config, "--device", "cpu", "--set", "precision=bf16"});
  ASSERT_EQ(good.status, 0) << good.err;
  const auto j = nlohmann::json::parse(good.out);
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["precision"], "bf16");
}

TEST_F(Cli, MissingConfigFileExitsTwo) {
  const Result r = run({"validate", (dir_ / "does_not_exist.json").string()});
  EXPECT_EQ(r.status, 2) << "stderr: " << r.err;
  EXPECT_TRUE(contains(r.err, "does_not_exist.json"));
  EXPECT_FALSE(contains(r.err, "terminate called"));
}

TEST_F(Cli, RunWithBadConfigExitsTwoAndCreatesNoOutputDirectory) {
  const auto config = write_config(R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": -1}})");
  const fs::path out = dir_ / "run_out";
  expect_config_error(run({"run", config, "--out", out.string()}), "optimizer.lr");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Cli, UnknownSubcommandExitsTwo) { EXPECT_EQ(run({"frobnicate"}).status, 2); }

TEST_F(Cli, ValidateWithoutConfigExitsTwo) { EXPECT_EQ(run({"validate"}).status, 2); }

}  // namespace

namespace {
// Whether process `pid` has a handler installed for `sig` (SigCgt in /proc/PID/status).
bool catches(pid_t pid, int sig) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("SigCgt:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> (sig - 1)) & 1u;
  return false;
}
}  // namespace

// A command without handlers of its own (bench here; run and pack checkpoint instead) stopped by
// Ctrl-C says so and exits 130, not silently.
TEST_F(Cli, SigintBeforeAnyHandlerOfTheCommandSaysSoAndExits130) {
  const fs::path err = dir_ / "bench.err";
  const pid_t pid = skillrun_test::spawn_skillrun(
      {"bench", std::string(SKILLRUN_SOURCE_DIR) + "/configs/paper/fig2_muon.json", "--device", "cpu", "--steps",
       "100000", "--warmup", "0"},
      err);
  for (int i = 0; i < 2000 && !catches(pid, SIGINT); ++i) ::usleep(1000);
  ASSERT_TRUE(catches(pid, SIGINT)) << "skillrun installs no SIGINT handler at start-up";
  ::kill(pid, SIGINT);
  EXPECT_EQ(skillrun_test::wait_exit(pid), 130);
  EXPECT_NE(slurp(err).find("skillrun: interrupted by SIGINT"), std::string::npos) << slurp(err);
}

// `--set optimizer.type=nmd` on a Muon config keeps Muon's msign: the error says to replace the block.
TEST_F(Cli, SettingOnlyTheOptimizerTypeSaysHowToReplaceTheBlock) {
  const Result r = skillrun({"validate", std::string(SKILLRUN_SOURCE_DIR) + "/configs/quickstart.json", "--set",
                             "optimizer.type=nmd"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("optimizer.msign: only valid when optimizer.type is muon"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("replace the whole block instead: --set 'optimizer={\"type\": \"nmd\""), std::string::npos)
      << r.err;
}

// The names in a directory, sorted.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Without --out, what --set changed is in the run directory's name, after the config's name.
TEST_F(Cli, DefaultRunDirectoryNamesWhatSetChanged) {
  const Result r = run_tiny_in(dir_, "--set 'optimizer={\"type\":\"adam\",\"lr\":0.001}' --set train.max_steps=5");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<std::string> names = entries(dir_ / "runs");
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0].rfind("ci-tiny,optimizer.lr=0.001,optimizer.type=adam,train.max_steps=5-", 0), 0u) << names[0];
}

// The label is what --set changed in the resolved config: a key set to the value the file already
// has is not in it.
TEST_F(Cli, DefaultRunDirectoryNamesOnlyWhatSetChanged) {
  const Result r = run_tiny_in(
      dir_, "--set eval.every=25 --set train.max_steps=5 --set 'optimizer={\"type\":\"muon\",\"lr\":0.02}'");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<std::string> names = entries(dir_ / "runs");
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0].rfind("ci-tiny,train.max_steps=5-", 0), 0u) << names[0];
}

// A key that a later --set replaced (issue 21, item 8: it named the directory, and with "/.." in
// it placed the run outside runs/) is no part of the name; with --out, the run goes there alone.
TEST_F(Cli, NoKeyASetWroteAndAnotherReplacedPlacesTheRunOutsideRuns) {
  const fs::path work = dir_ / "w";
  fs::create_directories(work);
  const std::string sets =
      "--set 'optimizer={\"type\":\"adam\",\"lr\":0.001,\"/../../../escaped/x\":1}'"
      " --set 'optimizer={\"type\":\"adam\",\"lr\":0.003}' --set train.max_steps=5";
  Result r = run_tiny_in(work, sets);
  ASSERT_EQ(r.status, 0) << r.err;
  r = run_tiny_in(work, sets + " --out o");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(entries(dir_), (std::vector<std::string>{"stderr.txt", "stdout.txt", "w"}));  // no dir_/escaped
  EXPECT_EQ(entries(work), (std::vector<std::string>{"o", "runs"}));
  const std::vector<std::string> runs = entries(work / "runs");
  ASSERT_EQ(runs.size(), 1u);  // no stray runs/ci-tiny,optimizer./
  EXPECT_EQ(runs[0].rfind("ci-tiny,optimizer.lr=0.003,optimizer.type=adam,train.max_steps=5-", 0), 0u) << runs[0];
  EXPECT_TRUE(fs::exists(work / "runs" / runs[0] / "summary.json"));
  EXPECT_TRUE(fs::exists(work / "o" / "summary.json"));
}

// A --set that itself wrote the key in error gets no hint about replacing the block.
TEST_F(Cli, TypeHintOnlyForKeysTheConfigFileHad) {
  const Result r = skillrun({"validate", std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", "--set",
                             "optimizer.type=adam", "--set", "optimizer.lrr=1"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("optimizer.lrr"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("replace the whole block"), std::string::npos) << r.err;
}

