// `skillrun sweep` as a user meets it: runs are child processes in OUT/<run name>; a finished
// sweep does no work the second time; --list and --index; a diverged run is a result, a failed
// one makes the exit status 1 and is re-run only with --retry-failed; a changed sweep never
// overwrites a run directory (exit 2); an interrupted sweep exits 3 and resumes.
// Runs are tiny (configs/ci/tiny.json, often capped at 100 steps), so the file takes seconds.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.h"

namespace {

namespace fs = std::filesystem;
using skillrun_test::Result;
using skillrun_test::shell_quote;
using skillrun_test::slurp;

using skillrun_test::contains;

std::string status_of(const fs::path& run_dir) {
  return nlohmann::json::parse(slurp(run_dir / "summary.json")).at("status").get<std::string>();
}

const std::string kTiny = std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json";
const std::string kCiTinySweep = std::string(SKILLRUN_SOURCE_DIR) + "/configs/sweeps/ci_tiny.json";
// The four run directories of configs/sweeps/ci_tiny.json, in index order.
const char* const kCiTinyRuns[] = {"model.width=32,seed=1", "model.width=32,seed=2", "model.width=64,seed=1",
                                   "model.width=64,seed=2"};

class SweepCli : public skillrun_test::CliTest {
 protected:
  void SetUp() override {
    // One thread per run: on 2 cores shared with other ctest jobs, OpenMP threads that wait for
    // a busy core make a one-second run take tens of seconds. Thread counts are not under test.
    ::setenv("OMP_NUM_THREADS", "1", 1);
    CliTest::SetUp();
    out_ = dir_ / "out";
  }

  std::string write_sweep(const std::string& contents, const std::string& name = "sweep.json") {
    const fs::path p = dir_ / name;
    std::ofstream(p) << contents;
    return p.string();
  }

  // A sweep whose base is configs/ci/tiny.json capped at 100 steps, then changed by the JSON
  // merge patch `patch`, with the given axes.
  std::string tiny_sweep(const std::string& axes, const std::string& patch = "{}") {
    nlohmann::json base = nlohmann::json::parse(slurp(kTiny));
    base["train"]["max_steps"] = 100;
    base.merge_patch(nlohmann::json::parse(patch));
    return write_sweep("{\"base\": " + base.dump() + ", \"axes\": {" + axes + "}}");
  }

  // `skillrun sweep SWEEP --out OUT [args]`
  Result sweep(const std::string& sweep_file, std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"sweep", sweep_file, "--out", out_.string()});
    return skillrun(args);
  }

  fs::path out_;
};

// ---------------------------------------------------------------------------------------------
// running a sweep

TEST_F(SweepCli, CiTinySweepRunsEveryRunToAResult) {
  const Result r = sweep(kCiTinySweep);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  for (const char* name : kCiTinyRuns) EXPECT_EQ(status_of(out_ / name), "converged") << name;
  EXPECT_TRUE(contains(r.out, "4 runs: 4 done"));
}

TEST_F(SweepCli, ManifestListsTheRunsTheCommandAndTheCommit) {
  ASSERT_EQ(sweep(tiny_sweep(R"("seed": [1, 2])")).status, 0);
  const auto m = nlohmann::json::parse(slurp(out_ / "sweep.json"));
  ASSERT_EQ(m["runs"].size(), 2u);
  EXPECT_EQ(m["runs"][1]["index"], 1);
  EXPECT_EQ(m["runs"][1]["name"], "seed=2");
  EXPECT_EQ(m["runs"][1]["overrides"]["seed"], 2);
  EXPECT_EQ(m["command_line"][1], "sweep");
  EXPECT_FALSE(m["git_commit"].get<std::string>().empty());
  EXPECT_TRUE(contains(m["sweep_file"].get<std::string>(), "sweep.json"));
}

// Each run's resolved config is in its directory, and `run` was given exactly that file.
TEST_F(SweepCli, RunDirectoryHoldsTheRunsResolvedConfig) {
  ASSERT_EQ(sweep(tiny_sweep(R"("model.width": [16])")).status, 0);
  const auto config = nlohmann::json::parse(slurp(out_ / "model.width=16" / "config.json"));
  EXPECT_EQ(config["model"]["width"], 16);
  EXPECT_EQ(config["train"]["max_steps"], 100);
  EXPECT_EQ(config["eval"]["tau_bits"], 0.1);
}

TEST_F(SweepCli, SecondInvocationOfAFinishedSweepStartsNoRun) {
  ASSERT_EQ(sweep(kCiTinySweep).status, 0);
  std::vector<fs::file_time_type> before;
  std::vector<std::string> outputs;
  for (const char* name : kCiTinyRuns) {
    before.push_back(fs::last_write_time(out_ / name / "metrics.csv"));
    outputs.push_back(slurp(out_ / name / "output.log"));  // appended to by every run process
  }
  const Result again = sweep(kCiTinySweep);
  ASSERT_EQ(again.status, 0) << again.out << again.err;
  EXPECT_TRUE(contains(again.out, "skipped 4 finished runs"));
  EXPECT_FALSE(contains(again.out, "start"));
  for (std::size_t i = 0; i < std::size(kCiTinyRuns); ++i) {
    EXPECT_EQ(fs::last_write_time(out_ / kCiTinyRuns[i] / "metrics.csv"), before[i]) << kCiTinyRuns[i];
    EXPECT_EQ(slurp(out_ / kCiTinyRuns[i] / "output.log"), outputs[i]) << kCiTinyRuns[i];
  }
}

TEST_F(SweepCli, JobsTwoRunsEveryRun) {
  const Result r = sweep(tiny_sweep(R"("seed": [1, 2, 3])"), {"--jobs", "2"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  for (const char* name : {"seed=1", "seed=2", "seed=3"}) EXPECT_EQ(status_of(out_ / name), "max_steps") << name;
}

TEST_F(SweepCli, SetAppliesToTheBaseOfEveryRun) {
  ASSERT_EQ(sweep(tiny_sweep(R"("seed": [1, 2])"), {"--set", "train.max_steps=50"}).status, 0);
  for (const char* name : {"seed=1", "seed=2"})
    EXPECT_EQ(nlohmann::json::parse(slurp(out_ / name / "summary.json"))["steps"], 50) << name;
}

// ---------------------------------------------------------------------------------------------
// --list and --index

TEST_F(SweepCli, ListPrintsEveryRunAndRunsNothing) {
  const Result r = sweep(kCiTinySweep, {"--list"});
  ASSERT_EQ(r.status, 0) << r.err;
  // The table shortens keys (model.width -> width) and says so; the directories keep the names.
  for (std::string name : kCiTinyRuns) EXPECT_TRUE(contains(r.out, name.substr(name.find("width")))) << name;
  EXPECT_TRUE(contains(r.out, "(names: width = model.width;"));
  EXPECT_TRUE(contains(r.out, "4 runs: 4 pending"));
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(SweepCli, ListShowsTheStatusOfFinishedRuns) {
  ASSERT_EQ(sweep(tiny_sweep(R"("seed": [1, 2])"), {"--index", "1"}).status, 0);
  const Result r = sweep(tiny_sweep(R"("seed": [1, 2])"), {"--list"});
  EXPECT_TRUE(contains(r.out, "    0  pending      seed=1"));
  EXPECT_TRUE(contains(r.out, "    1  done         seed=2  max_steps, 100 steps"));
}

TEST_F(SweepCli, ListFormatCountPrintsTheNumberOfRuns) {
  const Result r = sweep(kCiTinySweep, {"--list", "--format", "count"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "4\n");
}

TEST_F(SweepCli, IndexRunsOnlyThatRun) {
  const Result r = sweep(kCiTinySweep, {"--index", "2"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(status_of(out_ / kCiTinyRuns[2]), "converged");
  for (int i : {0, 1, 3}) EXPECT_FALSE(fs::exists(out_ / kCiTinyRuns[i])) << kCiTinyRuns[i];
}

TEST_F(SweepCli, IndexOutOfRangeExitsTwo) {
  const Result r = sweep(kCiTinySweep, {"--index", "4"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "error: --index 4 is out of range"));
  EXPECT_FALSE(fs::exists(out_));
}

// ---------------------------------------------------------------------------------------------
// diverged and failed runs

// SGD at lr 1e30 overflows within a few steps; the sweep goes on and exits 0: a result.
const char* const kSgd = R"({"optimizer": {"type": "sgd", "lr": 0.1}})";

TEST_F(SweepCli, DivergingRunIsReportedAndTheOthersFinish) {
  const Result r = sweep(tiny_sweep(R"("optimizer.lr": [1e30, 0.5])", kSgd));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(status_of(out_ / "optimizer.lr=1e+30"), "diverged");
  EXPECT_EQ(status_of(out_ / "optimizer.lr=0.5"), "max_steps");
  EXPECT_TRUE(contains(r.out, "    0  diverged     lr=1e+30"));
}

TEST_F(SweepCli, DivergedRunIsNotRunAgain) {
  const std::string s = tiny_sweep(R"("optimizer.lr": [1e30])", kSgd);
  ASSERT_EQ(sweep(s).status, 0);
  const Result again = sweep(s, {"--retry-failed"});
  EXPECT_EQ(again.status, 0);
  EXPECT_TRUE(contains(again.out, "skipped 1 finished run"));
}

// metrics.csv made a directory makes that run's process fail with exit 1.
TEST_F(SweepCli, FailingRunIsMarkedFailedTheOthersFinishAndTheSweepExitsOne) {
  fs::create_directories(out_ / "seed=1" / "metrics.csv");
  const Result r = sweep(tiny_sweep(R"("seed": [1, 2])"));
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_EQ(status_of(out_ / "seed=2"), "max_steps");
  const auto marker = nlohmann::json::parse(slurp(out_ / "seed=1" / "failed.json"));
  EXPECT_EQ(marker["exit_code"], 1);
  EXPECT_TRUE(contains(marker["output_tail"].get<std::string>(), "metrics.csv"));
  EXPECT_TRUE(contains(r.out, "    0  failed       seed=1  exit 1: error:"));
}

TEST_F(SweepCli, FailedRunIsNotRetriedWithoutRetryFailed) {
  const std::string s = tiny_sweep(R"("seed": [1])");
  fs::create_directories(out_ / "seed=1");
  std::ofstream(out_ / "seed=1" / "failed.json") << R"({"exit_code": 1, "signal": 0, "output_tail": "boom\n"})";
  const Result r = sweep(s);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "skipped 1 failed run: --retry-failed runs them again"));
  EXPECT_FALSE(fs::exists(out_ / "seed=1" / "summary.json"));
}

TEST_F(SweepCli, RetryFailedRunsAFailedRunAgain) {
  const std::string s = tiny_sweep(R"("seed": [1])");
  fs::create_directories(out_ / "seed=1");
  std::ofstream(out_ / "seed=1" / "failed.json") << R"({"exit_code": 1, "signal": 0, "output_tail": "boom\n"})";
  const Result r = sweep(s, {"--retry-failed"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "[0] retry    seed=1"));
  EXPECT_EQ(status_of(out_ / "seed=1"), "max_steps");
  EXPECT_FALSE(fs::exists(out_ / "seed=1" / "failed.json"));
}

// ---------------------------------------------------------------------------------------------
// a changed sweep, a bad sweep

TEST_F(SweepCli, ReorderedAxesFindTheFinishedRunsAndRunNothingAgain) {
  ASSERT_EQ(sweep(tiny_sweep(R"("model.width": [32, 64], "seed": [1, 2])")).status, 0);
  std::vector<fs::file_time_type> before;
  for (const char* name : kCiTinyRuns) before.push_back(fs::last_write_time(out_ / name / "metrics.csv"));
  const Result again = sweep(tiny_sweep(R"("seed": [1, 2], "model.width": [32, 64])"));
  ASSERT_EQ(again.status, 0) << again.out << again.err;
  EXPECT_TRUE(contains(again.out, "skipped 4 finished runs")) << again.out;
  EXPECT_TRUE(contains(again.err, "seed=1,model.width=64 -> model.width=64,seed=1")) << again.err;
  for (std::size_t i = 0; i < std::size(kCiTinyRuns); ++i)
    EXPECT_EQ(fs::last_write_time(out_ / kCiTinyRuns[i] / "metrics.csv"), before[i]) << kCiTinyRuns[i];
  std::size_t dirs = 0;
  for (const auto& entry : fs::directory_iterator(out_)) dirs += entry.is_directory();
  EXPECT_EQ(dirs, 4u);  // no second copy of any run for analyze to count twice
}

TEST_F(SweepCli, ChangedBaseIsAnErrorNamingTheRunDirectoryAndLeavesItAsItWas) {
  ASSERT_EQ(sweep(tiny_sweep(R"("seed": [1])", R"({"train": {"max_steps": 50}})")).status, 0);
  const fs::path run_dir = out_ / "seed=1";
  const std::string config = slurp(run_dir / "config.json"), summary = slurp(run_dir / "summary.json");
  const Result r = sweep(tiny_sweep(R"("seed": [1])", R"({"train": {"max_steps": 60}})"));
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, (run_dir / "config.json").string()));
  EXPECT_TRUE(contains(r.err, "train.max_steps (50 in the directory, 60 in the sweep)"));
  EXPECT_EQ(slurp(run_dir / "config.json"), config);
  EXPECT_EQ(slurp(run_dir / "summary.json"), summary);
}

TEST_F(SweepCli, ZipOfUnequalLengthsExitsTwoNamingThePath) {
  const Result r = sweep(write_sweep(R"({"base": ")" + kTiny +
                                     R"(", "zip": [{"seed": [1, 2], "model.width": [8]}]})"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "error: zip[0].model.width: has 1 values but zip[0].seed has 2"));
  EXPECT_FALSE(fs::exists(out_));
}

TEST_F(SweepCli, BadValueExitsTwoNamingTheRun) {
  const Result r = sweep(tiny_sweep(R"("optimizer.lr": [0.01, -1])"));
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "error: run 1 (optimizer.lr=-1): optimizer.lr: must be > 0, got -1"));
  EXPECT_FALSE(fs::exists(out_));
}

// A corrupt config.json is reported as such, naming the file, not as a changed sweep.
TEST_F(SweepCli, CorruptConfigOfARunIsReportedAsUnreadableNamingTheFile) {
  const std::string s = tiny_sweep(R"("seed": [1, 2])");
  fs::create_directories(out_ / "seed=2");
  std::ofstream(out_ / "seed=2" / "config.json") << "{\"seed\": 2,";
  const Result r = sweep(s);
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "run 1: " + (out_ / "seed=2" / "config.json").string() + ": malformed JSON")) << r.err;
  EXPECT_TRUE(contains(r.err, "not a valid config")) << r.err;
  EXPECT_FALSE(contains(r.err, "the sweep file or --set changed")) << r.err;
  EXPECT_FALSE(fs::exists(out_ / "seed=1"));  // nothing ran
  const Result list = sweep(s, {"--list"});
  EXPECT_TRUE(contains(list.out, "CONFIG UNREADABLE: " + (out_ / "seed=2" / "config.json").string())) << list.out;
}

// ---------------------------------------------------------------------------------------------
// an output directory of someone else's, two sweeps into one, a full disk

// `--out .` beside the user's own sweep.json overwrote it with the manifest; a directory of
// other files is refused as `run --out` refuses one: exit 2, nothing written.
TEST_F(SweepCli, OutputDirectoryThatHoldsNoSweepIsRefusedAndNothingIsWritten) {
  fs::create_directories(out_);
  const std::string mine = tiny_sweep(R"("seed": [1])");
  fs::copy_file(mine, out_ / "sweep.json");
  const std::string before = slurp(out_ / "sweep.json");
  const Result r = sweep((out_ / "sweep.json").string());
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, out_.string() + " is not empty and holds no sweep (it has sweep.json")) << r.err;
  EXPECT_EQ(slurp(out_ / "sweep.json"), before);
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(out_)) entries.push_back(e.path().filename().string());
  EXPECT_EQ(entries, std::vector<std::string>{"sweep.json"});

  // The same from the command line, into a directory of notes; --list still reads it.
  const fs::path notes = dir_ / "notes";
  fs::create_directories(notes);
  std::ofstream(notes / "todo.txt") << "mine\n";
  const Result multi = skillrun({"sweep", "--base", kTiny, "--axis", "seed=1", "--out", notes.string()});
  EXPECT_EQ(multi.status, 2) << multi.out << multi.err;
  EXPECT_TRUE(contains(multi.err, "holds no sweep (it has todo.txt)")) << multi.err;
  EXPECT_FALSE(fs::exists(notes / "multirun.json"));
  EXPECT_EQ(skillrun({"sweep", "--base", kTiny, "--axis", "seed=1", "--out", notes.string(), "--list"}).status, 0);
}

// Two sweeps into one --out: the second is refused before it writes anything, naming the first;
// --list takes no lock. (Array tasks, --index, share the lock: tests/slurm.)
TEST_F(SweepCli, SecondSweepIntoTheSameOutputIsRefusedNamingTheFirst) {
  const std::string first = tiny_sweep(R"("seed": [1])", R"({"train": {"max_steps": 100000, "stop_when_learned": false}})");
  const pid_t pid = skillrun_test::spawn_skillrun({"sweep", first, "--out", out_.string()});
  const fs::path summary = out_ / "seed=1" / "summary.json";
  for (int i = 0; i < 600 && !fs::exists(summary); ++i) ::usleep(50000);
  ASSERT_TRUE(fs::exists(summary));
  const std::string manifest = slurp(out_ / "sweep.json");
  const std::string other = write_sweep(slurp(first), "other.json");
  for (const std::vector<std::string>& extra : {std::vector<std::string>{}, {"--index", "0"}}) {
    const Result second = sweep(other, extra);
    EXPECT_EQ(second.status, 2) << second.out << second.err;
    EXPECT_TRUE(contains(second.err, out_.string() + " is being written by another skillrun sweep (pid " +
                                         std::to_string(pid) + ", skillrun sweep sweep)"))
        << second.err;
  }
  const Result list = sweep(other, {"--list"});
  EXPECT_EQ(list.status, 0) << list.err;
  EXPECT_EQ(slurp(out_ / "sweep.json"), manifest);  // the first sweep's, untouched
  ::kill(pid, SIGTERM);
  EXPECT_EQ(skillrun_test::wait_exit(pid), 3);
  EXPECT_EQ(status_of(out_ / "seed=1"), "interrupted");
}

// The tasks of a Slurm array (--index I) share the lock: they run together; a whole sweep beside
// them is refused.
TEST_F(SweepCli, ArrayTasksRunTogetherAndAWholeSweepBesideThemIsRefused) {
  nlohmann::json base = nlohmann::json::parse(slurp(kTiny));
  base["train"]["stop_when_learned"] = false;
  const std::string s = write_sweep(R"({"zip": [{"seed": [1, 2], "train.max_steps": [100000, 20]}], "base": )" +
                                    base.dump() + "}");
  const pid_t pid = skillrun_test::spawn_skillrun({"sweep", s, "--out", out_.string(), "--index", "0"});
  const fs::path summary = out_ / "seed=1,train.max_steps=100000" / "summary.json";
  for (int i = 0; i < 600 && !fs::exists(summary); ++i) ::usleep(50000);
  ASSERT_TRUE(fs::exists(summary));
  const Result task = sweep(s, {"--index", "1"});
  EXPECT_EQ(task.status, 0) << task.out << task.err;
  EXPECT_EQ(status_of(out_ / "seed=2,train.max_steps=20"), "max_steps");
  const Result whole = sweep(s);
  EXPECT_EQ(whole.status, 2) << whole.out << whole.err;
  EXPECT_TRUE(contains(whole.err, "is being written by another skillrun sweep (pid ")) << whole.err;
  ::kill(pid, SIGTERM);
  EXPECT_EQ(skillrun_test::wait_exit(pid), 3);
}

// A full disk while the sweep writes its bookkeeping (here failed.json.tmp, a link to /dev/full):
// the table of what is known, then a message that names the disk and the file; exit 1.
TEST_F(SweepCli, FullDiskStopsTheSweepWithTheTableAndAMessageNamingTheDisk) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  fs::create_directories(out_ / "seed=1" / "metrics.csv");  // the run fails: the sweep writes failed.json
  fs::create_symlink("/dev/full", out_ / "seed=1" / "failed.json.tmp");
  const Result r = sweep(tiny_sweep(R"("seed": [1, 2])"));
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "no space left on device while writing " +
                                  (out_ / "seed=1" / "failed.json.tmp").string() +
                                  ": the sweep stopped; free space and run it again to resume"))
      << r.err;
  EXPECT_TRUE(contains(r.out, "index  status")) << r.out;
  EXPECT_TRUE(contains(r.out, "    1  pending      seed=2")) << r.out;
}

// ---------------------------------------------------------------------------------------------
// interruption

// SIGTERM to the sweep (as Slurm sends with --signal=B:...) reaches the run, which checkpoints
// and stops; the sweep exits 3 after running --on-interrupt; the next invocation resumes it.
TEST_F(SweepCli, SigtermStopsTheSweepWithExitThreeAndTheNextInvocationResumes) {
  const std::string s = tiny_sweep(R"("seed": [1])", R"({"train": {"max_steps": 6000, "stop_when_learned": false}})");
  const fs::path summary = out_ / "seed=1" / "summary.json", hook = dir_ / "hook_ran";
  const std::string start = shell_quote(SKILLRUN_BIN) + " sweep " + shell_quote(s) + " --out " +
                            shell_quote(out_.string()) + " --on-interrupt " + shell_quote("touch " + hook.string());
  // Signal once the run has written its first summary (its handlers are installed by then).
  const Result r = sh(start + " & pid=$!; i=0; while [ ! -f " + shell_quote(summary.string()) +
                             " ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; kill -TERM $pid; wait $pid");
  ASSERT_EQ(r.status, 3) << r.out << r.err;
  EXPECT_EQ(status_of(out_ / "seed=1"), "interrupted");
  EXPECT_TRUE(fs::exists(hook));

  const Result again = sweep(s);
  ASSERT_EQ(again.status, 0) << again.out << again.err;
  EXPECT_TRUE(contains(again.out, "[0] resume   seed=1"));
  EXPECT_EQ(status_of(out_ / "seed=1"), "max_steps");
}

// ---------------------------------------------------------------------------------------------
// packs (--pack N): one process trains several runs; each run's files are what it writes alone

// Rows of a run's metrics.csv without wall_s.
std::vector<std::string> rows(const fs::path& run_dir) {
  return skillrun_test::deterministic_rows(run_dir / "metrics.csv");
}

const char* const kPackAxes =
    R"("model.width": [32, 64], "optimizer": [{"type": "muon", "lr": 0.02}, {"type": "adam", "lr": 0.01}], "seed": [1, 2])";

TEST_F(SweepCli, PackedSweepWritesWhatTheRunsWriteOneProcessEach) {
  const std::string s = tiny_sweep(kPackAxes, R"({"train": {"max_steps": 300}})");
  const fs::path alone = out_;
  out_ = dir_ / "packed";
  const Result packed = sweep(s, {"--pack", "4"});
  ASSERT_EQ(packed.status, 0) << packed.out << packed.err;
  EXPECT_TRUE(contains(packed.out, "8 runs in 2 packs: 8 done")) << packed.out;
  EXPECT_TRUE(contains(packed.out, "(pack 1)")) << packed.out;
  out_ = alone;
  const Result single = sweep(s, {"--pack", "off"});
  ASSERT_EQ(single.status, 0) << single.out << single.err;
  int compared = 0;
  for (const auto& entry : fs::directory_iterator(alone)) {
    if (!fs::exists(entry.path() / "metrics.csv")) continue;
    const fs::path twin = dir_ / "packed" / entry.path().filename();
    EXPECT_GT(rows(entry.path()).size(), 2u);
    EXPECT_EQ(rows(entry.path()), rows(twin)) << entry.path().filename();
    ++compared;
  }
  EXPECT_EQ(compared, 8);
  // sweep.json says which pack trained each run, and where the pack's process wrote.
  const auto manifest = nlohmann::json::parse(slurp(dir_ / "packed" / "sweep.json"));
  ASSERT_EQ(manifest["packs"].size(), 2u);
  EXPECT_EQ(manifest["packs"][1]["runs"], nlohmann::json({4, 5, 6, 7}));
  EXPECT_EQ(manifest["runs"][5]["pack"], 1);
  EXPECT_TRUE(fs::exists(manifest["packs"][0]["output"].get<std::string>()));
}

// A pack process whose runs do not fit the memory it may use trains them as consecutive packs,
// saying so; each run still ends as it would alone.
TEST_F(SweepCli, PackThatDoesNotFitTrainsAsConsecutivePacksWithALogLine) {
  const std::string s = tiny_sweep(R"("optimizer": [{"type": "muon", "lr": 0.02}, {"type": "adam", "lr": 0.01}],
                                       "seed": [1, 2])");
  const fs::path alone = out_;
  ASSERT_EQ(sweep(s, {"--pack", "off"}).status, 0);
  out_ = dir_ / "split";
  ::setenv("SKILLRUN_PACK_MEMORY_MB", "1", 1);  // below two tiny runs' estimate
  const Result r = sweep(s, {"--pack", "4"});
  ::unsetenv("SKILLRUN_PACK_MEMORY_MB");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  // The line is the sweep plan's own (sweep/packing.h: fit_pack, the one split).
  EXPECT_TRUE(contains(slurp(out_ / "packs" / "pack-0.log"),
                       "GiB a pack may use: it trains as 4 packs of at most 1"))
      << slurp(out_ / "packs" / "pack-0.log");
  EXPECT_TRUE(contains(slurp(out_ / "packs" / "pack-0.log"), "a pack of 4 runs needs about "))
      << slurp(out_ / "packs" / "pack-0.log");
  for (const auto& entry : fs::directory_iterator(alone)) {
    if (!fs::exists(entry.path() / "metrics.csv")) continue;
    EXPECT_EQ(rows(entry.path()), rows(out_ / entry.path().filename())) << entry.path().filename();
  }
  ::setenv("SKILLRUN_PACK_MEMORY_MB", "x", 1);
  out_ = dir_ / "bad";
  EXPECT_NE(sweep(s, {"--pack", "4"}).status, 0);
  ::unsetenv("SKILLRUN_PACK_MEMORY_MB");
}

TEST_F(SweepCli, ListShowsThePacksAndCountCountsThemForSlurm) {
  const std::string s = tiny_sweep(kPackAxes);
  const Result count = sweep(s, {"--pack", "3", "--list", "--format", "count"});
  ASSERT_EQ(count.status, 0) << count.err;
  EXPECT_EQ(count.out, "4\n");  // two widths, each 4 runs cut into packs of 3 and 1
  const Result table = sweep(s, {"--pack", "3", "--list"});
  EXPECT_TRUE(contains(table.out, "index  pack  status"));
  EXPECT_TRUE(contains(table.out, "8 runs in 4 packs"));
  const auto json = nlohmann::json::parse(sweep(s, {"--pack", "3", "--list", "--format", "json"}).out);
  EXPECT_EQ(json[3]["pack"], 1);
  EXPECT_EQ(json[4]["pack"], 2);
  EXPECT_EQ(sweep(s, {"--list", "--format", "count"}).out, "8\n");  // auto on the CPU: runs
  EXPECT_FALSE(fs::exists(out_ / "sweep.json"));                     // --list ran nothing
}

TEST_F(SweepCli, IndexWithPackTrainsOnlyThatPack) {
  const std::string s = tiny_sweep(kPackAxes);
  const Result r = sweep(s, {"--pack", "3", "--index", "2"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  int trained = 0;
  for (const auto& entry : fs::directory_iterator(out_))
    if (fs::exists(entry.path() / "summary.json")) ++trained;
  EXPECT_EQ(trained, 3);  // runs 4, 5, 6: the first pack of width 64
  EXPECT_TRUE(fs::exists(out_ / "model.width=64,optimizer=__lr__0.02__type___muon__,seed=1" / "summary.json"));
  EXPECT_FALSE(fs::exists(out_ / "model.width=64,optimizer=__lr__0.01__type___adam__,seed=2" / "summary.json"));
  const Result out_of_range = sweep(s, {"--pack", "3", "--index", "4"});
  EXPECT_EQ(out_of_range.status, 2);
  EXPECT_TRUE(contains(out_of_range.err, "forms 4 packs"));
}

TEST_F(SweepCli, PackValueThatIsNoNumberExitsTwo) {
  const std::string s = tiny_sweep(R"("seed": [1])");
  for (const char* bad : {"0", "x", "-2", "3x"}) {
    const Result r = sweep(s, {"--pack", bad});
    EXPECT_EQ(r.status, 2) << bad;
    EXPECT_TRUE(contains(r.err, "--pack")) << r.err;
  }
}

// SIGTERM to a packed sweep: the pack checkpoints every run and exits 3, the sweep exits 3;
// kill -9 of the next attempt (sweep and pack); the same command again finishes every run with
// the rows an uninterrupted run writes.
TEST_F(SweepCli, PackedSweepSurvivesSigtermAndKillNineAndResumesEveryRun) {
  const std::string s = tiny_sweep(R"("optimizer": [{"type": "muon", "lr": 0.02}, {"type": "adam", "lr": 0.01}])",
                                   R"({"train": {"max_steps": 4000, "stop_when_learned": false,
                                                 "checkpoint_every": 50}})");
  const char* const names[] = {"optimizer=__lr__0.02__type___muon__", "optimizer=__lr__0.01__type___adam__"};
  const fs::path packed = out_;
  out_ = dir_ / "whole";
  ASSERT_EQ(sweep(s, {"--pack", "off"}).status, 0);
  out_ = packed;
  const std::string start = shell_quote(SKILLRUN_BIN) + " sweep " + shell_quote(s) + " --out " +
                            shell_quote(out_.string()) + " --pack 2";
  const std::string summary = shell_quote((out_ / names[1] / "summary.json").string());
  // In ( ): sh() redirects the output of the whole list, the background sweep's included.
  const Result r = sh("(" + start + " & pid=$!; i=0; while [ ! -f " + summary +
                      " ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; sleep 0.3; kill -TERM $pid; wait $pid)");
  ASSERT_EQ(r.status, 3) << r.out << r.err;
  for (const char* name : names) EXPECT_EQ(status_of(out_ / name), "interrupted") << name;
  EXPECT_TRUE(contains(r.out, "stopped")) << r.out;

  // Again, killed hard once the pack has trained a little further.
  const std::string metrics = shell_quote((out_ / names[0] / "metrics.csv").string());
  const Result killed = sh("(" + start + " & pid=$!; n=$(wc -l < " + metrics + "); i=0; while [ $(wc -l < " +
                           metrics + ") -le $((n + 4)) ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; "
                           "pkill -KILL -P $pid; kill -KILL $pid; wait $pid)");
  EXPECT_EQ(killed.status, 128 + 9) << killed.out << killed.err;

  const Result last = sweep(s, {"--pack", "2"});
  ASSERT_EQ(last.status, 0) << last.out << last.err;
  EXPECT_TRUE(contains(last.out, "resume")) << last.out;
  for (const char* name : names) {
    EXPECT_EQ(status_of(out_ / name), "max_steps") << name;
    EXPECT_EQ(rows(out_ / name), rows(dir_ / "whole" / name)) << name;
    EXPECT_EQ(rows(out_ / name).size(), 2u + 4000u / 25u);
  }
}

// A run directory whose config cannot be read is recorded failed and left out; the others train.
TEST_F(SweepCli, PackRecordsARunWithABadConfigFailedAndTrainsTheOthers) {
  for (const char* d : {"good", "bad"}) fs::create_directories(dir_ / d);
  nlohmann::json config = nlohmann::json::parse(slurp(kTiny));
  config["train"]["max_steps"] = 30;
  std::ofstream(dir_ / "good" / "config.json") << config.dump();
  std::ofstream(dir_ / "bad" / "config.json") << R"({"task": {"type": "sparse_parity", "n_tasks": 3}, "optimzer": 1})";
  const Result r = skillrun({"pack", (dir_ / "good").string(), (dir_ / "bad").string(), "--no-progress"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_EQ(status_of(dir_ / "good"), "max_steps");
  EXPECT_EQ(status_of(dir_ / "bad"), "failed");
  EXPECT_TRUE(contains(slurp(dir_ / "bad" / "summary.json"), "optimzer")) << slurp(dir_ / "bad" / "summary.json");
}

TEST_F(SweepCli, PackOfRunDirectoriesOfTwoShapesIsRefusedAndChangesNothing) {
  const std::string s = tiny_sweep(R"("model.width": [32, 64])");
  ASSERT_EQ(sweep(s, {"--list"}).status, 0);
  for (const char* w : {"32", "64"}) {
    fs::create_directories(dir_ / w);
    nlohmann::json config = nlohmann::json::parse(slurp(kTiny));
    config["model"]["width"] = std::stoi(w);
    std::ofstream(dir_ / w / "config.json") << config.dump();
  }
  const Result r = skillrun({"pack", (dir_ / "32").string(), (dir_ / "64").string(), "--no-progress"});
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "model.width")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "32" / "metrics.csv"));
  EXPECT_FALSE(fs::exists(dir_ / "32" / "summary.json"));
}

// ---------------------------------------------------------------------------------------------
// watching a sweep: progress lines, the cost of what is left, skillrun status

TEST_F(SweepCli, EachEndedRunPrintsTheSweepsProgress) {
  const Result r = sweep(tiny_sweep(R"("seed": [1, 2])"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "progress: 1/2 runs finished, 1 to go; about")) << r.out;
  EXPECT_TRUE(contains(r.out, "progress: 2/2 runs finished, 0 to go")) << r.out;
}

TEST_F(SweepCli, ListEstimatesWhatTheUnfinishedRunsCostFromTheFinishedOnes) {
  const std::string s = tiny_sweep(R"("seed": [1, 2, 3])");
  const Result none = sweep(s, {"--list"});
  // None finished: a few steps of the first run are timed on the spot.
  EXPECT_TRUE(contains(none.out, "cost: 3 unfinished runs, up to 300 steps; no run has finished, and 3 steps of run 0 "
                                 "timed just now take "))
      << none.out;
  EXPECT_TRUE(contains(none.out, "ms each (cpu")) << none.out;
  EXPECT_FALSE(fs::exists(out_ / "seed=1" / "metrics.csv"));  // timing writes nothing
  ASSERT_EQ(sweep(s, {"--index", "0"}).status, 0);
  const Result some = sweep(s, {"--list"});
  EXPECT_TRUE(contains(some.out, "cost: 2 unfinished runs, up to 200 steps; at ")) << some.out;
  EXPECT_TRUE(contains(some.out, "ms per step (the 1 finished runs, cpu")) << some.out;
}

TEST_F(SweepCli, StatusShowsEveryRunOfASweepAndWhereTheBrokenOnesAre) {
  const std::string s = tiny_sweep(R"("seed": [1, 2, 3])");
  ASSERT_EQ(sweep(s, {"--index", "0"}).status, 0);
  ASSERT_EQ(sweep(s, {"--index", "1"}).status, 0);
  // Run 1 looks killed hard: its summary still says running and no process holds its lock.
  const fs::path killed = out_ / "seed=2";
  nlohmann::json summary = nlohmann::json::parse(slurp(killed / "summary.json"));
  summary["status"] = "running";
  std::ofstream(killed / "summary.json") << summary.dump();
  const Result r = skillrun({"status", out_.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "3 runs: 1 done, 1 killed, 1 pending")) << r.out;
  EXPECT_TRUE(contains(r.out, "killed: " + killed.string())) << r.out;
  for (const std::string& line : {std::string("status"), std::string("done"), std::string("pending")})
    EXPECT_TRUE(contains(r.out, line));
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line) && line.rfind("3 runs", 0) != 0;)
    EXPECT_LE(line.size(), 100u) << line;
  const auto json = nlohmann::json::parse(skillrun({"status", out_.string(), "--format", "json"}).out);
  ASSERT_EQ(json.size(), 3u);
  EXPECT_EQ(json[1]["status"], "killed");
  EXPECT_EQ(json[2]["status"], "pending");
  EXPECT_EQ(skillrun({"status", (dir_ / "nothing").string()}).status, 2);
}

TEST_F(SweepCli, StatusNamesTheProcessWritingALiveRun) {
  const std::string s = tiny_sweep(R"("seed": [1])", R"({"train": {"max_steps": 100000, "stop_when_learned": false}})");
  const fs::path summary = out_ / "seed=1" / "summary.json";
  const std::string start = shell_quote(SKILLRUN_BIN) + " sweep " + shell_quote(s) + " --out " +
                            shell_quote(out_.string());
  const Result r = sh("(" + start + " & pid=$!; i=0; while [ ! -f " + shell_quote(summary.string()) +
                      " ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; " + shell_quote(SKILLRUN_BIN) +
                      " status " + shell_quote(out_.string()) + "; kill -TERM $pid; wait $pid)");
  EXPECT_TRUE(contains(r.out, "1 run: 1 running")) << r.out;
  EXPECT_TRUE(contains(r.out, "started by pid")) << r.out;
  EXPECT_TRUE(contains(r.out, "skillrun sweep")) << r.out;
}

// ---------------------------------------------------------------------------------------------
// multirun from the command line: --base CONFIG --axis KEY=V1,V2

TEST_F(SweepCli, BaseAndAxesExpandAsTheSweepFileWouldAndWriteIt) {
  const std::string file = tiny_sweep(R"("model.width": [32, 64], "optimizer": [{"type": "adam", "lr": 0.01},
                                          {"type": "sgd", "lr": 0.5}])");
  ASSERT_EQ(sweep(file, {"--list", "--format", "json"}).status, 0);
  const auto from_file = nlohmann::json::parse(sweep(file, {"--list", "--format", "json"}).out);
  const fs::path out = dir_ / "multi";
  const Result r = skillrun({"sweep", "--base", kTiny, "--axis", "model.width=32,64", "--axis",
                             R"(optimizer={"type":"adam","lr":0.01},{"type":"sgd","lr":0.5})", "--set",
                             "train.max_steps=100", "--out", out.string()});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "wrote " + (out / "multirun.json").string())) << r.out;
  EXPECT_TRUE(contains(r.out, "4 runs: 4 done")) << r.out;
  std::vector<std::string> names;
  for (const auto& run : from_file) {
    names.push_back(run["name"]);
    EXPECT_TRUE(fs::exists(out / run["name"].get<std::string>() / "summary.json")) << run["name"];
  }
  // The same runs with the same configs: the written file runs nothing again.
  const Result again = skillrun({"sweep", (out / "multirun.json").string(), "--out", out.string()});
  ASSERT_EQ(again.status, 0) << again.out << again.err;
  EXPECT_TRUE(contains(again.out, "skipped 4 finished runs")) << again.out;
  // And the same command again resumes (here: finds everything done).
  const Result same = skillrun({"sweep", "--base", kTiny, "--axis", "model.width=32,64", "--axis",
                                R"(optimizer={"type":"adam","lr":0.01},{"type":"sgd","lr":0.5})", "--set",
                                "train.max_steps=100", "--out", out.string()});
  EXPECT_TRUE(contains(same.out, "skipped 4 finished runs")) << same.out;
}

TEST_F(SweepCli, OtherAxesIntoTheSameOutputAreRefused) {
  const fs::path out = dir_ / "multi";
  ASSERT_EQ(skillrun({"sweep", "--base", kTiny, "--axis", "seed=1", "--set", "train.max_steps=20", "--out",
                      out.string()})
                .status,
            0);
  const Result other = skillrun({"sweep", "--base", kTiny, "--axis", "seed=1,2", "--out", out.string()});
  EXPECT_EQ(other.status, 2);
  EXPECT_TRUE(contains(other.err, "holds a sweep of other axes")) << other.err;
}

// A base whose file name is no safe directory name still names a sweep; a bad --index writes
// no multirun.json (nothing ran).
TEST_F(SweepCli, MultirunOfAnOddlyNamedBaseAndABadIndexWriteNothingWrong) {
  const fs::path odd = dir_ / "my tiny.json";
  fs::copy_file(kTiny, odd);
  const fs::path out = dir_ / "odd";
  const Result bad = skillrun({"sweep", "--base", odd.string(), "--axis", "seed=1,2", "--index", "5", "--out",
                               out.string()});
  EXPECT_EQ(bad.status, 2);
  EXPECT_TRUE(contains(bad.err, (out / "multirun.json").string())) << bad.err;  // named in the message
  EXPECT_FALSE(fs::exists(out / "multirun.json"));
  const Result good = skillrun({"sweep", "--base", odd.string(), "--axis", "seed=1", "--set", "train.max_steps=20",
                                "--out", out.string()});
  ASSERT_EQ(good.status, 0) << good.err;
  EXPECT_TRUE(contains(good.out, "sweep my_tiny-multirun:")) << good.out;
}

// A base or sweep file whose name starts with '.' names a sweep like any other (it was refused).
TEST_F(SweepCli, HiddenBaseOrSweepFileNamesASafeSweep) {
  const fs::path hidden = dir_ / ".hidden.json";
  fs::copy_file(kTiny, hidden);
  const fs::path out = dir_ / "h";
  const Result r = skillrun({"sweep", "--base", hidden.string(), "--axis", "seed=1", "--set", "train.max_steps=20",
                             "--out", out.string()});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "sweep _hidden-multirun:")) << r.out;
  const Result file = skillrun({"sweep", write_sweep(slurp(tiny_sweep(R"("seed": [1])")), ".s.json"), "--list"});
  ASSERT_EQ(file.status, 0) << file.err;
  EXPECT_TRUE(contains(file.out, "index  status")) << file.out;
}

// Every --pack the docs show is one the CLI takes (docs/SWEEPS.md showed `--pack all`).
TEST_F(SweepCli, EveryPackValueInTheDocsIsAccepted) {
  const std::string doc = slurp(std::string(SKILLRUN_SOURCE_DIR) + "/docs/SWEEPS.md");
  std::set<std::string> values;
  for (std::size_t at = doc.find("--pack "); at != std::string::npos; at = doc.find("--pack ", at + 1)) {
    const std::size_t start = at + 7, end = doc.find_first_of(" `|)]\n", start);
    const std::string value = doc.substr(start, end - start);
    if (!value.empty() && value != "N") values.insert(value);  // N: a placeholder
  }
  EXPECT_GE(values.size(), 3u);
  for (const std::string& value : values) {
    const Result r = sweep(kCiTinySweep, {"--pack", value, "--list", "--format", "count"});
    EXPECT_EQ(r.status, 0) << "--pack " << value << ": " << r.err;
  }
}

TEST_F(SweepCli, MultirunUsageErrorsExitTwo) {
  const std::string file = tiny_sweep(R"("seed": [1])");
  EXPECT_EQ(skillrun({"sweep", "--base", kTiny, "--axis", "seed"}).status, 2);
  EXPECT_EQ(skillrun({"sweep", "--base", kTiny}).status, 2);
  EXPECT_EQ(skillrun({"sweep", file, "--base", kTiny, "--axis", "seed=1"}).status, 2);
  EXPECT_EQ(skillrun({"sweep", file, "--axis", "seed=1"}).status, 2);
  EXPECT_EQ(skillrun({"sweep"}).status, 2);
  EXPECT_EQ(skillrun({"sweep", "--base", kTiny, "--axis", "seed=1,,2"}).status, 2);
  EXPECT_EQ(skillrun({"sweep", "--base", kTiny, "--axis", "model.widht=32", "--list"}).status, 2);
}

}  // namespace
