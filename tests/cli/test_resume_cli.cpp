// Killed and signalled runs of the real executable, resumed with --resume: metrics.csv must
// equal an uninterrupted run's (bit for bit, wall_s aside). Signals arrive at random times.
#include "cli_support.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {
namespace fs = std::filesystem;

const std::vector<std::string> kArgs = {"--no-progress", "--log-level", "warn", "--set", "train.stop_when_learned=false",
                                        "--set", "train.max_steps=3000", "--set", "train.checkpoint_every=7"};

pid_t spawn(const fs::path& out, bool resume) {
  std::vector<std::string> args = {"run", std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", "--out",
                                   out.string()};
  args.insert(args.end(), kArgs.begin(), kArgs.end());
  if (resume) args.push_back("--resume");
  return skillrun_test::spawn_skillrun(args);
}

using skillrun_test::deterministic_rows;
using skillrun_test::slurp;
using skillrun_test::wait_exit;

class Resume : public ::testing::Test {
 protected:
  // One uninterrupted reference run for the whole suite.
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("skillrun_resume_cli_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    ASSERT_EQ(wait_exit(spawn(root_ / "whole", false)), 0);
    reference_ = deterministic_rows(root_ / "whole" / "metrics.csv");
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  void SetUp() override { ASSERT_EQ(reference_.size(), 1u + 1u + 3000u / 25u) << "reference run failed"; }

  // Starts a run, waits until it is training (its step-0 row is on disk, so start-up time does
  // not matter), delivers `sig` after a further random 0..400 ms, returns the exit code.
  int run_and_signal(const fs::path& out, int sig, unsigned seed) {
    std::mt19937 rng(seed);
    const pid_t pid = spawn(out, false);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::ranges::count(slurp(out / "metrics.csv"), '\n') < 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
    kill(pid, sig);
    return wait_exit(pid);
  }

  static inline fs::path root_;
  static inline std::vector<std::string> reference_;
};

TEST_F(Resume, KillNineThenResumeGivesIdenticalMetrics) {
  const unsigned seed = static_cast<unsigned>(std::random_device{}());
  const int code = run_and_signal(root_ / "killed", SIGKILL, seed);
  if (code == 0) GTEST_SKIP() << "the run finished before the kill (seed " << seed << ")";
  ASSERT_EQ(code, 128 + SIGKILL);
  EXPECT_NE(slurp(root_ / "killed" / "summary.json").find("\"running\""), std::string::npos);
  ASSERT_EQ(wait_exit(spawn(root_ / "killed", true)), 0);
  EXPECT_EQ(deterministic_rows(root_ / "killed" / "metrics.csv"), reference_) << "kill seed " << seed;
  EXPECT_NE(slurp(root_ / "killed" / "summary.json").find("\"max_steps\""), std::string::npos);
}

TEST_F(Resume, SigtermExitsThreeWithACheckpointAndResumesIdentically) {
  const unsigned seed = static_cast<unsigned>(std::random_device{}());
  const int code = run_and_signal(root_ / "term", SIGTERM, seed);
  if (code == 0) GTEST_SKIP() << "the run finished before the signal (seed " << seed << ")";
  ASSERT_EQ(code, 3);
  EXPECT_NE(slurp(root_ / "term" / "summary.json").find("\"interrupted\""), std::string::npos);
  EXPECT_FALSE(fs::is_empty(root_ / "term" / "checkpoint"));
  ASSERT_EQ(wait_exit(spawn(root_ / "term", true)), 0);
  EXPECT_EQ(deterministic_rows(root_ / "term" / "metrics.csv"), reference_) << "signal seed " << seed;
}

TEST_F(Resume, FinishedRunIsLeftUntouched) {
  const auto before = fs::last_write_time(root_ / "whole" / "metrics.csv");
  ASSERT_EQ(wait_exit(spawn(root_ / "whole", true)), 0);
  EXPECT_EQ(fs::last_write_time(root_ / "whole" / "metrics.csv"), before);
}

TEST_F(Resume, WithoutResumeAnExistingRunIsRefused) {
  EXPECT_EQ(wait_exit(spawn(root_ / "whole", false)), 2);
  EXPECT_EQ(deterministic_rows(root_ / "whole" / "metrics.csv"), reference_);
}

TEST_F(Resume, DifferentConfigIsRefusedNamingTheKey) {
  const std::string cmd = std::string(SKILLRUN_BIN) + " run " + SKILLRUN_SOURCE_DIR + "/configs/ci/tiny.json --out " +
                          (root_ / "whole").string() + " --resume --set train.max_steps=3000 --set seed=5 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  const int status = pclose(pipe);
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_NE(out.find("seed"), std::string::npos) << out;
  EXPECT_NE(out.find((root_ / "whole").string()), std::string::npos) << out;
  EXPECT_EQ(deterministic_rows(root_ / "whole" / "metrics.csv"), reference_);
}

}  // namespace
