// Hostile input through every command that reads JSON or numbers from a user: nesting deep
// enough to overflow the stack, duplicate keys, bytes after a NUL, invalid UTF-8, infinite tau,
// over-long names, negative indices and a config without a task. Each ends with exit status 2
// (1 for a damaged run directory given to analyze) and a message naming what is wrong, never a
// crash (SIGSEGV was exit 139) or a library exception.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cli_support.h"

namespace {

namespace fs = std::filesystem;
using skillrun_test::Result;

using skillrun_test::contains;

const std::string kTiny = std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json";
const std::string kCiTinySweep = std::string(SKILLRUN_SOURCE_DIR) + "/configs/sweeps/ci_tiny.json";
const std::string kValid = R"("task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": 0.1})";

// 58 500 nested arrays (117 KB): what crashed every JSON entry point with SIGSEGV.
std::string deep_value() { return std::string(58500, '[') + std::string(58500, ']'); }

class HostileInput : public skillrun_test::CliTest {
 protected:
  std::string write(const std::string& name, const std::string& contents) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << contents;
    return p.string();
  }

  // What main() must do with bad input: the given status, one "error: " line naming `part`.
  static void expect_error(const Result& r, int status, const std::string& part) {
    EXPECT_EQ(r.status, status) << "stderr: " << r.err;
    EXPECT_TRUE(r.err.starts_with("error: ")) << r.err;
    EXPECT_TRUE(contains(r.err, part));
    EXPECT_FALSE(contains(r.err, "json.exception"));
  }
};

// ---------------------------------------------------------------------------------------------
// deep nesting

TEST_F(HostileInput, DeeplyNestedConfigValueIsRefusedByValidate) {
  const std::string config = write("deep.json", "{" + kValid + R"(, "seed": )" + deep_value() + "}");
  expect_error(skillrun({"validate", config}), 2, "deep.json: nesting too deep (limit: 64");
}

TEST_F(HostileInput, DeeplyNestedConfigValueIsRefusedByRun) {
  const std::string config = write("deep.json", "{" + kValid + R"(, "seed": )" + deep_value() + "}");
  const fs::path out = dir_ / "out";
  expect_error(skillrun({"run", config, "--out", out.string()}), 2, "nesting too deep");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(HostileInput, DeeplyNestedSetValueIsRefusedNamingTheKey) {
  expect_error(skillrun({"validate", kTiny, "--set", "seed=" + deep_value()}), 2,
               "--set seed: nesting too deep (limit: 64");
}

TEST_F(HostileInput, DeeplyNestedSweepAxisValueIsRefused) {
  const std::string sweep =
      write("sweep.json", "{\"base\": {" + kValid + "}, \"axes\": {\"seed\": [1, " + deep_value() + "]}}");
  expect_error(skillrun({"sweep", sweep, "--list"}), 2, "sweep.json: nesting too deep (limit: 64");
}

// A run directory's files are written by skillrun: a bad one is a damaged directory (exit 1,
// like any malformed config.json, docs/ANALYSIS.md), named in the message.
TEST_F(HostileInput, DeeplyNestedConfigJsonOfARunStopsAnalyzeNamingTheFile) {
  const fs::path run = dir_ / "runs" / "r";
  fs::create_directories(run);
  write("runs/r/config.json", "{" + kValid + R"(, "seed": )" + deep_value() + "}");
  write("runs/r/metrics.csv", "step,wall_s,train_loss,mean_loss\n");
  expect_error(skillrun({"analyze", (dir_ / "runs").string()}), 1, "config.json: nesting too deep");
}

// ---------------------------------------------------------------------------------------------
// duplicate keys, trailing bytes, encodings

TEST_F(HostileInput, DuplicateConfigKeyIsAnErrorNamingItsPath) {
  const std::string config =
      write("dup.json", R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": -1, "lr": 0.1}})");
  expect_error(skillrun({"validate", config}), 2, "optimizer.lr: duplicate key");
}

TEST_F(HostileInput, DuplicateKeyInASetObjectValueIsAnErrorNamingItsPath) {
  expect_error(skillrun({"validate", kTiny, "--set", R"(optimizer={"type": "sgd", "lr": -1, "lr": 0.1})"}), 2,
               "optimizer.lr: duplicate key");
}

// Last-one-wins ran seeds 3 and 4 only.
TEST_F(HostileInput, DuplicateSweepAxisIsAnErrorNamingItsPath) {
  const std::string sweep =
      write("sweep.json", "{\"base\": {" + kValid + R"(}, "axes": {"seed": [1, 2], "seed": [3, 4]}})");
  expect_error(skillrun({"sweep", sweep, "--list"}), 2, "axes.seed: duplicate key");
}

TEST_F(HostileInput, BytesAfterANulInAConfigAreAnErrorWithLineAndColumn) {
  const std::string config = write("nul.json", "{" + kValid + "}\n" + std::string(1, '\0') + " garbage");
  expect_error(skillrun({"validate", config}), 2, "nul.json: malformed JSON at line 2, column 1");
}

TEST_F(HostileInput, InvalidUtf8SetValueIsAUsageErrorNamingTheKey) {
  expect_error(skillrun({"validate", kTiny, "--set", "name=\xff"}), 2, "--set name: the value is not valid UTF-8");
}

// ---------------------------------------------------------------------------------------------
// numbers and names

TEST_F(HostileInput, InfiniteTauIsRefusedByAnalyze) {
  expect_error(skillrun({"analyze", dir_.string(), "--tau", "inf"}), 2, "--tau: must be a finite number");
}

TEST_F(HostileInput, TauThatOverflowsToInfinityIsRefusedByAnalyze) {
  expect_error(skillrun({"analyze", dir_.string(), "--tau", "1e400"}), 2, "--tau: must be a finite number");
}

// It used to validate and then fail at `run` with "File name too long".
TEST_F(HostileInput, NameTooLongForARunDirectoryIsRefusedByValidate) {
  expect_error(skillrun({"validate", kTiny, "--set", "name=" + std::string(300, 'a')}), 2,
               "name: must be at most 200 characters");
}

// CLI11's range check printed "0 to 1.797e308".
TEST_F(HostileInput, NegativeSweepIndexNamesTheRealRange) {
  expect_error(skillrun({"sweep", kCiTinySweep, "--list", "--index", "-1"}), 2,
               "--index -1 is out of range: " + kCiTinySweep + " has 4 runs (0..3)");
}

// No key or value of a config or a --set places a run outside runs/ (the default) or --out: keys
// a later --set replaced, hidden and oddly named configs. Every run directory is one safe name.
TEST_F(HostileInput, NoConfigKeyOrValuePlacesARunOutsideRunsOrOut) {
  const fs::path work = dir_ / "w";
  fs::create_directories(work);
  nlohmann::json hidden = nlohmann::json::parse(skillrun_test::slurp(kTiny));
  hidden["name"] = ".hidden";
  const std::string hidden_config = write("hidden.json", hidden.dump());
  // A key nested one level down (a later --set replaces its object), then deeper.
  std::vector<std::vector<std::string>> commands = {
      {"run", hidden_config},
      {"run", kTiny, "--set", R"(train={"/../../../escaped/y": {"x": 1}})", "--set", R"(train={"max_steps": 2})"}};
  const std::vector<std::string> keys = {"/../../../escaped/x", "..",          ".hidden",
                                         "a\nb",                "\x01",        "\xc3\xbc/../\xe2\x80\xae",
                                         std::string(300, 'k'), std::string(300, '/')};
  for (const std::string& key : keys) {
    const nlohmann::json first = {{"type", "adam"}, {"lr", 0.001}, {key, 1}};
    commands.push_back(
        {"run", kTiny, "--set", "optimizer=" + first.dump(), "--set", R"(optimizer={"type":"adam","lr":0.003})"});
  }
  int outs = 0;
  for (std::vector<std::string> args : commands) {
    for (const char* a : {"--set", "train.max_steps=2", "--no-progress", "--log-level", "error"}) args.push_back(a);
    // Appended piece by piece: GCC 12 warns (-Wrestrict, falsely) on "literal" + temporary.
    std::string line = "cd ";
    line.append(skillrun_test::shell_quote(work.string())).append(" && ").append(skillrun_test::shell_quote(SKILLRUN_BIN));
    for (const auto& a : args) line.append(" ").append(skillrun_test::shell_quote(a));
    const Result r = sh(line);
    ASSERT_EQ(r.status, 0) << line << "\n" << r.err;
    const Result o = sh(line + " --out " + skillrun_test::shell_quote("out/" + std::to_string(outs++)));
    ASSERT_EQ(o.status, 0) << line << "\n" << o.err;
  }
  std::vector<std::string> top, in_work;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.is_directory()) top.push_back(e.path().filename().string());
  for (const auto& e : fs::directory_iterator(work)) in_work.push_back(e.path().filename().string());
  std::sort(in_work.begin(), in_work.end());
  EXPECT_EQ(top, std::vector<std::string>{"w"});
  EXPECT_EQ(in_work, (std::vector<std::string>{"out", "runs"}));
  std::size_t runs = 0;
  for (const auto& e : fs::directory_iterator(work / "runs")) {
    const std::string name = e.path().filename().string();
    ++runs;
    EXPECT_TRUE(fs::exists(e.path() / "summary.json")) << name;
    EXPECT_NE(name.front(), '.') << name;
    EXPECT_LE(name.size(), 255u);
    EXPECT_TRUE(std::all_of(name.begin(), name.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || std::string_view("._+-,=~").find(ch) != std::string_view::npos;
    })) << name;
  }
  EXPECT_EQ(runs, commands.size());
  for (int i = 0; i < outs; ++i) EXPECT_TRUE(fs::exists(work / "out" / std::to_string(i) / "summary.json")) << i;
}

TEST_F(HostileInput, ConfigWithoutTaskIsRefused) {
  const std::string config = write("no_task.json", R"({"optimizer": {"type": "sgd", "lr": 0.1}})");
  expect_error(skillrun({"validate", config}), 2, "task: required");
}

}  // namespace
