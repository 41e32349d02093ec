// Nothing lost when two processes meet in one run directory, when a run directory holds foreign
// or damaged files, or when a run fails: the real executable on configs/ci/tiny.json, checked
// against an uninterrupted run of the same config (metrics.csv equal bit for bit, wall_s aside).
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace {
namespace fs = std::filesystem;
using skillrun_test::slurp;

const std::string kTiny = std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json";
// Long enough (a few seconds) for a second process to arrive while the first trains.
const std::vector<std::string> kLong = {"--no-progress",
                                        "--log-level",
                                        "warn",
                                        "--set",
                                        "train.stop_when_learned=false",
                                        "--set",
                                        "train.max_steps=3000",
                                        "--set",
                                        "train.checkpoint_every=50"};

using skillrun_test::deterministic_rows;
using skillrun_test::wait_exit;

// Starts `skillrun run tiny.json --out OUT kLong extra...`, its stderr in `log`.
pid_t spawn(const fs::path& out, const std::vector<std::string>& extra, const fs::path& log) {
  std::vector<std::string> args = {"run", kTiny, "--out", out.string()};
  args.insert(args.end(), kLong.begin(), kLong.end());
  args.insert(args.end(), extra.begin(), extra.end());
  return skillrun_test::spawn_skillrun(args, log);
}

nlohmann::json json_of(const fs::path& file) { return nlohmann::json::parse(slurp(file)); }

// Waits until the run in `out` has written its step-0 row and one more (it is training).
void wait_until_training(const fs::path& out) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::ranges::count(slurp(out / "metrics.csv"), '\n') < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

class RunSafety : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::setenv("OMP_NUM_THREADS", "1", 1);
    root_ = fs::temp_directory_path() / ("skillrun_run_safety_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    ASSERT_EQ(wait_exit(spawn(root_ / "whole", {}, root_ / "whole.log")), 0);
    reference_ = deterministic_rows(root_ / "whole" / "metrics.csv");
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  void SetUp() override { ASSERT_EQ(reference_.size(), 1u + 1u + 3000u / 25u) << "reference run failed"; }

  // A copy of the finished reference run that looks killed hard: summary says running.
  fs::path killed_copy(const std::string& name) {
    const fs::path dir = root_ / name;
    fs::remove_all(dir);
    fs::copy(root_ / "whole", dir, fs::copy_options::recursive);
    fs::remove(dir / "run.lock");
    nlohmann::json summary = json_of(dir / "summary.json");
    summary["status"] = "running";
    std::ofstream(dir / "summary.json") << summary.dump(2);
    return dir;
  }

  static inline fs::path root_;
  static inline std::vector<std::string> reference_;
};

TEST_F(RunSafety, ResumeWhileTheRunIsLiveIsRefusedAndLosesNothing) {
  const fs::path out = root_ / "live";
  const pid_t first = spawn(out, {}, root_ / "live-1.log");
  wait_until_training(out);
  const int second = wait_exit(spawn(out, {"--resume"}, root_ / "live-2.log"));
  if (second == 0 && slurp(root_ / "live-2.log").empty()) {
    wait_exit(first);
    GTEST_SKIP() << "the first run finished before the second arrived";
  }
  EXPECT_EQ(second, 2);
  EXPECT_NE(slurp(root_ / "live-2.log").find("another skillrun process"), std::string::npos)
      << slurp(root_ / "live-2.log");
  ASSERT_EQ(wait_exit(first), 0) << slurp(root_ / "live-1.log");
  EXPECT_EQ(deterministic_rows(out / "metrics.csv"), reference_);
  EXPECT_EQ(json_of(out / "summary.json")["status"], "max_steps");
}

TEST_F(RunSafety, TwoFreshRunsIntoOneDirectoryAtOnceLeaveOneWholeRun) {
  const fs::path out = root_ / "twin";
  const pid_t a = spawn(out, {}, root_ / "twin-a.log");
  const pid_t b = spawn(out, {"--set", "seed=2"}, root_ / "twin-b.log");
  const int code_a = wait_exit(a), code_b = wait_exit(b);
  // Exactly one of them ran; the other was refused before it wrote anything.
  ASSERT_EQ(std::min(code_a, code_b), 0) << slurp(root_ / "twin-a.log") << slurp(root_ / "twin-b.log");
  ASSERT_EQ(std::max(code_a, code_b), 2) << slurp(root_ / "twin-a.log") << slurp(root_ / "twin-b.log");
  const int winner_seed = code_a == 0 ? 1 : 2;
  EXPECT_EQ(json_of(out / "config.json")["seed"], winner_seed);
  EXPECT_EQ(deterministic_rows(out / "metrics.csv").size(), reference_.size());
  if (winner_seed == 1) {
    EXPECT_EQ(deterministic_rows(out / "metrics.csv"), reference_);
  }
}

TEST_F(RunSafety, CheckpointOfAnotherSeedIsRefusedForTheRunsOwn) {
  // The other seed's run, stopped early so it has checkpoints of the same steps.
  const fs::path other = root_ / "seed2";
  ASSERT_EQ(wait_exit(spawn(other, {"--set", "seed=2"}, root_ / "seed2.log")), 0);
  const fs::path dir = killed_copy("foreign-ckpt");
  const fs::path newest = dir / "checkpoint" / "ckpt-0000002950.bin";
  ASSERT_TRUE(fs::exists(newest));
  fs::copy_file(other / "checkpoint" / "ckpt-0000002950.bin", newest, fs::copy_options::overwrite_existing);
  ASSERT_EQ(wait_exit(spawn(dir, {"--resume"}, root_ / "foreign-ckpt.log")), 0) << slurp(root_ / "foreign-ckpt.log");
  EXPECT_NE(slurp(root_ / "foreign-ckpt.log").find("belongs to another run"), std::string::npos)
      << slurp(root_ / "foreign-ckpt.log");
  EXPECT_EQ(deterministic_rows(dir / "metrics.csv"), reference_);  // continued from its own step 2900
}

TEST_F(RunSafety, MalformedMetricsRowIsNamedAndTheRunResumesFromTheRowsBeforeIt) {
  const fs::path dir = killed_copy("malformed");
  std::vector<std::string> lines;
  std::istringstream in(slurp(dir / "metrics.csv"));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  lines[60] = "1475,garbage";  // line 61 of the file
  std::ofstream out(dir / "metrics.csv");
  for (const auto& line : lines) out << line << "\n";
  out.close();
  ASSERT_EQ(wait_exit(spawn(dir, {"--resume"}, root_ / "malformed.log")), 0) << slurp(root_ / "malformed.log");
  EXPECT_NE(slurp(root_ / "malformed.log").find("metrics.csv:61: malformed row"), std::string::npos)
      << slurp(root_ / "malformed.log");
  EXPECT_EQ(deterministic_rows(dir / "metrics.csv"), reference_);
}

TEST_F(RunSafety, DeletedMetricsIsWarnedAndComputedAgainFromTheStart) {
  const fs::path dir = killed_copy("no-metrics");
  fs::remove(dir / "metrics.csv");
  ASSERT_EQ(wait_exit(spawn(dir, {"--resume"}, root_ / "no-metrics.log")), 0) << slurp(root_ / "no-metrics.log");
  EXPECT_NE(slurp(root_ / "no-metrics.log").find("metrics.csv is missing"), std::string::npos)
      << slurp(root_ / "no-metrics.log");
  EXPECT_EQ(deterministic_rows(dir / "metrics.csv"), reference_);  // not a tail starting at step 2950
}

TEST_F(RunSafety, DirectoryOfTheUsersOwnFilesIsRefusedAndKept) {
  const fs::path dir = root_ / "mine";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << "{\"my\": \"own file\"}\n";
  std::ofstream(dir / "notes.txt") << "notes\n";
  EXPECT_EQ(wait_exit(spawn(dir, {}, root_ / "mine.log")), 2);
  EXPECT_EQ(slurp(dir / "config.json"), "{\"my\": \"own file\"}\n");
  fs::remove(dir / "config.json");
  EXPECT_EQ(wait_exit(spawn(dir, {}, root_ / "mine2.log")), 2);
  EXPECT_NE(slurp(root_ / "mine2.log").find("holds no run"), std::string::npos) << slurp(root_ / "mine2.log");
  EXPECT_EQ(slurp(dir / "notes.txt"), "notes\n");
  EXPECT_FALSE(fs::exists(dir / "metrics.csv"));
}

TEST_F(RunSafety, FailedRunIsRecordedAsFailedInSummaryAndLog) {
  // A file where the checkpoint directory belongs: the first checkpoint cannot be written.
  const fs::path dir = root_ / "fails";
  fs::create_directories(dir);
  std::ofstream(dir / "checkpoint") << "in the way\n";
  EXPECT_EQ(wait_exit(spawn(dir, {"--resume"}, root_ / "fails.log")), 1);
  const nlohmann::json summary = json_of(dir / "summary.json");
  EXPECT_EQ(summary["status"], "failed");
  EXPECT_EQ(summary["steps"], 50);  // where the first checkpoint was due, not the 0 of the start
  EXPECT_NE(summary["message"].get<std::string>().find("checkpoint"), std::string::npos) << summary.dump();
  EXPECT_NE(slurp(dir / "run.log").find("run failed"), std::string::npos) << slurp(dir / "run.log");
  for (const auto& entry : fs::directory_iterator(dir)) EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
}

// ---------------------------------------------------------------------------------------------
// A run directory deleted (or replaced) while its run trains: the run stops at its next write
// with an error naming the directory, exit 1, and creates nothing; a sweep reports it failed.

// rm -rf of `dir`, again if a write the run had in flight put a file back meanwhile.
void remove_while_written(const fs::path& dir) {
  std::error_code ec;
  for (int i = 0; i < 1000 && fs::exists(dir, ec); ++i) fs::remove_all(dir, ec);
  ASSERT_FALSE(fs::exists(dir)) << ec.message();
}

bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

class VanishedRunDirectory : public skillrun_test::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ::setenv("OMP_NUM_THREADS", "1", 1);
  }
  // tiny.json as kLong trains it (3000 steps, a checkpoint every 50), with this seed.
  nlohmann::json long_tiny(int seed) {
    nlohmann::json config = json_of(kTiny);
    config["seed"] = seed;
    config["train"]["stop_when_learned"] = false;
    config["train"]["max_steps"] = 3000;
    config["train"]["checkpoint_every"] = 50;
    return config;
  }
};

TEST_F(VanishedRunDirectory, RunStopsWithAnErrorAndRecreatesNothing) {
  const fs::path out = dir_ / "run", err = dir_ / "run.err";
  const pid_t pid = spawn(out, {}, err);
  wait_until_training(out);
  remove_while_written(out);
  EXPECT_EQ(wait_exit(pid), 1) << slurp(err);
  EXPECT_TRUE(contains(slurp(err), out.string() + " was deleted, moved or replaced while the run trained"))
      << slurp(err);
  EXPECT_FALSE(fs::exists(out));  // not a checkpoint/ and a summary.json saying max_steps
}

TEST_F(VanishedRunDirectory, DirectoryMadeAgainAtItsPathIsNotWrittenInto) {
  const fs::path out = dir_ / "run", err = dir_ / "run.err";
  const pid_t pid = spawn(out, {}, err);
  wait_until_training(out);
  remove_while_written(out);
  fs::create_directories(out);  // someone else's, now
  EXPECT_EQ(wait_exit(pid), 1) << slurp(err);
  EXPECT_TRUE(contains(slurp(err), out.string() + " was deleted, moved or replaced while the run trained"))
      << slurp(err);
  EXPECT_TRUE(fs::is_empty(out));
}

TEST_F(VanishedRunDirectory, IclRunStopsAtItsNextEvalToo) {
  const fs::path out = dir_ / "icl", err = dir_ / "icl.err";
  const pid_t pid = skillrun_test::spawn_skillrun(
      {"run", std::string(SKILLRUN_SOURCE_DIR) + "/configs/paper/fig5_gd.json", "--out", out.string(), "--no-progress",
       "--set", "task.d=8", "--set", "eval.modes=[1,8]", "--set", "eval.every=5", "--set",
       "train.stop_when_learned=false", "--set", "train.max_steps=500000"},
      err);
  wait_until_training(out);
  remove_while_written(out);
  EXPECT_EQ(wait_exit(pid), 1) << slurp(err);
  EXPECT_TRUE(contains(slurp(err), out.string() + " was deleted, moved or replaced while the run trained"))
      << slurp(err);
  EXPECT_FALSE(fs::exists(out));
}

// In a pack, the run whose directory vanished fails alone and is not recreated; the pack trains
// the other to its end, every row written, and exits 1 for the failed run.
TEST_F(VanishedRunDirectory, PackRunFailsAloneAndTheOtherTrainsOn) {
  const fs::path a = dir_ / "a", b = dir_ / "b", err = dir_ / "pack.err";
  for (const auto& [d, seed] : {std::pair{a, 1}, std::pair{b, 2}}) {
    fs::create_directories(d);
    std::ofstream(d / "config.json") << long_tiny(seed).dump(2);
  }
  const pid_t pid = skillrun_test::spawn_skillrun({"pack", a.string(), b.string(), "--no-progress"}, err);
  wait_until_training(a);
  remove_while_written(a);
  EXPECT_EQ(wait_exit(pid), 1) << slurp(err);
  EXPECT_TRUE(contains(slurp(err), a.string() + " was deleted, moved or replaced while the run trained")) << slurp(err);
  EXPECT_FALSE(fs::exists(a));
  EXPECT_EQ(json_of(b / "summary.json")["status"], "max_steps") << slurp(b / "summary.json");
  EXPECT_EQ(deterministic_rows(b / "metrics.csv").size(), 1u + 1u + 3000u / 25u);
}

// The sweep reports the run FAILED (exit 1), not done, and leaves it a directory holding only
// failed.json, so that `status` shows it failed and --retry-failed runs it again.
TEST_F(VanishedRunDirectory, SweepReportsTheRunFailed) {
  const fs::path out = dir_ / "sweep", err = dir_ / "sweep.err";
  const pid_t pid = skillrun_test::spawn_skillrun(
      {"sweep", "--base", kTiny, "--axis", "seed=1", "--set", "train.stop_when_learned=false", "--set",
       "train.max_steps=3000", "--set", "train.checkpoint_every=50", "--pack", "off", "--out", out.string()},
      err);
  fs::path run;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (run.empty() && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    for (auto it = fs::directory_iterator(out, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      if (it->path().filename().string().starts_with("seed=")) run = it->path();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(run.empty()) << slurp(err);
  wait_until_training(run);
  remove_while_written(run);
  EXPECT_EQ(wait_exit(pid), 1) << slurp(err);
  ASSERT_TRUE(fs::exists(run / "failed.json")) << slurp(err);
  EXPECT_EQ(std::distance(fs::directory_iterator(run), fs::directory_iterator()), 1);  // nothing else came back
  const skillrun_test::Result status = skillrun({"status", out.string()});
  EXPECT_TRUE(contains(status.out, "failed")) << status.out << status.err;
  EXPECT_TRUE(contains(slurp(run / "failed.json"), "was deleted while the run trained")) << slurp(run / "failed.json");
}

}  // namespace
