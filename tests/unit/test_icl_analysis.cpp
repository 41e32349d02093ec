// Specification of the icl_linreg analysis on hand-written run directories: steps to epsilon
// recomputed from metrics.csv, killed and diverged runs, grouping by optimizer and spectra,
// the median over seeds, the best lr, and the tables and CSV files. Every expected number is
// worked out in the comments from the rows written here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "analysis/icl_report.h"
#include "analysis/report.h"
#include "core/error.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kIclHeader = "step,wall_s,lr,loss,relative_loss,distance,relative_distance,mode_1,mode_4\n";

// An icl run: eval rows every 10 steps whose relative_distance is `distances` in order (NaN:
// "nan"); the loss of a row is 10 × its relative distance.
struct FakeIcl {
  std::string optimizer = "specgd";
  double lr = 0.5;
  int seed = 0;
  json sigma_x = {{"kappa", 10}};
  json sigma_w = {{"kappa", 1}};
  int d = 4;
  std::vector<double> distances = {};
  std::string status = "converged";  // empty: no summary.json
  std::string tail = "";             // appended after the last row (a partial line)
};

class IclRuns : public testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("skillrun_icl_analysis_" + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path write(const std::string& name, const FakeIcl& f) {
    const fs::path dir = root_ / name;
    fs::create_directories(dir);
    const json config = {{"seed", f.seed},
                         {"precision", "fp64"},
                         {"task", {{"type", "icl_linreg"}, {"d", f.d}, {"sigma_x", f.sigma_x}, {"sigma_w", f.sigma_w},
                                   {"basis", "shared"}}},
                         {"optimizer", {{"type", f.optimizer}, {"lr", f.lr}}},
                         {"train", {{"max_steps", 1000}, {"lr_schedule", {{"type", "constant"}}}}},
                         {"eval", {{"every", 10}, {"epsilon", 1e-4}, {"modes", {1, 4}}}}};
    std::ofstream(dir / "config.json") << config.dump(2);
    std::ofstream m(dir / "metrics.csv");
    m << kIclHeader;
    json first = nullptr;
    for (std::size_t i = 0; i < f.distances.size(); ++i) {
      const double v = f.distances[i];
      const std::string cell = std::isnan(v) ? "nan" : fmt_g(v);
      const std::string loss = std::isnan(v) ? "nan" : fmt_g(10 * v);
      m << 10 * i << ",0.01,0.5," << loss << "," << loss << "," << cell << "," << cell << "," << cell << "," << cell << "\n";
      if (first.is_null() && v <= 1e-4) first = 10 * i;
    }
    m << f.tail;
    if (!f.status.empty())
      std::ofstream(dir / "summary.json") << json{{"status", f.status},
                                                  {"task", "icl_linreg"},
                                                  {"epsilon", 1e-4},
                                                  {"steps_to_epsilon", first},
                                                  {"message", "test"}}
                                                 .dump();
    return dir;
  }

  static std::string fmt_g(double v) {
    std::ostringstream s;
    s.precision(9);
    s << v;
    return s.str();
  }

  IclReport report(const std::vector<std::pair<std::string, FakeIcl>>& runs) {
    std::vector<IclRun> read;
    for (const auto& [name, f] : runs) read.push_back(read_icl_run(write(name, f)));
    return icl_report(std::move(read));
  }

  fs::path root_;
};

// Rows at steps 0..40: 1, 0.1, 1e-3, 5e-5, 1e-6 -> first <= 1e-4 at step 30.
TEST_F(IclRuns, StepsToEpsilonIsTheFirstEvalAtOrBelowEpsilon) {
  const IclRun r = read_icl_run(write("a", {.distances = {1, 0.1, 1e-3, 5e-5, 1e-6}}));
  EXPECT_EQ(r.optimizer, "specgd");
  EXPECT_EQ(r.sigma_x.label(), "kappa=10");
  EXPECT_EQ(r.status, "converged");
  EXPECT_EQ(r.steps_to_epsilon, 30);
  EXPECT_TRUE(r.reached);
  EXPECT_EQ(r.last_step, 40);
  EXPECT_DOUBLE_EQ(r.final_relative_distance, 1e-6);
  EXPECT_DOUBLE_EQ(r.final_loss, 1e-5);
  EXPECT_DOUBLE_EQ(r.epsilon, 1e-4);
  EXPECT_FALSE(r.metrics_truncated);
}

TEST_F(IclRuns, EpsilonExactlyIsReached) {
  EXPECT_EQ(read_icl_run(write("a", {.distances = {1, 1e-4}})).steps_to_epsilon, 10);
}

// Killed: no summary.json, a partial last line. epsilon comes from config.json.
TEST_F(IclRuns, KilledRunIsIncompleteAndReadUpToItsLastWholeRow) {
  const IclRun r = read_icl_run(write("k", {.distances = {1, 0.5, 0.2}, .status = "", .tail = "30,0.01,0.5,1e-"}));
  EXPECT_EQ(r.status, "incomplete");
  EXPECT_TRUE(r.metrics_truncated);
  EXPECT_EQ(r.last_step, 20);
  EXPECT_FALSE(r.steps_to_epsilon.has_value());
  EXPECT_FALSE(r.reached);
  EXPECT_DOUBLE_EQ(r.epsilon, 1e-4);
}

TEST_F(IclRuns, EmptyMetricsOfARunKilledAtOnceHasNoRows) {
  const fs::path dir = write("e", {.distances = {}, .status = ""});
  std::ofstream(dir / "metrics.csv", std::ios::trunc).flush();
  const IclRun r = read_icl_run(dir);
  EXPECT_EQ(r.last_step, 0);
  EXPECT_TRUE(std::isnan(r.final_relative_distance));
}

// Reached epsilon at step 10, then blew up: diverged never counts as reached.
TEST_F(IclRuns, DivergedRunDoesNotCountAsReached) {
  const IclReport rep = report({{"d", {.distances = {1, 1e-5, NAN}, .status = "diverged"}}});
  EXPECT_EQ(rep.runs[0].steps_to_epsilon, 10);
  EXPECT_FALSE(rep.runs[0].reached);
  ASSERT_EQ(rep.groups.size(), 1u);
  EXPECT_EQ(rep.groups[0].best().reached, 0);
  EXPECT_FALSE(rep.groups[0].best().median_steps.has_value());
  EXPECT_TRUE(std::isinf(rep.groups[0].best().median_final_relative_distance));  // NaN counts as worst
}

TEST_F(IclRuns, MalformedFilesAreErrorsNamingTheFile) {
  const fs::path dir = write("bad", {.distances = {1, 0.1, 0.01}});
  std::ofstream(dir / "metrics.csv", std::ios::trunc) << kIclHeader << "0,0.1,0,1,1,1,1,1,1\n10,x,0,1,1,1,1,1,1\n20,0.1,0,1,1,1,1,1,1\n";
  try {
    read_icl_run(dir);
    FAIL() << "no exception";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.csv:3"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "metrics.csv", std::ios::trunc) << "step,wall_s,train_loss,mean_loss,loss_0,acc_0\n";
  EXPECT_THROW(read_icl_run(dir), RuntimeError);

  const fs::path spec = write("spec", {.sigma_x = {{"kappa", 10}, {"exponent", 1}}, .distances = {1}});
  try {
    read_icl_run(spec);
    FAIL() << "no exception";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("task.sigma_x"), std::string::npos) << e.what();
  }
  const fs::path summary = write("summary", {.distances = {1}});
  std::ofstream(summary / "summary.json", std::ios::trunc) << "{\"steps\": 3";
  try {
    read_icl_run(summary);
    FAIL() << "no exception";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("summary.json"), std::string::npos) << e.what();
  }
}

TEST(IclSpectrum, LabelsAndParsing) {
  const json config = {{"task", {{"sigma_x", {{"kappa", 100.0}}}, {"sigma_w", {{"exponent", 1.5}}}}}};
  EXPECT_EQ(spectrum_at(config, "task.sigma_x", "c.json").label(), "kappa=100");
  EXPECT_EQ(spectrum_at(config, "task.sigma_w", "c.json").label(), "exponent=1.5");
  EXPECT_THROW(spectrum_at(config, "task.sigma_y", "c.json"), RuntimeError);
  EXPECT_THROW(spectrum_at(json{{"task", {{"sigma_x", {{"kappa", "big"}}}}}}, "task.sigma_x", "c.json"), RuntimeError);
}

// Seeds of specgd at kappa_x 10 (lr 0.5) reach epsilon at 30, 10 and 50: median 30, 3/3.
// At kappa_x 100 two seeds reach at 20 and 50 and one never: median 35 over the two, 2/3.
// gd at kappa_x 10: one run, never.
TEST_F(IclRuns, GroupsByOptimizerAndSpectraWithTheMedianOverSeeds) {
  const std::vector<double> at30 = {1, 1, 1, 1e-5}, at10 = {1, 1e-5}, at50 = {1, 1, 1, 1, 1, 1e-5}, at20 = {1, 1, 1e-5};
  const IclReport r = report({{"s0", {.seed = 0, .distances = at30}},
                              {"s1", {.seed = 1, .distances = at10}},
                              {"s2", {.seed = 2, .distances = at50}},
                              {"h0", {.seed = 0, .sigma_x = {{"kappa", 100}}, .distances = at20}},
                              {"h1", {.seed = 1, .sigma_x = {{"kappa", 100}}, .distances = at50}},
                              {"h2", {.seed = 2, .sigma_x = {{"kappa", 100}}, .distances = {1, 1, 1}, .status = "max_steps"}},
                              {"g0", {.optimizer = "gd", .distances = {1, 0.5}, .status = "max_steps"}}});
  ASSERT_EQ(r.groups.size(), 3u);  // gd 10, specgd 10, specgd 100 (sorted by optimizer, then kappa_x)
  EXPECT_EQ(r.groups[0].optimizer, "gd");
  EXPECT_EQ(r.groups[1].sigma_x.label(), "kappa=10");
  EXPECT_EQ(r.groups[2].sigma_x.label(), "kappa=100");
  const IclCandidate& a = r.groups[1].best();
  EXPECT_EQ(a.runs.size(), 3u);
  EXPECT_EQ(a.reached, 3);
  EXPECT_DOUBLE_EQ(*a.median_steps, 30);
  EXPECT_EQ(a.min_steps, 10);
  EXPECT_EQ(a.max_steps, 50);
  const IclCandidate& b = r.groups[2].best();
  EXPECT_EQ(b.reached, 2);
  EXPECT_DOUBLE_EQ(*b.median_steps, 35);
  EXPECT_EQ(r.groups[0].best().reached, 0);
  EXPECT_FALSE(r.setting_varies[0]);  // task.d: all 4
}

// lr 0.1: seeds at 20 and never -> median 20, 1/2. lr 0.2: 20 and 20 -> median 20, 2/2.
// lr 0.05: 10 and never -> median 10, 1/2: the lowest median wins even with fewer reached;
// between 0.1 and 0.2 (equal medians) the one with more seeds reached ranks first.
TEST_F(IclRuns, BestLrHasTheLowestMedianThenMoreSeedsReached) {
  const std::vector<double> at20 = {1, 1, 1e-5}, at10 = {1, 1e-5}, never = {1, 1, 1, 1};
  const IclReport r = report({{"a0", {.lr = 0.1, .seed = 0, .distances = at20}},
                              {"a1", {.lr = 0.1, .seed = 1, .distances = never, .status = "max_steps"}},
                              {"b0", {.lr = 0.2, .seed = 0, .distances = at20}},
                              {"b1", {.lr = 0.2, .seed = 1, .distances = at20}},
                              {"c0", {.lr = 0.05, .seed = 0, .distances = at10}},
                              {"c1", {.lr = 0.05, .seed = 1, .distances = never, .status = "max_steps"}}});
  ASSERT_EQ(r.groups.size(), 1u);
  const auto& c = r.groups[0].candidates;
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].lr, 0.05);
  EXPECT_EQ(c[1].lr, 0.2);
  EXPECT_EQ(c[2].lr, 0.1);
}

// No lr reaches epsilon: the lower median final relative distance ranks first.
TEST_F(IclRuns, WithoutAnyLrReachingTheClosestFinalDistanceWins) {
  const IclReport r = report({{"a", {.lr = 0.1, .distances = {1, 0.3}, .status = "max_steps"}},
                              {"b", {.lr = 0.2, .distances = {1, 0.01}, .status = "max_steps"}},
                              {"c", {.lr = 0.4, .distances = {1, NAN}, .status = "diverged"}}});
  const auto& c = r.groups[0].candidates;
  EXPECT_EQ(c[0].lr, 0.2);
  EXPECT_EQ(c[1].lr, 0.1);
  EXPECT_EQ(c[2].lr, 0.4);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// specgd and gd at kappa_x 1 and 10, kappa_w 1 and 100; gd has no run at (10, 100).
TEST_F(IclRuns, TablesCsvAndPivot) {
  const std::vector<double> at10 = {1, 1e-5}, at30 = {1, 1, 1, 1e-5};
  const json k1 = {{"kappa", 1}}, k10 = {{"kappa", 10}}, k100 = {{"kappa", 100}};
  const IclReport r = report({{"s11", {.sigma_x = k1, .sigma_w = k1, .distances = at10}},
                              {"s12", {.sigma_x = k1, .sigma_w = k100, .distances = at10}},
                              {"s21", {.sigma_x = k10, .sigma_w = k1, .distances = at30}},
                              {"s22", {.sigma_x = k10, .sigma_w = k100, .distances = at30}},
                              {"s22b", {.lr = 0.25, .sigma_x = k10, .sigma_w = k100, .distances = at10}},
                              {"g11", {.optimizer = "gd", .sigma_x = k1, .sigma_w = k1, .distances = at30}},
                              {"g12", {.optimizer = "gd", .sigma_x = k1, .sigma_w = k100, .distances = at30}},
                              {"g21", {.optimizer = "gd", .sigma_x = k10, .sigma_w = k1, .distances = {1, 1}, .status = "max_steps"}}});
  EXPECT_EQ(r.groups.size(), 7u);
  // icl_table.csv: one row per (group, lr): 7 groups, one of them with two lrs.
  const auto table = lines(icl_table_csv(r));
  EXPECT_EQ(table.size(), 1u + 8u);
  EXPECT_EQ(std::count_if(table.begin(), table.end(), [](const std::string& l) { return l.find(",true,") != std::string::npos; }), 7);
  EXPECT_EQ(lines(icl_runs_csv(r)).size(), 1u + 8u);
  // specgd at (10, 100): lr 0.25 (10 steps) beats lr 0.5 (30 steps).
  EXPECT_NE(icl_table_csv(r).find("specgd,10,,100,,4,shared,,\"{\"\"type\"\":\"\"constant\"\"}\",0.0001,fp64,0.25,true,1,1,10,10,10,"),
            std::string::npos)
      << icl_table_csv(r);

  const std::vector<Table> tables = icl_tables(r);
  ASSERT_EQ(tables.size(), 2u);
  const Table& pivot = tables[1];
  EXPECT_EQ(pivot.header, (std::vector<std::string>{"optimizer", "sigma_x", "sigma_w kappa=1", "sigma_w kappa=100"}));
  ASSERT_EQ(pivot.rows.size(), 4u);  // gd x {1, 10}, specgd x {1, 10}
  EXPECT_EQ(pivot.rows[0], (std::vector<std::string>{"gd", "kappa=1", "30", "30"}));
  EXPECT_EQ(pivot.rows[1], (std::vector<std::string>{"gd", "kappa=10", "—", ""}));  // no gd run at (10, 100)
  EXPECT_EQ(pivot.rows[3], (std::vector<std::string>{"specgd", "kappa=10", "30", "10"}));

  const json j = icl_json(r);
  EXPECT_EQ(j["groups"].size(), 7u);
  EXPECT_EQ(j["runs"].size(), 8u);
  EXPECT_TRUE(j["varying"].empty());
  const std::string md = render_icl_markdown(r);
  EXPECT_NE(md.find("## In-context linear regression"), std::string::npos);
  EXPECT_NE(md.find("| gd | kappa=10 | — |  |"), std::string::npos) << md;
}

// task.d differs within specgd: it becomes a column and splits the groups.
TEST_F(IclRuns, ASettingThatVariesWithinAnOptimizerIsAColumn) {
  const IclReport r = report({{"a", {.d = 4, .distances = {1, 1e-5}}}, {"b", {.d = 8, .distances = {1, 1, 1e-5}}}});
  EXPECT_TRUE(r.setting_varies[0]);
  ASSERT_EQ(r.groups.size(), 2u);
  const Table t = icl_tables(r)[0];
  EXPECT_EQ(t.header[1], "task.d");
  EXPECT_EQ(t.rows[0][1], "4");
  EXPECT_EQ(t.rows[1][1], "8");
}

// Sparse-parity outputs are untouched by the icl part: with no icl runs the combined report is
// the sparse one, and with only icl runs no sparse file is written.
TEST_F(IclRuns, OnlyIclRunsWriteOnlyIclFiles) {
  const IclReport r = report({{"a", {.distances = {1, 1e-5}}}});
  const fs::path out = root_ / "analysis";
  const auto written = write_report_files(nullptr, &r, out);
  EXPECT_EQ(written, (std::vector<std::string>{"icl_runs.csv", "icl_table.csv", "summary.md", "analysis.json"}));
  EXPECT_FALSE(fs::exists(out / "runs.csv"));
  std::ifstream in(out / "analysis.json");
  const json j = json::parse(in);
  EXPECT_FALSE(j.contains("optimizers"));
  EXPECT_EQ(j["icl"]["groups"][0]["candidates"][0]["median_steps"], 10);
}

}  // namespace
}  // namespace skillrun
