// Packed sweeps as a user meets them (issue 21): every run of a pack reported truly, whatever
// its neighbours do; an error of one run fails that run only; runs that cannot pack run alone
// and are counted so; each run's log holds its own lines; the open-file limit checked up front.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace {

namespace fs = std::filesystem;
using skillrun_test::Result;
using skillrun_test::shell_quote;
using skillrun_test::slurp;

const std::string kTiny = std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json";

class PackCli : public skillrun_test::CliTest {
 protected:
  void SetUp() override {
    ::setenv("OMP_NUM_THREADS", "1", 1);  // one thread per process on a shared 2-core machine
    CliTest::SetUp();
  }

  // `skillrun sweep --base tiny.json --set ... --axis ... --out OUT ARGS`
  Result multirun(const fs::path& out, const std::vector<std::string>& sets, const std::vector<std::string>& axes,
                  std::vector<std::string> args) {
    std::vector<std::string> all = {"sweep", "--base", kTiny, "--out", out.string()};
    for (const auto& s : sets) all.insert(all.end(), {"--set", s});
    for (const auto& a : axes) all.insert(all.end(), {"--axis", a});
    all.insert(all.end(), args.begin(), args.end());
    return skillrun(all);
  }

  // The run directories of a sweep's output (those that hold a config).
  static std::vector<fs::path> runs_in(const fs::path& out) {
    std::vector<fs::path> runs;
    for (const auto& e : fs::directory_iterator(out))
      if (fs::exists(e.path() / "config.json")) runs.push_back(e.path());
    std::sort(runs.begin(), runs.end());
    return runs;
  }

  static nlohmann::json summary(const fs::path& run) { return nlohmann::json::parse(slurp(run / "summary.json")); }

  // Seeds 1-3 of tiny (60 steps) in one pack (out/seed=N), after `file` of seed=2's directory was
  // made a directory so that run's own error stops it: the sweep exits 1, and the other two
  // reach max_steps with no failed marker. Returns the sweep's result.
  Result pack_with_seed_2_broken(const std::string& file);
};

// (defined outside the class: gtest's ASSERT_* need a void function, so they go through a helper)
void expect_others_trained(const fs::path& out, const Result& r) {
  for (const char* name : {"seed=1", "seed=3"}) {
    ASSERT_TRUE(fs::exists(out / name / "summary.json")) << name << "\n" << r.out;
    EXPECT_EQ(nlohmann::json::parse(slurp(out / name / "summary.json"))["status"], "max_steps") << name;
    EXPECT_FALSE(fs::exists(out / name / "failed.json")) << name;
  }
}

Result PackCli::pack_with_seed_2_broken(const std::string& file) {
  const std::vector<std::string> sets = {"train.max_steps=60"};
  const std::vector<std::string> axes = {"seed=1,2,3"};
  EXPECT_EQ(multirun(dir_ / "out", sets, axes, {"--list"}).status, 0);
  fs::create_directories(dir_ / "out" / "seed=2" / file);
  const Result r = multirun(dir_ / "out", sets, axes, {"--pack", "3"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  expect_others_trained(dir_ / "out", r);
  return r;
}

using skillrun_test::contains;

// The issue's sweep: lr outer and seed inner, so a pack's slots (grouped by seed) differ from
// its runs' order, and the lr 1e30 runs diverge at the first eval. Packed, every run ends with
// the status, steps, message and metrics (wall_s aside) it has in its own process.
TEST_F(PackCli, DivergingNeighboursWithInterleavedSeedsChangeNoRunsResult) {
  const std::vector<std::string> sets = {R"(optimizer={"type":"adam","lr":0.001})"};
  const std::vector<std::string> axes = {"optimizer.lr=0.003,1e30", "seed=1,2,3"};
  const Result packed = multirun(dir_ / "packed", sets, axes, {"--pack", "6"});
  EXPECT_EQ(packed.status, 0) << packed.out << packed.err;
  const Result alone = multirun(dir_ / "alone", sets, axes, {"--pack", "off"});
  EXPECT_EQ(alone.status, 0) << alone.out << alone.err;
  const std::vector<fs::path> runs = runs_in(dir_ / "alone");
  ASSERT_EQ(runs.size(), 6u);
  int diverged = 0;
  for (const fs::path& run : runs) {
    SCOPED_TRACE(run.filename().string());
    const fs::path twin = dir_ / "packed" / run.filename();
    const nlohmann::json a = summary(run), b = summary(twin);
    for (const char* key : {"status", "steps", "message", "T_k"}) EXPECT_EQ(a[key], b[key]) << key;
    EXPECT_EQ(skillrun_test::deterministic_rows(run / "metrics.csv"),
              skillrun_test::deterministic_rows(twin / "metrics.csv"));
    diverged += a["status"] == "diverged";
  }
  EXPECT_EQ(diverged, 3);  // lr 1e30 diverges, lr 0.003 converges: both kinds are in the pack
}

// A run whose directory cannot be resumed (here its metrics.csv is a directory) fails alone:
// the other runs of its pack train to their result, only it gets a failed marker, and the
// sweep's table says so.
TEST_F(PackCli, OneBrokenRunFailsAloneAndThePackTrainsTheRest) {
  const fs::path broken = dir_ / "out" / "seed=2";
  const Result r = pack_with_seed_2_broken("metrics.csv");
  EXPECT_EQ(summary(broken)["status"], "failed");
  EXPECT_TRUE(contains(summary(broken)["message"].get<std::string>(), "metrics.csv"));
  EXPECT_TRUE(contains(r.out, "3 runs in 1 pack: 2 done, 1 failed")) << r.out;
}

// The sweep's FAILED line and its table (what --list and `status` read) give a run that failed alone in its pack its
// own error (from its summary.json), not the last line of the pack's output (another run's row
// of the pack's table).
TEST_F(PackCli, ARunThatFailedAloneIsReportedWithItsOwnError) {
  const std::vector<std::string> sets = {"train.max_steps=60"};
  const std::vector<std::string> axes = {"seed=1,2,3"};
  ASSERT_EQ(multirun(dir_ / "out", sets, axes, {"--list"}).status, 0);
  fs::create_directories(dir_ / "out" / "seed=2" / "metrics.csv");
  const Result r = multirun(dir_ / "out", sets, axes, {"--pack", "3"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  const auto line_of = [](const std::string& text, const std::string& start) {
    const auto at = text.find(start);
    return at == std::string::npos ? std::string() : text.substr(at, text.find('\n', at) - at);
  };
  const std::string failed = line_of(r.out, "[1] FAILED   seed=2: ");
  EXPECT_TRUE(contains(failed, "metrics.csv")) << r.out;
  EXPECT_FALSE(contains(failed, "seed=3")) << failed;
  const std::string row = line_of(r.out, "failed       seed=2  ");  // the sweep's table, as --list shows it
  EXPECT_TRUE(contains(row, "metrics.csv")) << r.out;
  EXPECT_FALSE(contains(row, "seed=3")) << row;
}

// A pack process that trains its runs as consecutive packs (more than fit its memory, here
// one at a time) gives each a pack of one run: that run's error still fails it alone, and the
// runs after it train to their result (they do not get its error).
TEST_F(PackCli, ARunAloneInAConsecutivePackFailsAlone) {
  const std::vector<std::string> sets = {"train.max_steps=60"};
  const std::vector<std::string> axes = {"seed=1,2,3"};
  ASSERT_EQ(multirun(dir_ / "out", sets, axes, {"--list"}).status, 0);
  const fs::path broken = dir_ / "out" / "seed=1";
  fs::create_directories(broken / "summary.json" / "x");  // no summary can be written
  const Result r = sh("SKILLRUN_PACK_MEMORY_MB=1 " + shell_quote(SKILLRUN_BIN) + " sweep --base " + shell_quote(kTiny) +
                      " --out " + shell_quote((dir_ / "out").string()) +
                      " --set train.max_steps=60 --axis seed=1,2,3 --pack 3");
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  const std::string log = slurp(dir_ / "out" / "packs" / "pack-0.log");
  EXPECT_TRUE(contains(log, "trains as 3 packs of at most 1")) << log;
  for (const char* name : {"seed=2", "seed=3"}) {
    EXPECT_EQ(summary(dir_ / "out" / name)["status"], "max_steps") << name << "\n" << log;
    EXPECT_FALSE(fs::exists(dir_ / "out" / name / "failed.json")) << name;
  }
  EXPECT_TRUE(fs::exists(broken / "failed.json"));
  EXPECT_TRUE(contains(r.out, "3 runs in 1 pack: 2 done, 1 failed")) << r.out;
}

// A run whose run.log cannot be opened (here a directory) is left out of its pack as failed,
// naming the file; the other runs train.
TEST_F(PackCli, ARunWhoseLogCannotBeOpenedFailsAlone) {
  const fs::path broken = dir_ / "out" / "seed=2";
  const Result r = pack_with_seed_2_broken("run.log");
  for (const char* name : {"seed=1", "seed=3"})
    EXPECT_FALSE(contains(slurp(dir_ / "out" / name / "run.log"), "seed=2")) << name;
  EXPECT_EQ(summary(broken)["status"], "failed");
  EXPECT_TRUE(contains(summary(broken)["message"].get<std::string>(), "run.log"));
  EXPECT_TRUE(contains(r.out, "3 runs in 1 pack: 2 done, 1 failed")) << r.out;
}

// An icl_linreg sweep with --pack N: its runs cannot pack, so each is a pack of its own, counted
// so (what a Slurm array is sized from), and trained alone by `skillrun run`.
TEST_F(PackCli, RunsThatCannotPackRunAloneAndAreCountedSo) {
  const std::string base = std::string(SKILLRUN_SOURCE_DIR) + "/configs/paper/fig5_gd.json";
  const std::vector<std::string> args = {"sweep", "--base", base, "--out", (dir_ / "icl").string(),
                                         "--set", "task.d=8", "--set", "eval.modes=[1,8]", "--set",
                                         "train.max_steps=50", "--axis", "seed=1,2,3", "--pack", "2"};
  std::vector<std::string> count_args = args;
  count_args.insert(count_args.end(), {"--list", "--format", "count"});
  const Result count = skillrun(count_args);
  ASSERT_EQ(count.status, 0) << count.err;
  EXPECT_EQ(count.out, "3\n");
  const Result r = skillrun(args);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "cannot share a pack")) << r.out;
  EXPECT_TRUE(contains(r.out, "3 runs in 3 packs: 3 done")) << r.out;
  for (const fs::path& run : runs_in(dir_ / "icl")) {
    EXPECT_NE(summary(run)["status"], "failed") << run;
    EXPECT_TRUE(fs::exists(run / "output.log")) << run;  // its own process's output
  }
}

// In a pack each run's run.log holds its own lines and names the pack's log, not its
// neighbours' lines.
TEST_F(PackCli, EachRunsLogHoldsItsOwnLinesAndNamesThePackLog) {
  const Result r = multirun(dir_ / "out", {"train.max_steps=50"}, {"seed=1,2"}, {"--pack", "2"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const std::string one = slurp(dir_ / "out" / "seed=1" / "run.log");
  const std::string two = slurp(dir_ / "out" / "seed=2" / "run.log");
  const std::string pack_log = (dir_ / "out" / "packs" / "pack-0.log").string();
  for (const std::string* log : {&one, &two}) {
    EXPECT_TRUE(contains(*log, "the pack's log: " + pack_log)) << *log;
    EXPECT_TRUE(contains(*log, "optimizer: ")) << *log;
  }
  EXPECT_TRUE(contains(one, "seed=1: ")) << one;
  EXPECT_FALSE(contains(one, "seed=2")) << one;
  EXPECT_FALSE(contains(two, "seed=1")) << two;
  EXPECT_TRUE(contains(slurp(pack_log), "seed=2: ")) << slurp(pack_log);
}

// A pack that needs more open files than the hard limit allows is refused before anything
// runs, with the largest --pack that fits; a low soft limit is raised to the hard one.
TEST_F(PackCli, OpenFileLimitIsCheckedUpFrontAndTheSoftLimitRaised) {
  const std::string sweep = shell_quote(SKILLRUN_BIN) + " sweep --base " + shell_quote(kTiny) +
                            " --set train.max_steps=20 --axis seed=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20";
  const Result refused =
      sh("ulimit -n 100 && " + sweep + " --out " + shell_quote((dir_ / "refused").string()) + " --pack 20");
  EXPECT_EQ(refused.status, 2) << refused.out << refused.err;
  EXPECT_TRUE(contains(refused.err, "--pack 12 or less")) << refused.err;
  for (const auto& e : fs::directory_iterator(dir_ / "refused")) EXPECT_FALSE(fs::exists(e.path() / "summary.json"));

  const Result hard = sh("ulimit -Hn");
  if (std::stol(hard.out) < 200) GTEST_SKIP() << "the hard limit on open files here is " << hard.out;
  const Result raised =
      sh("ulimit -Sn 40 && " + sweep + " --out " + shell_quote((dir_ / "raised").string()) + " --pack 20");
  EXPECT_EQ(raised.status, 0) << raised.out << raised.err;
  EXPECT_TRUE(contains(raised.out, "20 runs in 1 pack: 20 done")) << raised.out;
}

}  // namespace
