// Specification of reading runs back and combining them: metrics.csv as a killed run leaves
// it, run discovery, τ from the command line or from the run, groups with mean ± std over
// seeds, best-lr selection with unconverged and diverged runs, and what the reports print.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "analysis/aggregate.h"
#include "analysis/report.h"
#include "analysis/run_reader.h"
#include "analysis/summary_tables.h"
#include "analysis_fixtures.h"
#include "core/error.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;
using testing_fixtures::FakeRun;
using testing_fixtures::make_run;

const char* const kHeader = "step,wall_s,train_loss,mean_loss,loss_0,loss_1,acc_0,acc_1\n";

TEST(MetricsCsv, ReadsEveryRowWithEmptyTrainLossAtStepZero) {
  const auto t = parse_metrics_csv(std::string(kHeader) + "0,0.1,,1.0,1.0,1.0,0.5,0.5\n" +
                                       "50,0.2,0.7,0.6,0.4,0.9,0.8,0.6\n",
                                   "m.csv");
  EXPECT_EQ(t.n_tasks, 2);
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_FALSE(t.rows[0].train_loss_bits.has_value());
  EXPECT_EQ(t.rows[1].step, 50);
  EXPECT_DOUBLE_EQ(*t.rows[1].train_loss_bits, 0.7);
  EXPECT_EQ(t.rows[1].loss_bits, (std::vector<double>{0.4, 0.9}));
  EXPECT_EQ(t.rows[1].accuracy, (std::vector<double>{0.8, 0.6}));
  EXPECT_FALSE(t.truncated);
}

TEST(MetricsCsv, PartialLastLineIsDroppedAndFlagged) {
  // The killed run wrote "100,0.3,0.5,0.4,0.1" of its third row: no newline, fields missing.
  const auto t = parse_metrics_csv(std::string(kHeader) + "0,0.1,,1.0,1.0,1.0,0.5,0.5\n" +
                                       "50,0.2,0.7,0.6,0.4,0.9,0.8,0.6\n100,0.3,0.5,0.4,0.1",
                                   "m.csv");
  EXPECT_EQ(t.rows.size(), 2u);
  EXPECT_TRUE(t.truncated);
}

// All fields present but no newline: the last number may itself be cut ("0.61" of "0.6123").
TEST(MetricsCsv, LastLineWithoutNewlineIsDroppedEvenWhenItParses) {
  const auto t = parse_metrics_csv(std::string(kHeader) + "0,0.1,,1.0,1.0,1.0,0.5,0.5\n50,0.2,0.7,0.6,0.4,0.9,0.8,0.61",
                                   "m.csv");
  EXPECT_EQ(t.rows.size(), 1u);
  EXPECT_TRUE(t.truncated);
}

TEST(MetricsCsv, MalformedRowBeforeTheLastThrowsNamingTheLine) {
  const std::string text = std::string(kHeader) + "0,0.1,,1.0,1.0,1.0,0.5,0.5\n50,x,0.7,0.6,0.4,0.9,0.8,0.6\n" +
                           "100,0.3,0.5,0.4,0.1,0.2,0.9,0.9\n";
  try {
    parse_metrics_csv(text, "m.csv");
    FAIL() << "no exception";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("m.csv:3"), std::string::npos) << e.what();
  }
}

// The message of the RuntimeError that parse_metrics_csv throws for `text`, or "no error".
std::string metrics_error(const std::string& text) {
  try {
    parse_metrics_csv(text, "m.csv");
  } catch (const RuntimeError& e) {
    return e.what();
  }
  return "no error";
}

TEST(MetricsCsv, MalformedRowSaysWhichColumnAndWhy) {
  const std::string why = metrics_error(std::string(kHeader) + "0,0.1,,1.0,1.0,1.0,0.5,0.5\n" +
                                        "50,0.2,0.7,0.6,0.4,zz,0.8,0.6\n100,0.3,0.5,0.4,0.1,0.2,0.9,0.9\n");
  EXPECT_NE(why.find("m.csv:3: malformed row (loss_1: \"zz\" is not a number)"), std::string::npos) << why;
  const std::string short_row = metrics_error(std::string(kHeader) + "0,0.1,,1.0\n50,0.1,,1.0,1.0,1.0,0.5,0.5\n");
  EXPECT_NE(short_row.find("m.csv:2: malformed row (4 fields where the header has 8)"), std::string::npos) << short_row;
}

// Backwards or repeated steps gave SAL(1) = 2 and SAL(0.4) = −1: io/run_dir writes (and a
// resume keeps) steps that increase, so a file whose steps do not is not a run's.
TEST(MetricsCsv, StepsThatDoNotIncreaseAreMalformedNamingTheLine) {
  const std::string rows = std::string(kHeader) + "0,0.1,,1.0,1.0,1.0,0.5,0.5\n100,0.2,0.7,0.6,0.4,0.9,0.8,0.6\n";
  const std::string back = metrics_error(rows + "50,0.3,0.5,0.4,0.1,0.2,0.9,0.9\n");
  EXPECT_NE(back.find("m.csv:4: step 50 does not follow step 100 of line 3"), std::string::npos) << back;
  const std::string same = metrics_error(rows + "100,0.3,0.5,0.4,0.1,0.2,0.9,0.9\n");
  EXPECT_NE(same.find("m.csv:4: step 100 does not follow step 100"), std::string::npos) << same;
  const std::string negative = metrics_error(std::string(kHeader) + "-5,0.1,,1.0,1.0,1.0,0.5,0.5\n");
  EXPECT_NE(negative.find("m.csv:2: step -5 is negative"), std::string::npos) << negative;
}

// A run stops at its first non-finite eval (loss_k, mean_loss or train_loss): only a diverged
// run's last row has one, and any row after it makes the file one no run wrote.
TEST(MetricsCsv, NonFiniteLossBeforeTheLastRowIsMalformed) {
  const std::string first = std::string(kHeader) + "0,0.1,,1.0,1.0,1.0,0.5,0.5\n";
  for (const char* bad :
       {"50,0.2,0.7,0.6,-inf,0.9,0.8,0.6\n", "50,0.2,0.7,nan,0.4,0.9,0.8,0.6\n", "50,0.2,inf,0.6,0.4,0.9,0.8,0.6\n"}) {
    const std::string why = metrics_error(first + bad + "100,0.3,0.5,0.4,0.1,0.2,0.9,0.9\n");
    EXPECT_NE(why.find("m.csv:3: "), std::string::npos) << bad << why;
    EXPECT_NE(why.find("is not finite, yet a row follows"), std::string::npos) << bad << why;
    EXPECT_EQ(metrics_error(first + bad), "no error") << bad;  // the last row: a diverged run
  }
}

TEST(MetricsCsv, HeaderOnlyFileHasNoRows) {
  const auto t = parse_metrics_csv(kHeader, "m.csv");
  EXPECT_EQ(t.n_tasks, 2);
  EXPECT_TRUE(t.rows.empty());
  EXPECT_FALSE(t.truncated);
}

// A run killed before its header was flushed: nothing to read, nothing to complain about.
TEST(MetricsCsv, EmptyFileHasNoRowsAndNoColumns) {
  const auto t = parse_metrics_csv("", "m.csv");
  EXPECT_EQ(t.n_tasks, 0);
  EXPECT_TRUE(t.rows.empty());
  EXPECT_FALSE(t.truncated);
}

TEST(MetricsCsv, DivergedRunsNanLossesParse) {
  const auto t = parse_metrics_csv(std::string(kHeader) + "0,0.1,,1.0,1.0,1.0,0.5,0.5\n50,0.2,nan,nan,nan,inf,0.5,0.5\n",
                                   "m.csv");
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_TRUE(std::isnan(t.rows[1].mean_loss_bits));
  EXPECT_TRUE(std::isinf(t.rows[1].loss_bits[1]));
}

class RunFiles : public testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("skillrun_analysis_io_" + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A 2-subtask run: subtask 0 below 0.1 at step 50, subtask 1 at step 100.
  fs::path write_run(const fs::path& rel, bool with_summary, const std::string& tail = "") {
    const fs::path dir = root_ / rel;
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << R"({"seed": 3, "optimizer": {"type": "nmd", "lr": 0.01},
      "model": {"width": 64}, "task": {"type": "sparse_parity", "n_tasks": 2, "zipf_exponent": 1.4},
      "eval": {"tau_bits": 0.1}})";
    std::ofstream(dir / "metrics.csv") << kHeader << "0,0.1,,1.0,1.0,1.0,0.5,0.5\n"
                                       << "50,0.2,0.7,0.3,0.08,0.9,0.8,0.6\n"
                                       << "100,0.3,0.5,0.05,0.02,0.1,0.9,0.9\n"
                                       << tail;
    if (with_summary)
      std::ofstream(dir / "summary.json")
          << R"({"status": "converged", "steps": 100, "T_k": [50, 100], "tau_bits": 0.1, "message": "done"})";
    return dir;
  }

  fs::path root_;
};

TEST_F(RunFiles, DiscoversNestedRunsAndIgnoresOtherDirectories) {
  write_run("sweep/a", true);
  write_run("sweep/deeper/b", true);
  fs::create_directories(root_ / "sweep" / "analysis");  // no metrics.csv: not a run
  const auto runs = discover_runs({root_});
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].filename(), "a");
  EXPECT_EQ(runs[1].filename(), "b");
}

TEST_F(RunFiles, ARunDirectoryGivenDirectlyIsFoundOnce) {
  const fs::path dir = write_run("one", true);
  EXPECT_EQ(discover_runs({dir, dir}).size(), 1u);
}

TEST_F(RunFiles, MissingPathIsAUsageError) {
  EXPECT_THROW(discover_runs({root_ / "nope"}), UsageError);
}

TEST_F(RunFiles, ReadsStatusTauAndTkFromTheSummary) {
  const RunRecord r = read_run(write_run("r", true));
  EXPECT_EQ(r.status, "converged");
  EXPECT_TRUE(r.has_summary);
  EXPECT_DOUBLE_EQ(r.tau_bits, 0.1);
  EXPECT_EQ(r.summary_T_k, (AcquisitionTimes{50, 100}));
  EXPECT_EQ(r.metrics.steps, (std::vector<int64_t>{0, 50, 100}));
}

TEST_F(RunFiles, RunWithoutSummaryIsIncompleteButStillAnalysed) {
  const RunRecord r = read_run(write_run("killed", false, "150,0.4,0.4"));
  EXPECT_EQ(r.status, kStatusIncomplete);
  EXPECT_TRUE(r.metrics.truncated);
  const RunAnalysis a = analyze_run(r, AnalysisOptions{});
  EXPECT_EQ(a.T_k, (AcquisitionTimes{50, 100}));  // τ from config.json's eval.tau_bits
}

// task.n_tasks 2e9 or −5 gave a raw std::bad_alloc / max_size() message and 3.7 was read as 3:
// config.json goes through the config loader, as for `skillrun run`, and names the key.
TEST_F(RunFiles, ConfigNoRunCouldHaveHadIsMalformedNamingTheKey) {
  int i = 0;
  for (const char* n_tasks : {"2e9", "-5", "3.7", "\"two\""}) {
    const fs::path dir = write_run("n" + std::to_string(i++), true);
    std::ofstream(dir / "config.json") << R"({"task": {"type": "sparse_parity", "n_tasks": )" << n_tasks
                                       << R"(}, "optimizer": {"type": "nmd", "lr": 0.01}})";
    std::ofstream(dir / "metrics.csv", std::ios::trunc).flush();  // killed before its header: n_tasks from config
    try {
      read_run(dir);
      ADD_FAILURE() << n_tasks << ": no exception";
    } catch (const RuntimeError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find((dir / "config.json").string() + ": task.n_tasks: "), std::string::npos) << what;
    }
  }
}

TEST_F(RunFiles, ConfigDisagreeingWithMetricsColumnsIsAnError) {
  const fs::path dir = write_run("bad", true);
  std::ofstream(dir / "config.json") << R"({"task": {"type": "sparse_parity", "n_tasks": 3, "zipf_exponent": 1.4},
    "optimizer": {"type": "nmd", "lr": 0.01}, "eval": {"tau_bits": 0.1}})";
  try {
    read_run(dir);
    FAIL() << "no exception";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.csv:1: 2 loss columns but config.json has task.n_tasks = 3"),
              std::string::npos)
        << e.what();
  }
}

// Rows: step 50 has losses (0.08, 0.9), step 100 (0.02, 0.1). τ = 0.1 (the run's): T = (50, 100).
// --tau 0.05: subtask 0 first at 100 (0.02), subtask 1 never (0.1 > 0.05).
TEST_F(RunFiles, TauFromTheCommandLineRecomputesTk) {
  const fs::path dir = write_run("r", true);
  AnalysisOptions own;
  EXPECT_EQ(analyze_run(read_run(dir), own).T_k, (AcquisitionTimes{50, 100}));
  EXPECT_DOUBLE_EQ(analyze_run(read_run(dir), own).tau_bits, 0.1);
  AnalysisOptions strict;
  strict.tau_bits = 0.05;
  const RunAnalysis a = analyze_run(read_run(dir, strict.tau_bits), strict);
  EXPECT_EQ(a.T_k, (AcquisitionTimes{100, std::nullopt}));
  EXPECT_FALSE(a.coverage.back().has_value());  // T(1) not reached
  EXPECT_FALSE(a.sal.back().has_value());
}

TEST(ParseFlags, PListAcceptsFractionsInZeroOne) {
  EXPECT_EQ(parse_p_list("0.5,1"), (std::vector<double>{0.5, 1.0}));
  for (const char* bad : {"0", "1.5", "-0.2", "abc", "0.5,", "", "0.5x"})
    EXPECT_THROW(parse_p_list(bad), UsageError) << bad;
}

TEST(ParseFlags, LrSelectionMetrics) {
  EXPECT_EQ(parse_lr_selection("coverage").p, 1.0);
  EXPECT_EQ(parse_lr_selection("coverage:0.5").p, 0.5);
  EXPECT_EQ(parse_lr_selection("final_loss").metric, LrSelection::Metric::FinalLoss);
  EXPECT_THROW(parse_lr_selection("coverage:2"), UsageError);
  EXPECT_THROW(parse_lr_selection("speed"), UsageError);
}

AnalysisResult analyse(const std::vector<FakeRun>& fakes, AnalysisOptions options = {}) {
  std::vector<RunAnalysis> runs;
  for (const FakeRun& f : fakes) runs.push_back(analyze_run(make_run(f, options.tau_bits), options));
  return aggregate(std::move(runs), options);
}

// Seeds with T(1) = 1000 and 1200: mean 1100, sample std sqrt((100² + 100²)/1) = 141.42.
TEST(Groups, MeanAndStdOverSeeds) {
  const auto r = analyse({{.seed = 0, .T_k = {500, 1000}}, {.seed = 1, .T_k = {500, 1200}}});
  ASSERT_EQ(r.groups.size(), 1u);
  const Stat& t1 = r.groups[0].set.coverage.back();
  EXPECT_DOUBLE_EQ(*t1.mean, 1100.0);
  EXPECT_NEAR(*t1.std, std::sqrt(20000.0), 1e-9);
  EXPECT_EQ(t1.defined, 2);
}

TEST(Groups, MeanIsUndefinedWhenASeedNeverReachesIt) {
  const auto r = analyse({{.seed = 0, .T_k = {500, 1000}}, {.seed = 1, .T_k = {500, std::nullopt}, .last_step = 2000}});
  const Stat& t1 = r.groups[0].set.coverage.back();
  EXPECT_FALSE(t1.mean.has_value());
  EXPECT_EQ(t1.defined, 1);
  EXPECT_EQ(t1.total, 2);
  EXPECT_EQ(format_stat(t1, 0), "— (1/2)");
}

TEST(Groups, OneGroupPerOptimizerWidthAndLr) {
  const auto r = analyse({{.optimizer = "adam", .lr = 0.001, .T_k = {100}}, {.optimizer = "adam", .lr = 0.01, .T_k = {100}},
                          {.optimizer = "nmd", .lr = 0.01, .T_k = {100}}, {.optimizer = "nmd", .lr = 0.01, .seed = 1, .T_k = {100}}});
  ASSERT_EQ(r.groups.size(), 3u);
  EXPECT_EQ(r.groups[0].key_values[2], 0.001);  // sorted: adam 0.001, adam 0.01, nmd 0.01
  EXPECT_EQ(r.groups[2].set.runs.size(), 2u);
}

TEST(BestLr, SmallestFullCoverageTimeWins) {
  const auto r = analyse({{.lr = 0.01, .T_k = {300, 900}}, {.lr = 0.001, .T_k = {200, 700}}});
  ASSERT_EQ(r.optimizers.size(), 1u);
  EXPECT_EQ(r.optimizers[0].ranking.front().lr, 0.001);
}

// lr 0.1 covers everything (late); 0.01 learns 2 of 3; 0.001 learns 1 of 3 with a lower final
// loss; 0.0001 also learns 2 of 3 but ends with a higher loss than 0.01.
// Expected order: 0.1 (covers), 0.01 (2/3, loss 0.2), 0.0001 (2/3, loss 0.3), 0.001 (1/3).
TEST(BestLr, UnconvergedRunsRankAfterConvergedOnesByFractionThenFinalLoss) {
  const auto r = analyse({{.lr = 0.1, .T_k = {400, 800, 5000}},
                          {.lr = 0.01, .T_k = {100, 200, std::nullopt}, .final_mean_loss = 0.2, .status = "max_steps", .last_step = 6000},
                          {.lr = 0.001, .T_k = {100, std::nullopt, std::nullopt}, .final_mean_loss = 0.05, .status = "max_steps", .last_step = 6000},
                          {.lr = 0.0001, .T_k = {100, 300, std::nullopt}, .final_mean_loss = 0.3, .status = "max_steps", .last_step = 6000}});
  const auto& ranking = r.optimizers[0].ranking;
  ASSERT_EQ(ranking.size(), 4u);
  EXPECT_EQ(ranking[0].lr, 0.1);
  EXPECT_EQ(ranking[1].lr, 0.01);
  EXPECT_EQ(ranking[2].lr, 0.0001);
  EXPECT_EQ(ranking[3].lr, 0.001);
}

TEST(BestLr, DivergedRunRanksBehindAnEquallyCoveredOne) {
  const auto r = analyse({{.lr = 0.1, .T_k = {100, std::nullopt}, .final_mean_loss = std::nan(""), .status = "diverged", .last_step = 200},
                          {.lr = 0.01, .T_k = {100, std::nullopt}, .final_mean_loss = 0.5, .status = "max_steps", .last_step = 2000}});
  EXPECT_EQ(r.optimizers[0].ranking.front().lr, 0.01);
}

TEST(BestLr, FinalLossMetricIgnoresCoverage) {
  AnalysisOptions o;
  o.select_lr = parse_lr_selection("final_loss");
  const auto r = analyse({{.lr = 0.01, .T_k = {100, 200}, .final_mean_loss = 0.05},
                          {.lr = 0.001, .T_k = {100, std::nullopt}, .final_mean_loss = 0.01, .last_step = 500}},
                         o);
  EXPECT_EQ(r.optimizers[0].ranking.front().lr, 0.001);
}

// Fig. 3 view: the best lr's runs at widths 64 and 128, T(1) = 600 and 1000: mean 800.
TEST(BestLr, OptimizerViewAveragesAcrossWidthsAtTheChosenLr) {
  const auto r = analyse({{.lr = 0.01, .width = 64, .T_k = {200, 600}}, {.lr = 0.01, .width = 128, .T_k = {200, 1000}},
                          {.lr = 0.1, .width = 64, .T_k = {200, 5000}}, {.lr = 0.1, .width = 128, .T_k = {200, 5000}}});
  const OptimizerView& v = r.optimizers[0];
  EXPECT_EQ(v.ranking.front().lr, 0.01);
  EXPECT_EQ(v.at_best_lr.runs.size(), 2u);
  EXPECT_DOUBLE_EQ(*v.at_best_lr.coverage.back().mean, 800.0);
  EXPECT_EQ(v.widths, (std::vector<nlohmann::json>{64, 128}));
}

TEST(Reports, NotReachedPrintsAsDashInTablesAndEmptyInCsv) {
  const auto r = analyse({{.T_k = {500, std::nullopt}, .status = "max_steps", .last_step = 2000}});
  const std::string text = render_report_text(r);
  EXPECT_NE(text.find("max_steps"), std::string::npos);
  // The T_k table row of subtask 1: "1", its p_k, then "—".
  EXPECT_NE(text.find("—\n"), std::string::npos) << text;
  const std::string csv = runs_csv(r);
  EXPECT_NE(csv.find(",500,500,,"), std::string::npos) << csv;  // T_first, T_0, T_1 (empty)
  const auto j = analysis_json(r);
  EXPECT_TRUE(j["runs"][0]["T_k"][1].is_null());
  EXPECT_TRUE(j["runs"][0]["sal"].back().is_null());
}

}  // namespace
}  // namespace skillrun
