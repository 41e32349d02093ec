// `skillrun status` on run directories made by hand, as a hostile or unlucky user leaves them:
// a lock held by some other process, control characters in run.lock and in names, an unreadable
// metrics.csv, runs deep under the path, a huge metrics.csv, sweep.json names that try to leave
// the sweep's directory. Each listing must stay whole and true, and print nothing raw.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_support.h"

namespace {

namespace fs = std::filesystem;
using skillrun_test::Result;
using skillrun_test::shell_quote;

using skillrun_test::contains;

// Whether `text` holds a byte that would act on a terminal: a control character other than the
// newline that ends each line, DEL, or ESC.
testing::AssertionResult printable(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7f)
      return testing::AssertionFailure() << "raw byte " << int(c) << " at " << i << " in\n" << text;
  }
  return testing::AssertionSuccess();
}

const std::string kHeader = "step,wall_s,train_loss,mean_loss,loss_0,acc_0\n";

// A metrics.csv row of step `step` written `seconds` after the start.
std::string row(int64_t step, double seconds) {
  return std::to_string(step) + "," + std::to_string(seconds) + ",0.5,0.5,0.5,0.9\n";
}

class StatusCli : public skillrun_test::CliTest {
 protected:
  // A run directory as `skillrun run` leaves it: config.json (train.max_steps), metrics.csv with
  // a row every 10 steps up to `steps` (one per second) and summary.json with `status`.
  fs::path write_run(const fs::path& d, const std::string& status, int64_t steps, int64_t max_steps = 1000) {
    fs::create_directories(d);
    std::ofstream(d / "config.json") << nlohmann::json{{"train", {{"max_steps", max_steps}}}}.dump();
    std::string metrics = kHeader;
    for (int64_t s = 0; s <= steps; s += 10) metrics += row(s, static_cast<double>(s) / 10);
    std::ofstream(d / "metrics.csv") << metrics;
    std::ofstream(d / "summary.json") << nlohmann::json{{"status", status}, {"steps", steps}}.dump();
    return d;
  }

  // Holds the flock on d/run.lock from this process, as an unrelated program would, after
  // writing `note` into it (a holder that died long ago left it there). Released by TearDown.
  void hold_lock(const fs::path& d, const std::string& note) {
    std::ofstream(d / "run.lock") << note;
    const int fd = ::open((d / "run.lock").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    held_.push_back(fd);
  }

  void TearDown() override {
    for (const int fd : held_) ::close(fd);
    CliTest::TearDown();
  }

  std::vector<int> held_;
};

TEST_F(StatusCli, AFinishedRunIsShownFinishedWhateverHoldsItsLockAndALiveOneByItsTrueHolder) {
  const fs::path done = write_run(dir_ / "done", "converged", 450);
  const fs::path live = write_run(dir_ / "live", "running", 200);
  // run.lock still names the process that wrote it; another one (this test) holds the lock now.
  hold_lock(done, "pid 999999901\n");
  hold_lock(live, "pid 999999902\n");
  const Result r = skillrun({"status", dir_.string()});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "2 runs: 1 done, 1 running")) << r.out;
  EXPECT_FALSE(contains(r.out, "running: " + done.string())) << r.out;
  EXPECT_TRUE(contains(r.out, "running: " + live.string() + " (pid " + std::to_string(::getpid()))) << r.out;
  const auto json = nlohmann::json::parse(skillrun({"status", dir_.string(), "--format", "json"}).out);
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["status"], "done");
  EXPECT_EQ(json[1]["status"], "running");
}

TEST_F(StatusCli, ControlCharactersFromRunFilesAndNamesArePrintedEscaped) {
  const fs::path odd = write_run(dir_ / "odd\x1b[2J\nname", "converged", 100);
  const fs::path live = write_run(dir_ / "live", "running", 50);
  hold_lock(live, "pid 1\x1b]0;owned\x07\r\x1b[31mred\n");
  const fs::path failed = write_run(dir_ / "failed", "running", 30);
  std::ofstream(failed / "failed.json")
      << nlohmann::json{{"exit_code", 1}, {"signal", 0}, {"output_tail", "error: \x1b[1mbold\x7f\n"}}.dump();
  const Result r = skillrun({"status", dir_.string()});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(printable(r.out));
  EXPECT_TRUE(contains(r.out, "odd\\x1b[2J\\nname")) << r.out;
  EXPECT_TRUE(contains(r.out, "\\x1b]0;owned\\x07\\r\\x1b[31mred")) << r.out;
  EXPECT_TRUE(contains(r.out, "error: \\x1b[1mbold\\x7f")) << r.out;
  const Result j = skillrun({"status", dir_.string(), "--format", "json"});
  ASSERT_EQ(j.status, 0) << j.err;
  EXPECT_TRUE(printable(j.out));
  EXPECT_EQ(nlohmann::json::parse(j.out).size(), 3u);
}

TEST_F(StatusCli, AnUnreadableRunIsReportedAsSuchAndTheOthersAreListed) {
  write_run(dir_ / "a", "converged", 100);
  const fs::path broken = write_run(dir_ / "b", "running", 100);
  fs::remove(broken / "metrics.csv");
  fs::create_directory(broken / "metrics.csv");  // unreadable as a file, whoever runs the test
  write_run(dir_ / "c", "running", 100);
  // FIFOs in place of files: a reader that opens them waits for a writer forever.
  const fs::path fifo_metrics = write_run(dir_ / "d", "running", 100),
                 fifo_summary = write_run(dir_ / "e", "running", 100);
  fs::remove(fifo_metrics / "metrics.csv");
  fs::remove(fifo_summary / "summary.json");
  ASSERT_EQ(::mkfifo((fifo_metrics / "metrics.csv").c_str(), 0644), 0);
  ASSERT_EQ(::mkfifo((fifo_summary / "summary.json").c_str(), 0644), 0);
  const std::string status = "timeout 60 " + shell_quote(SKILLRUN_BIN) + " status " + shell_quote(dir_.string());
  const Result r = sh(status);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "5 runs: 1 done, 1 incomplete, 1 killed, 2 unreadable")) << r.out;
  EXPECT_TRUE(contains(r.out, "unreadable: " + broken.string() + " (cannot read " + (broken / "metrics.csv").string()))
      << r.out;
  EXPECT_TRUE(contains(r.out, "unreadable: " + fifo_metrics.string() + " (")) << r.out;
  const Result j = sh(status + " --format json");
  ASSERT_EQ(j.status, 0) << j.out << j.err;
  const auto json = nlohmann::json::parse(j.out);
  ASSERT_EQ(json.size(), 5u);
  EXPECT_EQ(json[1]["status"], "unreadable");
  EXPECT_EQ(json[3]["status"], "unreadable");
  EXPECT_EQ(json[4]["status"], "incomplete");
  EXPECT_EQ(json[4]["detail"], "summary.json unreadable");
}

TEST_F(StatusCli, FindsRunsAsDeepAsAnalyzeAndFollowsNoLinkInALoop) {
  const fs::path deep = write_run(dir_ / "a" / "b" / "c" / "d" / "e" / "f" / "run", "converged", 100);
  fs::create_directory_symlink(dir_, dir_ / "a" / "loop");
  const Result r = skillrun({"status", dir_.string()});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "1 run: 1 done")) << r.out;
  EXPECT_TRUE(contains(r.out, "a/b/c/d/e/f/run")) << r.out;
  // analyze finds the same run there.
  const Result a = skillrun({"analyze", dir_.string(), "--format", "json"});
  EXPECT_TRUE(contains(a.out + a.err, "a/b/c/d/e/f/run")) << a.out << a.err;
}

// Makes run/metrics.csv 8 GiB long, sparse: a hole between the header and its last rows, of
// steps 1000 to 1100 one second per 10 steps, and a torn line after them.
void write_huge_metrics(const fs::path& run) {
  std::ofstream out(run / "metrics.csv", std::ios::binary | std::ios::trunc);
  out << kHeader << row(0, 0);
  out.seekp(int64_t{8} << 30);
  out << "\n";
  for (int64_t s = 1000; s <= 1100; s += 10) out << row(s, 100 + static_cast<double>(s - 1000) / 10);
  out << "1110,111.0,0.5";  // torn: the run is writing it
}

// `skillrun ARGS` under a 2 GiB address-space limit: a reader of a whole 8 GiB file fails.
std::string limited(const std::vector<std::string>& args) {
  // Appended piece by piece: GCC 12 warns (-Wrestrict, falsely) on "literal" + temporary.
  std::string cmd = "ulimit -v 2097152; ";
  cmd.append(shell_quote(SKILLRUN_BIN));
  for (const std::string& a : args) cmd.append(" ").append(shell_quote(a));
  return cmd;
}

// status reads the first line of metrics.csv and its end, never the whole file.
TEST_F(StatusCli, AHugeMetricsFileCostsOnlyItsTail) {
  write_huge_metrics(write_run(dir_ / "huge", "running", 0, 2000));
  const Result r = sh(limited({"status", dir_.string()}));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "1100/2000")) << r.out;
  EXPECT_TRUE(contains(r.out, "10.0")) << r.out;  // steps/s over the last rows
}

// So does the cost estimate of `sweep --list`, which counts an unfinished run's steps left.
TEST_F(StatusCli, SweepListEstimatesFromTheEndOfAHugeMetricsFile) {
  nlohmann::json base =
      nlohmann::json::parse(skillrun_test::slurp(std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json"));
  base["train"]["max_steps"] = 2000;
  const fs::path sweep = dir_ / "sweep.json", out = dir_ / "out";
  std::ofstream(sweep) << nlohmann::json{{"base", base}, {"axes", {{"seed", {1}}}}}.dump();
  write_huge_metrics(write_run(out / "seed=1", "running", 0, 2000));
  const Result r = sh(limited({"sweep", sweep.string(), "--out", out.string(), "--list"}));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "cost: 1 unfinished run, up to 900 steps")) << r.out;
}

TEST_F(StatusCli, NamesInSweepJsonThatAreNoDirectoryOfTheSweepAreNeverRead) {
  const fs::path out = dir_ / "sweeps" / "out";
  write_run(out / "ok", "converged", 100);
  // Runs outside the sweep's directory that the hostile names point at.
  write_run(dir_ / "escaped", "converged", 770);
  write_run(dir_ / "sweeps" / "out" / "ok" / "inner", "converged", 880);
  nlohmann::json runs = nlohmann::json::array();
  const std::vector<std::string> names = {"ok", "../../escaped", (dir_ / "escaped").string(), "ok/inner", "..", ".",
                                          "",   "x\x1b[31m\n"};
  for (std::size_t i = 0; i < names.size(); ++i) runs.push_back({{"index", i}, {"name", names[i]}});
  runs.push_back({{"index", names.size()}, {"name", 7}});
  std::ofstream(out / "sweep.json") << nlohmann::json{{"name", "hostile"}, {"runs", runs}}.dump();
  const Result r = skillrun({"status", out.string()});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(printable(r.out));
  EXPECT_TRUE(contains(r.out, "9 runs: 1 done, 8 invalid")) << r.out;
  EXPECT_FALSE(contains(r.out, "770")) << r.out;
  EXPECT_FALSE(contains(r.out, "880")) << r.out;
  EXPECT_TRUE(contains(r.out, "x\\x1b[31m\\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "../../escaped")) << r.out;
  const auto json = nlohmann::json::parse(skillrun({"status", out.string(), "--format", "json"}).out);
  ASSERT_EQ(json.size(), 9u);
  EXPECT_EQ(json[0]["status"], "done");
  for (std::size_t i = 1; i < json.size(); ++i) EXPECT_EQ(json[i]["status"], "invalid") << json[i].dump();
}

// A run that no process trains shows its average pace (steps over its wall time), not the pace
// of its last rows: here 1000 steps in 100 s with a fast last stretch, 10.0 steps/s and not 50.
TEST_F(StatusCli, AFinishedRunShowsItsAveragePaceNotItsLastInterval) {
  const fs::path d = dir_ / "fast-end";
  fs::create_directories(d);
  std::ofstream(d / "config.json") << nlohmann::json{{"train", {{"max_steps", 1000}}}}.dump();
  std::string metrics = kHeader;
  for (int64_t s = 0; s <= 500; s += 50) metrics += row(s, static_cast<double>(s) / 500 * 90);  // 500 in 90 s
  for (int64_t s = 550; s <= 1000; s += 50) metrics += row(s, 90 + static_cast<double>(s - 500) / 50);  // then 50/s
  std::ofstream(d / "metrics.csv") << metrics;
  std::ofstream(d / "summary.json") << nlohmann::json{{"status", "max_steps"}, {"steps", 1000}}.dump();
  const Result r = skillrun({"status", d.string(), "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto runs = nlohmann::json::parse(r.out);
  ASSERT_EQ(runs.size(), 1u) << r.out;
  EXPECT_NEAR(runs[0]["steps_per_second"].get<double>(), 10.0, 1e-9) << r.out;
}

}  // namespace
