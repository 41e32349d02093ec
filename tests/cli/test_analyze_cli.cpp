// `skillrun analyze` as a user meets it: hand-written run directories (2 optimizers × 2 lrs,
// numbers chosen so every expected value is worked out here), a real run of configs/ci/tiny.json,
// the files in --out, exit 2 for no runs or bad flags, and scripts/plot.py's figures.
#include "cli_support.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace {

namespace fs = std::filesystem;
using skillrun_test::Result;
using skillrun_test::shell_quote;
using skillrun_test::slurp;

std::vector<std::string> lines_of(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The cells of a CSV line without quoted cells.
std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> cells{""};
  for (char c : line)
    if (c == ',')
      cells.emplace_back();
    else
      cells.back().push_back(c);
  return cells;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The Python that `analyze --plot` would use, or empty when none has matplotlib.
std::string python_with_matplotlib() {
  for (const char* python : {"python3", "/usr/bin/python3"})
    if (std::system((std::string(python) + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0) return python;
  return "";
}

class AnalyzeCli : public skillrun_test::CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    fs::create_directories(dir_ / "runs");
  }

  // A 3-subtask run whose eval rows (every 100 steps up to `last`) put subtask k at 0.01 bits
  // from step T[k] on and at 1 bit before; T[k] < 0 means never learned.
  // `patch` is merged into its config.json (JSON merge patch), e.g. another seed or momentum.
  void write_run(const std::string& name, const std::string& optimizer, double lr, const std::vector<int>& T,
                 const std::string& status, int last, bool truncate = false, int width = 64,
                 const nlohmann::json& patch = nlohmann::json::object()) {
    const fs::path d = dir_ / "runs" / name;
    fs::create_directories(d);
    nlohmann::json config = {{"seed", 0},
                             {"optimizer", {{"type", optimizer}, {"lr", lr}}},
                             {"model", {{"width", width}}},
                             {"task", {{"type", "sparse_parity"}, {"n_tasks", 3}, {"zipf_exponent", 1.4}}},
                             {"eval", {{"tau_bits", 0.1}}}};
    config.merge_patch(patch);
    std::ofstream(d / "config.json") << config.dump(2);
    std::ofstream m(d / "metrics.csv");
    m << "step,wall_s,train_loss,mean_loss,loss_0,loss_1,loss_2,acc_0,acc_1,acc_2\n";
    for (int step = 0; step <= last; step += 100) {
      m << step << ",0.1," << (step ? "0.5" : "") << "," << (step == last ? 0.02 : 0.9);
      for (int t : T) m << "," << (t >= 0 && step >= t ? 0.01 : 1.0);
      m << ",0.5,0.5,0.5\n";
    }
    if (truncate) m << last + 100 << ",0.1,0.5";
    nlohmann::json Tk = nlohmann::json::array();
    for (int t : T) Tk.push_back(t >= 0 ? nlohmann::json(t) : nlohmann::json(nullptr));
    std::ofstream(d / "summary.json") << nlohmann::json{{"status", status}, {"steps", last}, {"T_k", Tk}, {"tau_bits", 0.1}}.dump();
  }

  // nmd: lr 0.01 learns all (T = 300, 900, 1500), lr 0.001 learns 2 of 3 (max_steps at 2000).
  // muon: lr 0.01 learns all at 200, 300, 400; lr 0.001 all at 500, 800, 1000.
  void write_sweep() {
    write_run("nmd-lr0.01", "nmd", 0.01, {300, 900, 1500}, "converged", 1500);
    write_run("nmd-lr0.001", "nmd", 0.001, {700, 1800, -1}, "max_steps", 2000);
    write_run("muon-lr0.01", "muon", 0.01, {200, 300, 400}, "converged", 400);
    write_run("muon-lr0.001", "muon", 0.001, {500, 800, 1000}, "converged", 1000);
  }

  // Muon with momentum 0.95 and 0 (two variants), lrs 0.01 and 0.001, seeds 0 and 1:
  //   momentum 0.95: lr 0.01 T(1) = 400, 600 (mean 500); lr 0.001 T(1) = 900, 900;
  //   momentum 0:    lr 0.01 T(1) = 900, 1100 (mean 1000); lr 0.001 T(1) = 800, 800.
  // Best lr within each variant: 0.01 (500) for 0.95, 0.001 (800) for 0. Pooled as if the two
  // momenta were seeds, lr 0.01 (mean 750) would beat 0.001 (850) for one "muon".
  void write_momentum_sweep() {
    const auto run = [&](double momentum, double lr, int seed, const std::vector<int>& T) {
      const std::string name = fmt_name(momentum, lr, seed);
      write_run(name, "muon", lr, T, "converged", T.back(), false, 64,
                {{"seed", seed}, {"optimizer", {{"momentum", momentum}, {"msign", "ns5"}}}});
    };
    run(0.95, 0.01, 0, {200, 300, 400});
    run(0.95, 0.01, 1, {200, 300, 600});
    run(0.95, 0.001, 0, {300, 600, 900});
    run(0.95, 0.001, 1, {300, 600, 900});
    run(0.0, 0.01, 0, {300, 600, 900});
    run(0.0, 0.01, 1, {300, 700, 1100});
    run(0.0, 0.001, 0, {200, 500, 800});
    run(0.0, 0.001, 1, {200, 500, 800});
  }
  static std::string fmt_name(double momentum, double lr, int seed) {
    std::ostringstream s;
    s << "muon-m" << momentum << "-lr" << lr << "-s" << seed;
    return s.str();
  }

  // A real icl_linreg run by `skillrun run`: d = 4, kappa_w = 2, every step evaluated.
  fs::path run_icl(const std::string& name, const std::string& optimizer, double kappa_x, const std::string& schedule) {
    const fs::path config = dir_ / (name + ".json");
    const nlohmann::json c = {
        {"name", name}, {"seed", 0}, {"device", "cpu"}, {"precision", "fp64"},
        {"task", {{"type", "icl_linreg"}, {"d", 4}, {"sigma_x", {{"kappa", kappa_x}}}, {"sigma_w", {{"kappa", 2}}}}},
        {"optimizer", {{"type", optimizer}, {"lr", 1.0}}},
        {"train", {{"max_steps", 300}, {"stop_when_learned", true}, {"lr_schedule", {{"type", schedule}}}}},
        {"eval", {{"every", 1}, {"epsilon", 1e-4}}}};
    std::ofstream(config) << c.dump(2);
    const fs::path run = dir_ / "runs" / name;
    const Result r = skillrun({"run", config.string(), "--out", run.string(), "--no-progress", "--log-level", "warn"});
    EXPECT_EQ(r.status, 0) << r.err;
    return run;
  }

  // specgd (geometric schedule) at kappa_x 1; gd (lr 1) at kappa_x 1 and 4.
  std::vector<fs::path> run_icl_grid() {
    return {run_icl("specgd-k1", "specgd", 1, "geometric"), run_icl("gd-k1", "gd", 1, "constant"),
            run_icl("gd-k4", "gd", 4, "constant")};
  }
};

// The whitespace-separated words of a line.
std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// Each real run is its own group (one seed, one lr): its row of the best-lr table shows the
// steps_to_epsilon its trainer wrote in summary.json ("—" when not reached).
TEST_F(AnalyzeCli, IclRunsGetAStepsToEpsilonTable) {
  const std::vector<fs::path> runs = run_icl_grid();
  const fs::path out = dir_ / "analysis";
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--out", out.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<std::pair<std::string, std::string>> rows = {{"specgd", "kappa=1"}, {"gd", "kappa=1"}, {"gd", "kappa=4"}};
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto summary = nlohmann::json::parse(slurp(runs[i] / "summary.json"));
    ASSERT_EQ(summary["task"], "icl_linreg");
    const std::string expected =
        summary["steps_to_epsilon"].is_null() ? "—" : std::to_string(summary["steps_to_epsilon"].get<int64_t>());
    const std::string reached = summary["steps_to_epsilon"].is_null() ? "0/1" : "1/1";
    int found = 0;
    for (const auto& line : lines_of(r.out)) {
      const auto w = words(line);
      // optimizer, sigma_x, sigma_w, lr, reached, steps to epsilon, ...
      if (w.size() >= 6 && w[0] == rows[i].first && w[1] == rows[i].second && w[2] == "kappa=2" && w[4] == reached) {
        EXPECT_EQ(w[5], expected) << line;
        ++found;
      }
    }
    EXPECT_EQ(found, 1) << rows[i].first << " " << rows[i].second << "\n" << r.out;
  }
  EXPECT_TRUE(contains(r.out, "Fig. 5 grid")) << r.out;
  EXPECT_EQ(lines_of(slurp(out / "icl_table.csv")).size(), 1u + 3u);  // header + one row per (group, lr)
  EXPECT_EQ(lines_of(slurp(out / "icl_runs.csv")).size(), 1u + 3u);
  EXPECT_FALSE(fs::exists(out / "runs.csv"));  // no sparse_parity runs: no empty sparse tables
  const auto j = nlohmann::json::parse(slurp(out / "analysis.json"));
  EXPECT_EQ(j["icl"]["groups"].size(), 3u);
  EXPECT_FALSE(j.contains("optimizers"));
  EXPECT_TRUE(contains(slurp(out / "summary.md"), "## In-context linear regression"));
}

// An assoc_memory run (no model.width: the default group keys must not require it) is analysed
// like a sparse-parity run, its p_k the groups' summed frequencies (0.8971 for group 0 of 64
// facts at beta 1.5 in 4 groups) and its predicted exponent the paper's (1 - 1/beta for GD).
TEST_F(AnalyzeCli, AssocMemoryRunIsAnalysedWithItsGroupFrequencies) {
  const fs::path run = dir_ / "runs" / "assoc";
  const Result trained = skillrun({"run", std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/assoc_tiny.json", "--out",
                                   run.string(), "--set", "train.max_steps=300", "--set", "task.label_noise=0.1",
                                   "--no-progress", "--log-level", "warn"});
  ASSERT_EQ(trained.status, 0) << trained.err;
  const fs::path out = dir_ / "analysis";
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--out", out.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "0.8971")) << r.out;
  const std::vector<std::string> rows = lines_of(slurp(out / "runs.csv"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_TRUE(contains(rows[1], ",0.3333")) << rows[1];  // alpha_s_predicted = 1 - 1/1.5
}

// Sparse-parity and icl runs side by side: the sparse report is exactly what it is alone, the
// icl one follows it.
TEST_F(AnalyzeCli, MixedRunsKeepTheSparseReportUnchanged) {
  write_sweep();
  const Result alone = skillrun({"analyze", (dir_ / "runs").string(), "--out", (dir_ / "alone").string()});
  ASSERT_EQ(alone.status, 0) << alone.err;
  run_icl("gd-k1", "gd", 1, "constant");
  const Result mixed = skillrun({"analyze", (dir_ / "runs").string(), "--out", (dir_ / "mixed").string()});
  ASSERT_EQ(mixed.status, 0) << mixed.err;
  EXPECT_TRUE(mixed.out.starts_with(alone.out)) << mixed.out;
  EXPECT_TRUE(contains(mixed.out.substr(alone.out.size()), "1 icl_linreg run (converged)")) << mixed.out;
  for (const char* f : {"runs.csv", "coverage.csv", "sal.csv"})
    EXPECT_EQ(slurp(dir_ / "mixed" / f), slurp(dir_ / "alone" / f)) << f;
  auto j = nlohmann::json::parse(slurp(dir_ / "mixed" / "analysis.json"));
  EXPECT_EQ(j["icl"]["runs"].size(), 1u);
  j.erase("icl");
  EXPECT_EQ(j, nlohmann::json::parse(slurp(dir_ / "alone" / "analysis.json")));
  EXPECT_TRUE(slurp(dir_ / "mixed" / "summary.md").starts_with(slurp(dir_ / "alone" / "summary.md")));
}

// Killed hard: no summary.json and half a row at the end.
TEST_F(AnalyzeCli, KilledIclRunIsReadWithAWarning) {
  const fs::path run = run_icl("gd-k4", "gd", 4, "constant");
  fs::remove(run / "summary.json");
  std::ofstream(run / "metrics.csv", std::ios::app) << "301,0.1,1,0.5";
  const Result r = skillrun({"analyze", run.string(), "--format", "csv"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "partial last line")) << r.err;
  const auto rows = lines_of(r.out);  // icl_table.csv: the only table when there are only icl runs
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_TRUE(rows[0].starts_with("optimizer,kappa_x,")) << r.out;
  EXPECT_TRUE(rows[1].starts_with("gd,4,,2,,")) << r.out;
}

TEST_F(AnalyzeCli, UnknownTaskTypeExitsOneNamingTheConfig) {
  const fs::path d = dir_ / "runs" / "odd";
  fs::create_directories(d);
  std::ofstream(d / "config.json") << R"({"task": {"type": "vision"}})";
  std::ofstream(d / "metrics.csv") << "step,wall_s\n";
  const Result r = skillrun({"analyze", (dir_ / "runs").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "config.json")) << r.err;
  EXPECT_TRUE(contains(r.err, "vision")) << r.err;
}

TEST_F(AnalyzeCli, WritesEveryOutputFile) {
  write_sweep();
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--out", (dir_ / "analysis").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* f : {"runs.csv", "coverage.csv", "sal.csv", "summary.md", "analysis.json"}) {
    EXPECT_TRUE(fs::exists(dir_ / "analysis" / f)) << f;
    EXPECT_GT(fs::file_size(dir_ / "analysis" / f), 0u) << f;
  }
  EXPECT_EQ(lines_of(slurp(dir_ / "analysis" / "runs.csv")).size(), 1u + 4u);  // header + one row per run
  // 4 groups + 2 optimizer views, 10 values of p each.
  EXPECT_EQ(lines_of(slurp(dir_ / "analysis" / "coverage.csv")).size(), 1u + 6u * 10u);
}

// SAL(1) of nmd at lr 0.01 = (1500 − 300)/1500 = 0.8; of muon at 0.01 = (400 − 200)/400 = 0.5.
TEST_F(AnalyzeCli, BestLrIsTheFastestToFullCoverage) {
  write_sweep();
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["optimizers"].size(), 2u);
  const auto& muon = j["optimizers"][0];
  const auto& nmd = j["optimizers"][1];
  EXPECT_EQ(muon["optimizer"], "muon");
  EXPECT_EQ(muon["lr"], 0.01);  // T(1) 400 beats 1000
  EXPECT_EQ(nmd["lr"], 0.01);   // the only lr that learns all three
  EXPECT_DOUBLE_EQ(nmd["sal"].back()["mean"].get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(muon["sal"].back()["mean"].get<double>(), 0.5);
}

// Runs that differ in a config key other than the seed, lr and width are variants: each gets its
// own best lr, its own column and its own analysis.json entry; nothing averages them together.
TEST_F(AnalyzeCli, SweepOverANonLrKeyIsSplitIntoVariantsNeverAveraged) {
  write_momentum_sweep();
  const fs::path out = dir_ / "analysis";
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--out", out.string()});
  ASSERT_EQ(r.status, 0) << r.err;

  const auto j = nlohmann::json::parse(slurp(out / "analysis.json"));
  ASSERT_EQ(j["optimizers"].size(), 2u) << j["optimizers"].dump();
  const auto& m0 = j["optimizers"][0];
  const auto& m95 = j["optimizers"][1];
  EXPECT_EQ(m0["optimizer"], "muon");
  EXPECT_EQ(m0["variant"], "muon, momentum=0");
  EXPECT_EQ(m0["label"], "muon, momentum=0 (lr 0.001)");
  EXPECT_EQ(m0["lr"], 0.001);
  EXPECT_EQ(m0["runs"].size(), 2u);
  EXPECT_DOUBLE_EQ(m0["coverage"].back()["mean"].get<double>(), 800);
  EXPECT_EQ(m95["label"], "muon, momentum=0.95 (lr 0.01)");
  EXPECT_EQ(m95["lr"], 0.01);
  EXPECT_EQ(m95["runs"].size(), 2u);
  EXPECT_DOUBLE_EQ(m95["coverage"].back()["mean"].get<double>(), 500);
  EXPECT_EQ(m95["variant_values"], (nlohmann::json{{"optimizer.momentum", 0.95}}));

  // coverage.csv: the momentum is a key column; each variant's best-lr row has its own T(1).
  const std::vector<std::string> rows = lines_of(slurp(out / "coverage.csv"));
  ASSERT_FALSE(rows.empty());
  const std::vector<std::string> header = split_commas(rows[0]);
  const auto col = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    EXPECT_NE(it, header.end()) << name << " in " << rows[0];
    return static_cast<std::size_t>(it - header.begin());
  };
  const std::size_t view = col("view"), momentum = col("optimizer.momentum"), lr = col("optimizer.lr"), p = col("p"),
                    mean = col("mean"), runs = col("runs");
  std::map<std::string, std::string> best_t1;  // momentum (as config.json has it) -> "lr mean runs" at p = 1
  int group_rows_p1 = 0;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const std::vector<std::string> c = split_commas(rows[i]);
    if (c[p] != "1") continue;
    if (c[view] == "group") {
      ++group_rows_p1;
      EXPECT_EQ(c[runs], "2") << rows[i];
    }
    if (c[view] == "best_lr") best_t1[c[momentum]] = c[lr] + " " + c[mean] + " " + c[runs];
  }
  EXPECT_EQ(group_rows_p1, 4);  // 2 momenta × 2 lrs, each over its 2 seeds
  EXPECT_EQ(best_t1, (std::map<std::string, std::string>{{"0.0", "0.001 800 2"}, {"0.95", "0.01 500 2"}}));

  // The T_k, T(p) and SAL tables have one column per variant.
  const std::vector<std::string> out_lines = lines_of(r.out);
  int tables_with_both = 0;
  for (const std::string& line : out_lines)
    tables_with_both += contains(line, "muon, momentum=0 (lr 0.001)") && contains(line, "muon, momentum=0.95 (lr 0.01)");
  EXPECT_EQ(tables_with_both, 3) << r.out;
  // The best-lr table: one row per variant.
  EXPECT_TRUE(contains(r.out, "muon, momentum=0 ")) << r.out;
}

// Runs of one variant that ran on different devices or commits are named under the table.
TEST_F(AnalyzeCli, RunsOfOneVariantThatDifferOutsideTheConfigAreNoted) {
  write_run("a", "muon", 0.01, {200, 300, 400}, "converged", 400, false, 64, {{"seed", 0}});
  write_run("b", "muon", 0.01, {200, 300, 400}, "converged", 400, false, 64, {{"seed", 1}});
  for (const auto& [name, device, commit] : {std::tuple("a", "cpu (OpenBLAS, 2 threads)", "abc123"),
                                             std::tuple("b", "cuda (NVIDIA H100)", "abc123")}) {
    const fs::path f = dir_ / "runs" / name / "summary.json";
    auto s = nlohmann::json::parse(slurp(f));
    s["device"] = device;
    s["git_commit"] = commit;
    std::ofstream(f) << s.dump();
  }
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--format", "md"});  // notes unwrapped
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "Group muon 64 0.01: its runs differ in device: cpu (OpenBLAS, 2 threads) (1 run), "
                              "cuda (NVIDIA H100) (1 run).")) << r.out;
  EXPECT_TRUE(contains(r.out, "muon (lr 0.01): its runs differ in device: cpu (OpenBLAS, 2 threads) (1 run), "
                              "cuda (NVIDIA H100) (1 run).")) << r.out;
  EXPECT_FALSE(contains(r.out, "git_commit")) << r.out;  // the same in both
}

// --group-by still overrides the group tables: pooling the momenta there is said under them.
TEST_F(AnalyzeCli, GroupByThatPoolsVariantsSaysSo) {
  write_momentum_sweep();
  const Result r =
      skillrun({"analyze", (dir_ / "runs").string(), "--group-by", "optimizer.type,optimizer.lr", "--format", "md"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "Groups muon 0.001; muon 0.01: the runs of each differ in optimizer.momentum (0, 0.95).")) << r.out;
  // the per-variant views are still split
  EXPECT_TRUE(contains(r.out, "muon, momentum=0.95 (lr 0.01)")) << r.out;
}

// --compare optimizer.type restores one entry per optimizer type, noting what it pools.
TEST_F(AnalyzeCli, CompareNamesTheKeysOfTheEntries) {
  write_momentum_sweep();
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--compare", "optimizer.type", "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["optimizers"].size(), 1u);
  EXPECT_EQ(j["optimizers"][0]["label"], "muon (lr 0.01)");
  EXPECT_EQ(j["optimizers"][0]["runs"].size(), 4u);
  const Result bad = skillrun({"analyze", (dir_ / "runs").string(), "--compare", "optimizer.nope"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_TRUE(contains(bad.err, "--compare")) << bad.err;
}

TEST_F(AnalyzeCli, TablePrintsDashForATimeNotReached) {
  write_run("nmd-lr0.001", "nmd", 0.001, {700, 1800, -1}, "max_steps", 2000);
  const Result r = skillrun({"analyze", (dir_ / "runs").string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "max_steps")) << r.out;
  // T_k table row of subtask 2 ends in "—"; T(1) and SAL(1) are "—" too.
  bool dash_row = false;
  for (const auto& line : lines_of(r.out)) {
    const std::string row = line.substr(std::min(line.size(), line.find_first_not_of(' ')));
    dash_row |= row.starts_with("2 ") && row.ends_with("—");
  }
  EXPECT_TRUE(dash_row) << r.out;
}

// --tau 0.005: every loss in the fixture is 0.01 or 1 bit, so nothing is ever learned.
TEST_F(AnalyzeCli, TauOnTheCommandLineReplacesTheRunsOwn) {
  write_run("muon", "muon", 0.01, {200, 300, 400}, "converged", 400);
  const Result own = skillrun({"analyze", (dir_ / "runs").string(), "--format", "json"});
  const Result strict = skillrun({"analyze", (dir_ / "runs").string(), "--format", "json", "--tau", "0.005"});
  ASSERT_EQ(own.status, 0) << own.err;
  ASSERT_EQ(strict.status, 0) << strict.err;
  EXPECT_EQ(nlohmann::json::parse(own.out)["runs"][0]["T_k"], nlohmann::json({200, 300, 400}));
  EXPECT_EQ(nlohmann::json::parse(strict.out)["runs"][0]["T_k"], nlohmann::json({nullptr, nullptr, nullptr}));
}

// A --tau below the tau the runs stopped at says why their later subtasks show as not learned.
TEST_F(AnalyzeCli, StricterTauThanTheRunsStoppedAtSaysSo) {
  write_run("muon", "muon", 0.01, {200, 300, 400}, "converged", 400);
  write_run("nmd", "nmd", 0.001, {700, 1800, -1}, "max_steps", 2000);
  const Result strict = skillrun({"analyze", (dir_ / "runs").string(), "--tau", "0.005"});
  ASSERT_EQ(strict.status, 0) << strict.err;
  EXPECT_NE(strict.err.find("below the tau = 0.1 at which 1 of the 2 runs stopped (train.stop_when_learned)"),
            std::string::npos)
      << strict.err;
  EXPECT_NE(strict.err.find("--set eval.tau_bits=0.005"), std::string::npos) << strict.err;
  const Result looser = skillrun({"analyze", (dir_ / "runs").string(), "--tau", "0.2"});
  EXPECT_EQ(looser.err.find("stop_when_learned"), std::string::npos) << looser.err;
}

TEST_F(AnalyzeCli, TruncatedMetricsIsReadWithAWarning) {
  write_run("killed", "muon", 0.01, {200, 300, 400}, "running", 400, /*truncate=*/true);
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--format", "csv"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "partial last line")) << r.err;
  EXPECT_TRUE(contains(r.out, ",running,true,400,")) << r.out;  // status, metrics_truncated, steps
}

TEST_F(AnalyzeCli, DirectoryWithoutRunsExitsTwo) {
  const Result r = skillrun({"analyze", (dir_ / "runs").string()});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "no run directories")) << r.err;
  EXPECT_FALSE(contains(r.err, "terminate called"));
}

TEST_F(AnalyzeCli, BadPValueExitsTwo) {
  write_sweep();
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--p", "0.5,1.5"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "1.5")) << r.err;
}

TEST_F(AnalyzeCli, UnknownGroupKeyExitsTwo) {
  write_sweep();
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--group-by", "optimizer.typo"});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "optimizer.typo")) << r.err;
}

// A real run directory written by `skillrun run`: analyze recomputes the same T_k as the run.
TEST_F(AnalyzeCli, RealRunMatchesItsOwnSummary) {
  const fs::path run = dir_ / "runs" / "tiny";
  const Result trained = skillrun({"run", std::string(SKILLRUN_SOURCE_DIR) + "/configs/ci/tiny.json", "--out", run.string(),
                                   "--no-progress", "--log-level", "warn"});
  ASSERT_EQ(trained.status, 0) << trained.err;
  const Result r = skillrun({"analyze", run.string(), "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(contains(r.err, "differ")) << r.err;
  const auto summary = nlohmann::json::parse(slurp(run / "summary.json"));
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["runs"][0]["T_k"], summary["T_k"]);
  EXPECT_EQ(j["runs"][0]["status"], "converged");
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken run directories: a run no skillrun could have written is named (file and
// line, or file and key) and skipped; the other runs are analysed as if it were not there.

// Steps going backwards gave SAL(1) = 2 and SAL(0.4) = −1, repeated ones were taken as data.
TEST_F(AnalyzeCli, StepsThatDoNotIncreaseMakeTheRunMalformedAndTheOthersAreAnalysed) {
  write_run("good", "muon", 0.01, {200, 300, 400}, "converged", 400);
  for (const char* name : {"backwards", "repeated"}) {
    const fs::path d = dir_ / "runs" / name;
    write_run(name, "nmd", 0.01, {300, 900, 1500}, "converged", 1500);
    std::ofstream(d / "metrics.csv", std::ios::app)
        << (std::string(name) == "backwards" ? "100" : "1500") << ",0.1,0.5,0.02,0.01,0.01,0.01,0.5,0.5,0.5\n";
  }
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto runs = nlohmann::json::parse(r.out)["runs"];
  ASSERT_EQ(runs.size(), 1u) << r.out;
  EXPECT_TRUE(runs[0]["dir"].get<std::string>().ends_with("/good"));
  // Rows 0..1500 every 100 are lines 2..17: the appended row is line 18.
  EXPECT_TRUE(contains(r.err, "backwards/metrics.csv:18: step 100 does not follow step 1500 of line 17")) << r.err;
  EXPECT_TRUE(contains(r.err, "repeated/metrics.csv:18: step 1500 does not follow step 1500")) << r.err;
  EXPECT_TRUE(contains(r.err, "analysed 1 of 3 run directories; 2 skipped")) << r.err;
}

// A non-finite loss is a diverged run's last row, never a subtask learned (−inf <= tau held);
// one before the last row is not what a run writes (it stops at its first non-finite eval).
TEST_F(AnalyzeCli, NonFiniteLossesAreNeverLearnedAndOnlyALastRowMayHoldThem) {
  const fs::path diverged = dir_ / "runs" / "diverged";
  write_run("diverged", "muon", 0.01, {200, -1, -1}, "diverged", 300);
  std::ofstream(diverged / "metrics.csv", std::ios::app) << "400,0.1,nan,nan,0.01,-inf,inf,0.5,0.5,0.5\n";
  const fs::path middle = dir_ / "runs" / "middle";
  write_run("middle", "nmd", 0.01, {300, 900, 1500}, "converged", 1500);
  std::string text = slurp(middle / "metrics.csv");
  const std::size_t line4 = text.find("\n200,") + 1;  // line 4: the row of step 200
  text.replace(line4, text.find('\n', line4) - line4, "200,0.1,0.5,-inf,1,1,1,0.5,0.5,0.5");
  std::ofstream(middle / "metrics.csv", std::ios::trunc) << text;

  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto runs = nlohmann::json::parse(r.out)["runs"];
  ASSERT_EQ(runs.size(), 1u) << r.out;
  EXPECT_EQ(runs[0]["T_k"], nlohmann::json({200, nullptr, nullptr}));
  EXPECT_EQ(runs[0]["steps"], 400);
  EXPECT_TRUE(contains(r.err, "middle/metrics.csv:4: mean_loss is not finite, yet a row follows")) << r.err;
}

// icl_linreg: a relative_distance of −inf in the last row does not reach epsilon.
TEST_F(AnalyzeCli, IclRunWithAnInfiniteDistanceDoesNotReachEpsilon) {
  const fs::path d = dir_ / "runs" / "icl";
  fs::create_directories(d);
  std::ofstream(d / "config.json") << nlohmann::json{
      {"precision", "fp64"},
      {"task", {{"type", "icl_linreg"}, {"d", 4}, {"sigma_x", {{"kappa", 10}}}, {"sigma_w", {{"kappa", 1}}}}},
      {"optimizer", {{"type", "gd"}, {"lr", 0.5}}},
      {"eval",
       {{"every", 10},
        {"epsilon", 1e-4}}}}.dump();
  std::ofstream(d / "metrics.csv") << "step,wall_s,lr,loss,relative_loss,distance,relative_distance\n"
                                   << "0,0.1,0.5,1,1,1,1\n10,0.2,0.5,0.5,0.5,0.5,0.5\n20,0.3,0.5,nan,nan,nan,-inf\n";
  const Result r = skillrun({"analyze", d.string(), "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto run = nlohmann::json::parse(r.out)["icl"]["runs"][0];
  EXPECT_TRUE(run["steps_to_epsilon"].is_null()) << run.dump();
  EXPECT_FALSE(run["reached"].get<bool>());
}

// task.n_tasks 2e9 or −5 gave a raw std::bad_alloc / max_size() message, and 3.7 was read as 3:
// config.json is read by the config loader, as `skillrun run` reads it, and named with its key.
TEST_F(AnalyzeCli, ConfigNoRunCouldHaveHadIsNamedAndSkipped) {
  write_run("good", "muon", 0.01, {200, 300, 400}, "converged", 400);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"huge", "2e9"}, {"negative", "-5"}, {"fraction", "3.7"}, {"zero", "0"}};
  for (const auto& [name, n_tasks] : bad) {
    write_run(name, "muon", 0.01, {200, 300, 400}, "converged", 400);
    const fs::path d = dir_ / "runs" / name;
    std::string config = slurp(d / "config.json");
    config.replace(config.find("\"n_tasks\": 3"), 12, "\"n_tasks\": " + n_tasks);
    std::ofstream(d / "config.json", std::ios::trunc) << config;
    std::ofstream(d / "metrics.csv", std::ios::trunc).flush();  // killed before its header: n_tasks from config
  }
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["runs"].size(), 1u) << r.out;
  for (const auto& [name, n_tasks] : bad)
    EXPECT_TRUE(contains(r.err, name + "/config.json: task.n_tasks: ")) << name << "\n" << r.err;
  EXPECT_FALSE(contains(r.err, "bad_alloc")) << r.err;
  EXPECT_FALSE(contains(r.err, "max_size")) << r.err;
}

// One malformed row gave exit 1 and no report at all.
TEST_F(AnalyzeCli, MalformedRowSkipsItsRunOnlyNamingTheLineAndWhy) {
  write_sweep();
  const fs::path d = dir_ / "runs" / "nmd-lr0.001";
  std::string text = slurp(d / "metrics.csv");
  text.replace(text.find("\n100,0.1,") + 1, 8, "100,oops,");
  std::ofstream(d / "metrics.csv", std::ios::trunc) << text;
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["runs"].size(), 3u) << r.out;
  EXPECT_TRUE(contains(r.err, "nmd-lr0.001/metrics.csv:3: malformed row (wall_s: \"oops\" is not a number)")) << r.err;
}

TEST_F(AnalyzeCli, NothingUsableLeftIsAClearErrorListingEachRun) {
  write_run("a", "muon", 0.01, {200, 300, 400}, "converged", 400);
  write_run("b", "muon", 0.001, {200, 300, 400}, "converged", 400);
  std::ofstream(dir_ / "runs" / "a" / "config.json", std::ios::trunc) << "{";
  std::ofstream(dir_ / "runs" / "b" / "metrics.csv", std::ios::trunc) << "step,wall\n";
  const Result r = skillrun({"analyze", (dir_ / "runs").string()});
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(r.err.starts_with("error: no run could be analysed (2 run directories found, none usable)")) << r.err;
  EXPECT_TRUE(contains(r.err, "a/config.json: malformed JSON")) << r.err;
  EXPECT_TRUE(contains(r.err, "b/metrics.csv:1: not a skillrun metrics header")) << r.err;
}

// A directory whose entries cannot be examined aborted the whole analysis. Here the path of its
// metrics.csv is too long to name (which stops root too); a run's checkpoint/ without read
// permission is the test below.
TEST_F(AnalyzeCli, DirectoryThatCannotBeReadIsNamedAndTheOthersAnalysed) {
  write_run("a", "muon", 0.01, {200, 300, 400}, "converged", 400);
  fs::path deep = dir_ / "runs" / "deep";
  const std::size_t length = 4090;  // a directory fits in PATH_MAX (4096), its metrics.csv does not
  while (deep.string().size() + 1 < length)
    deep /= std::string(std::min<std::size_t>(200, length - deep.string().size() - 1), 'd');
  fs::create_directories(deep);
  write_run("z", "muon", 0.001, {200, 300, 400}, "converged", 400);
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--format", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["runs"].size(), 2u) << r.out;
  EXPECT_TRUE(contains(r.err, deep.string() + ": cannot be read (File name too long)")) << r.err;
}

TEST_F(AnalyzeCli, UnreadableCheckpointDirectoryOfARunIsNamedAndTheRunAnalysed) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads a directory without read permission";
  write_run("a", "muon", 0.01, {200, 300, 400}, "converged", 400);
  const fs::path checkpoint = dir_ / "runs" / "a" / "checkpoint";
  fs::create_directories(checkpoint);
  fs::permissions(checkpoint, fs::perms::none);
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--format", "json"});
  fs::permissions(checkpoint, fs::perms::owner_all);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["runs"].size(), 1u) << r.out;
  EXPECT_TRUE(contains(r.err, checkpoint.string() + ": cannot be read (Permission denied)")) << r.err;
}

// The peak resident memory (KiB) of `skillrun analyze DIR --format csv`, which must succeed.
long analyze_peak_rss_kib(const fs::path& dir) {
  const pid_t pid = skillrun_test::spawn_skillrun({"analyze", dir.string(), "--format", "csv"});
  int status = 0;
  struct rusage usage {};
  EXPECT_EQ(::wait4(pid, &status, 0, &usage), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return usage.ru_maxrss;
}

// A 494 MB metrics.csv cost 3.3 GB: the file was held whole, then split into lines, then rows
// of vectors. Streamed, what grows with the file is a step and a mean loss per row (16 bytes of
// a ~1 kB line here), so 40 MB more of metrics.csv must cost far less than 10 MB more memory.
TEST_F(AnalyzeCli, LargeMetricsCsvIsStreamedInMemoryFarBelowItsSize) {
  const int n_tasks = 50;
  const auto write_large_run = [&](const std::string& name, int rows) {
    const fs::path d = dir_ / name / "run";
    fs::create_directories(d);
    std::ofstream(d / "config.json") << nlohmann::json{
        {"task", {{"type", "sparse_parity"}, {"n_tasks", n_tasks}, {"n_bits", 50}, {"zipf_exponent", 1.4}}},
        {"model", {{"width", 128}}},
        {"optimizer", {{"type", "adam"}, {"lr", 0.001}}},
        {"eval", {{"tau_bits", 0.1}}}}.dump();
    std::ofstream m(d / "metrics.csv");
    m << "step,wall_s,train_loss,mean_loss";
    for (const char* column : {"loss_", "acc_"})
      for (int k = 0; k < n_tasks; ++k) m << "," << column << k;
    m << "\n";
    for (int i = 0; i < rows; ++i) {  // subtask k learned at row 10 k
      std::string line = std::to_string(10 * i) + ",12.345," + (i ? "0.123456789" : "") + ",0.987654321";
      for (int k = 0; k < n_tasks; ++k) line += i >= 10 * k ? ",0.0123456789" : ",0.987654321";
      for (int k = 0; k < n_tasks; ++k) line += ",0.512345678";
      m << line << "\n";
    }
    return d.parent_path();
  };
  const fs::path small = write_large_run("small", 1000);
  const fs::path large = write_large_run("large", 41000);
  const auto grown = fs::file_size(large / "run" / "metrics.csv") - fs::file_size(small / "run" / "metrics.csv");
  ASSERT_GT(grown, 40'000'000u);
  const long small_kib = analyze_peak_rss_kib(small), large_kib = analyze_peak_rss_kib(large);
  EXPECT_LT(large_kib - small_kib, 10 * 1024) << small_kib << " KiB for 1000 rows, " << large_kib << " KiB for 41000";
}

TEST_F(AnalyzeCli, PlotWritesEveryFigureAsNonEmptyPngSvgAndPdf) {
  if (python_with_matplotlib().empty()) GTEST_SKIP() << "no python3 with matplotlib (scripts/setup.sh installs it)";
  write_sweep();
  const fs::path out = dir_ / "analysis";
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--out", out.string(), "--plot"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* fig : {"fig2_subtask_losses", "fig2_overlay", "fig3_coverage_sal"})
    for (const char* ext : {".png", ".svg", ".pdf"}) {
      const fs::path f = out / (std::string(fig) + ext);
      ASSERT_TRUE(fs::exists(f)) << f;
      EXPECT_GT(fs::file_size(f), 1000u) << f;
    }
  EXPECT_EQ(slurp(out / "fig3_coverage_sal.png").substr(1, 3), "PNG");
  EXPECT_EQ(slurp(out / "fig2_overlay.pdf").substr(0, 5), "%PDF-");
  // One width: the width grid would repeat fig2, so it is left out, saying so.
  EXPECT_FALSE(fs::exists(out / "fig4_width_grid.png"));
  EXPECT_TRUE(contains(r.err + r.out, "fig4_width_grid skipped: the runs have one width")) << r.err;
}

TEST_F(AnalyzeCli, PlotDrawsTheWidthGridForTwoWidths) {
  if (python_with_matplotlib().empty()) GTEST_SKIP() << "no python3 with matplotlib (scripts/setup.sh installs it)";
  write_run("muon-w64", "muon", 0.01, {200, 300, 400}, "converged", 400);
  write_run("muon-w128", "muon", 0.01, {100, 200, 300}, "converged", 300, false, 128);
  const fs::path out = dir_ / "analysis";
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--out", out.string(), "--plot"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* ext : {".png", ".svg", ".pdf"}) EXPECT_TRUE(fs::exists(out / (std::string("fig4_width_grid") + ext)));
}

TEST_F(AnalyzeCli, PlotDrawsFig5ForIclRuns) {
  if (python_with_matplotlib().empty()) GTEST_SKIP() << "no python3 with matplotlib (scripts/setup.sh installs it)";
  run_icl_grid();
  const fs::path out = dir_ / "analysis";
  const Result r = skillrun({"analyze", (dir_ / "runs").string(), "--out", out.string(), "--plot"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* ext : {".png", ".svg"}) {
    const fs::path f = out / (std::string("fig5") + ext);
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_GT(fs::file_size(f), 1000u) << f;
  }
  EXPECT_EQ(slurp(out / "fig5.png").substr(1, 3), "PNG");
  EXPECT_FALSE(fs::exists(out / "fig2_subtask_losses.png"));  // no sparse_parity runs
}

TEST_F(AnalyzeCli, PlotScriptWritesToItsOutDirectory) {
  const std::string python = python_with_matplotlib();
  if (python.empty()) GTEST_SKIP() << "no python3 with matplotlib (scripts/setup.sh installs it)";
  write_sweep();
  ASSERT_EQ(skillrun({"analyze", (dir_ / "runs").string(), "--out", (dir_ / "analysis").string()}).status, 0);
  const std::string script = std::string(SKILLRUN_SOURCE_DIR) + "/scripts/plot.py";
  const Result r = sh(python + " " + shell_quote(script) + " " + shell_quote((dir_ / "analysis").string()) + " --out " +
                      shell_quote((dir_ / "figs").string()));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_GT(fs::file_size(dir_ / "figs" / "fig2_subtask_losses.svg"), 1000u);
  EXPECT_TRUE(contains(r.out, "fig2_overlay.pdf")) << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "analysis" / "fig2_subtask_losses.svg"));  // only where --out says
}

}  // namespace

