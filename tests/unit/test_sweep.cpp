// Sweeps as a specification: how a sweep file expands (product of the axes, zip groups moving
// together, file order, first dimension outermost), the run names, the errors that name a JSON
// path or a run, and how a run directory's files classify its status. Library-level: the CLI
// behaviour (skip, resume, retry, exit codes) is in tests/cli/test_sweep_cli.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "config/experiment.h"
#include "core/error.h"
#include "sweep/run_status.h"
#include "sweep/sweep.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

const char* const kBase = R"("base": {"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": 0.1}})";

Sweep expand(const std::string& text, const std::vector<std::string>& set = {}) {
  return expand_sweep(ordered_json::parse(text), ".", "test", set);
}

// The ConfigError message of expanding `text`, or "no error".
std::string sweep_error(const std::string& text) {
  try {
    expand(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

std::vector<std::string> names(const Sweep& s) {
  std::vector<std::string> out;
  for (const auto& r : s.runs) out.push_back(r.name);
  return out;
}

class SweepDir : public testing::Test {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("skillrun_sweep_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void write(const fs::path& relative, const std::string& text) {
    fs::create_directories((dir_ / relative).parent_path());
    std::ofstream(dir_ / relative) << text;
  }
  void write_summary(const std::string& status) {
    write("run/summary.json", R"({"status": ")" + status + R"(", "steps": 40})");
  }
  fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// expansion

// 3 widths x 2 seeds = 6 runs.
TEST(Sweep, AxesExpandToTheirCartesianProduct) {
  const Sweep s = expand(std::string("{") + kBase + R"(, "axes": {"model.width": [8, 16, 32], "seed": [0, 1]}})");
  EXPECT_EQ(s.runs.size(), 6u);
}

// A zip group of 3 pairs is one dimension: 2 seeds x 3 pairs = 6 runs, not 2 x 3 x 3 = 18.
TEST(Sweep, ZipGroupIsOneDimensionWhoseValuesPairUpByPosition) {
  const Sweep s = expand(std::string("{") + kBase + R"(, "axes": {"seed": [0, 1]},
      "zip": [{"optimizer.type": ["nmd", "adam", "muon"], "optimizer.lr": [0.01, 0.001, 0.02]}]})");
  ASSERT_EQ(s.runs.size(), 6u);
  for (const auto& run : s.runs) {
    const std::string type = run.config["optimizer"]["type"];
    const double lr = run.config["optimizer"]["lr"];
    EXPECT_EQ(lr, type == "nmd" ? 0.01 : type == "adam" ? 0.001 : 0.02) << run.name;
  }
}

// Nested loops in file order, the first dimension outermost: run 1 changes the last axis.
TEST(Sweep, RunOrderIsNestedLoopsFirstDimensionOutermost) {
  const Sweep s = expand(std::string("{") + kBase + R"(, "axes": {"model.width": [8, 16], "seed": [0, 1]}})");
  EXPECT_EQ(names(s), (std::vector<std::string>{"model.width=8,seed=0", "model.width=8,seed=1",
                                                 "model.width=16,seed=0", "model.width=16,seed=1"}));
  for (std::size_t i = 0; i < s.runs.size(); ++i) EXPECT_EQ(s.runs[i].index, i);
}

// optimizer.type comes first because the file lists it first, although "model" < "optimizer".
TEST(Sweep, NamesListTheVariedKeysInFileOrder) {
  const Sweep s = expand(std::string("{") + kBase +
                         R"(, "axes": {"optimizer.type": ["muon"], "model.width": [250], "seed": [0]}})");
  ASSERT_EQ(s.runs.size(), 1u);
  EXPECT_EQ(s.runs[0].name, "optimizer.type=muon,model.width=250,seed=0");
}

TEST(Sweep, ZipBeforeAxesInTheFileIsTheOuterDimension) {
  const Sweep s = expand(std::string("{") + kBase + R"(, "zip": [{"optimizer.type": ["nmd", "adam"],
      "optimizer.lr": [0.01, 0.001]}], "axes": {"seed": [0, 1]}})");
  EXPECT_EQ(names(s), (std::vector<std::string>{
                          "optimizer.type=nmd,optimizer.lr=0.01,seed=0", "optimizer.type=nmd,optimizer.lr=0.01,seed=1",
                          "optimizer.type=adam,optimizer.lr=0.001,seed=0",
                          "optimizer.type=adam,optimizer.lr=0.001,seed=1"}));
}

TEST(Sweep, SameFileExpandsToTheSameRunsEveryTime) {
  const std::string text = std::string("{") + kBase + R"(, "axes": {"optimizer.lr": [0.1, 0.01], "seed": [3, 1, 2]}})";
  const Sweep a = expand(text), b = expand(text);
  ASSERT_EQ(a.runs.size(), b.runs.size());
  for (std::size_t i = 0; i < a.runs.size(); ++i) {
    EXPECT_EQ(a.runs[i].name, b.runs[i].name);
    EXPECT_EQ(a.runs[i].config, b.runs[i].config);
  }
}

// The config of a run is the base with its overrides, resolved: defaults filled in.
TEST(Sweep, RunConfigIsTheResolvedBaseWithItsOverrides) {
  const Sweep s = expand(std::string("{") + kBase + R"(, "axes": {"model.width": [8]}})");
  json expected = {
      {"task", {{"type", "sparse_parity"}}}, {"optimizer", {{"type", "sgd"}, {"lr", 0.1}}}, {"model", {{"width", 8}}}};
  EXPECT_EQ(s.runs[0].config, to_json(parse_experiment(expected)));
  EXPECT_EQ(s.runs[0].config["eval"]["every"], 50);  // a default
}

TEST(Sweep, SetOverridesApplyToTheBaseOfEveryRun) {
  const Sweep s = expand(std::string("{") + kBase + R"(, "axes": {"seed": [0, 1]}})", {"train.max_steps=7"});
  for (const auto& run : s.runs) EXPECT_EQ(run.config["train"]["max_steps"], 7) << run.name;
}

TEST(Sweep, AnAxisOverridesASetOfTheSameKey) {
  const Sweep s = expand(std::string("{") + kBase + R"(, "axes": {"model.width": [8]}})", {"model.width=99"});
  EXPECT_EQ(s.runs[0].config["model"]["width"], 8);
}

TEST(Sweep, NoAxesIsOneRunNamedBase) {
  const Sweep s = expand(std::string("{") + kBase + "}");
  ASSERT_EQ(s.runs.size(), 1u);
  EXPECT_EQ(s.runs[0].name, "base");
}

TEST(Sweep, NameDefaultsToTheFileStemAndMayBeSet) {
  EXPECT_EQ(expand(std::string("{") + kBase + "}").name, "test");
  EXPECT_EQ(expand(std::string("{") + kBase + R"(, "name": "widths"})").name, "widths");
}

// ---------------------------------------------------------------------------------------------
// names

TEST(Sweep, ValuesFormatDeterministicallyInRunNames) {
  EXPECT_EQ(format_sweep_value(0.01), "0.01");
  EXPECT_EQ(format_sweep_value(1e-4), "0.0001");
  EXPECT_EQ(format_sweep_value(0.001), "0.001");
  EXPECT_EQ(format_sweep_value(1e30), "1e+30");   // fixed notation would be 31 digits
  EXPECT_EQ(format_sweep_value(1e-20), "1e-20");  // and 22 characters here
  EXPECT_EQ(format_sweep_value(250), "250");
  EXPECT_EQ(format_sweep_value(-3), "-3");
  EXPECT_EQ(format_sweep_value("adam"), "adam");
  EXPECT_EQ(format_sweep_value(true), "true");
}

TEST(Sweep, CharactersUnsafeInFileNamesBecomeUnderscores) {
  EXPECT_EQ(format_sweep_value("a/b c"), "a_b_c");
  EXPECT_EQ(format_sweep_value(json{{"type", "adam"}}), "__type___adam__");  // {"type":"adam"}
}

TEST(Sweep, TwoValuesThatFormatAlikeAreAnErrorNamingBothRuns) {
  EXPECT_EQ(sweep_error(std::string("{") + kBase + R"(, "axes": {"optimizer.lr": [1, 1.0]}})"),
            "run 1 (optimizer.lr=1): has the same directory name as run 0: two values of an axis are equal or "
            "format alike");
}

TEST(Sweep, LongNamesAreCutAndKeptUniqueByAHash) {
  // Run names "name=<value>" of 204 characters; the values themselves are valid config names.
  const std::string a(199, 'a'), b = std::string(198, 'a') + "b";
  const Sweep s = expand(std::string("{") + kBase + R"(, "axes": {"name": [")" + a + R"(", ")" + b + R"("]}})");
  ASSERT_EQ(s.runs.size(), 2u);
  EXPECT_LE(s.runs[0].name.size(), 200u);
  EXPECT_NE(s.runs[0].name, s.runs[1].name);
}

// Strings a hostile sweep file, config or command line may hold where a name comes from.
std::vector<std::string> hostile_texts() {
  std::vector<std::string> texts = {"",
                                    ".",
                                    "..",
                                    "../../etc",
                                    "/root",
                                    "a/b",
                                    ".hidden",
                                    "...",
                                    "a..b",
                                    "x/../../y",
                                    "line\nbreak",
                                    std::string("nul\0byte", 8),
                                    "\x01\x02\x7f",
                                    "tab\there",
                                    "\xc3\xbcnic\xc3\xb6" "de/\xe2\x80\xae..",
                                    "\xff\xfe",
                                    std::string(300, 'a'),
                                    std::string(300, '.'),
                                    std::string(150, '/') + std::string(150, '.'),
                                    "~",
                                    "-",
                                    "name=1,seed=2"};
  // And random bytes of every value, deterministically.
  uint32_t x = 12345;
  for (int n = 0; n < 300; ++n) {
    std::string t;
    for (int i = 0, len = n % 40 + (n % 7 == 0 ? 260 : 0); i < len; ++i) {
      x = x * 1664525u + 1013904223u;
      t += static_cast<char>(x >> 24);
    }
    texts.push_back(t);
  }
  return texts;
}

// A name that, put in a directory, names a file in that very directory: one path component,
// not "." or "..", not hidden, of the characters run names use, within NAME_MAX.
testing::AssertionResult single_safe_component(const std::string& name) {
  const bool chars = std::all_of(name.begin(), name.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           std::string_view("._+-,=~").find(ch) != std::string_view::npos;
  });
  const fs::path home = "/sweeps/out";
  if (!name.empty() && chars && name.front() != '.' && name.find("..") == std::string::npos && name.size() <= 255 &&
      (home / name).lexically_normal().parent_path() == home)
    return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\"" << name << "\" is not a single safe path component";
}

TEST(Sweep, SafePathComponentOfAnyTextIsOneSafeComponent) {
  std::set<std::string> long_names;
  for (const std::string& text : hostile_texts()) {
    const std::string name = safe_path_component(text);
    EXPECT_TRUE(single_safe_component(name)) << "from \"" << text << "\"";
    EXPECT_LE(name.size(), kMaxNameLength);
    EXPECT_TRUE(single_safe_component(safe_path_component(text, 20)));  // at least 32 all the same
    if (text.size() > kMaxNameLength) long_names.insert(name);
  }
  // Safe text stays as it is; long text is cut with a hash of the whole.
  EXPECT_EQ(safe_path_component("optimizer.lr=0.01,seed=1"), "optimizer.lr=0.01,seed=1");
  EXPECT_EQ(safe_path_component("../a/.b"), "_._a_.b");
  EXPECT_EQ(safe_path_component("a..b"), "a._b");
  EXPECT_NE(safe_path_component(std::string(300, 'a')), safe_path_component(std::string(299, 'a')));
  EXPECT_GT(long_names.size(), 1u);
}

// Whatever a sweep file holds, a sweep name and a run name is one safe component of the output
// directory, or the file is refused (ConfigError) naming what is wrong.
TEST(Sweep, NoKeyOrValueOfASweepFormsANameOutsideItsDirectory) {
  for (const std::string& text : hostile_texts()) {
    std::string dumped;
    try {
      dumped = json(text).dump();
    } catch (const json::exception&) {
      continue;  // not UTF-8: no JSON file holds it
    }
    // The file's stem as the default name is made safe, never refused.
    EXPECT_TRUE(single_safe_component(expand_sweep(ordered_json::parse(std::string("{") + kBase + "}"), ".", text).name))
        << "from the stem \"" << text << "\"";
    const std::vector<std::string> specs = {
        std::string("{") + kBase + R"(, "name": )" + dumped + "}",
        std::string("{") + kBase + R"(, "axes": {)" + dumped + R"(: [1]}})",
        std::string("{") + kBase + R"(, "axes": {"name": [)" + dumped + R"(]}})",
        std::string("{") + kBase + R"(, "axes": {"seed": [1], "name": [)" + dumped + R"(, "x"]}})",
    };
    for (const std::string& spec : specs) {
      try {
        const Sweep s = expand(spec);
        EXPECT_TRUE(single_safe_component(s.name)) << spec;
        for (const auto& run : s.runs) EXPECT_TRUE(single_safe_component(run.name)) << spec;
      } catch (const ConfigError&) {
        // refused: nothing is named after it
      }
    }
  }
}

TEST(Sweep, AHiddenOrOddStemNamesASafeSweepAndAnUnsafeNameIsRefused) {
  EXPECT_EQ(expand_sweep(ordered_json::parse(std::string("{") + kBase + "}"), ".", ".hidden").name, "_hidden");
  EXPECT_EQ(expand_sweep(ordered_json::parse(std::string("{") + kBase + "}"), ".", "my sweep").name, "my_sweep");
  for (const char* bad : {R"("../x")", R"(".x")", R"("a..b")", R"("a/b")"})
    EXPECT_EQ(sweep_error(std::string("{") + kBase + R"(, "name": )" + bad + "}").rfind("name: ", 0), 0u) << bad;
}

// ---------------------------------------------------------------------------------------------
// errors

TEST(Sweep, ZipListsOfUnequalLengthAreAnErrorNamingThePath) {
  EXPECT_EQ(sweep_error(std::string("{") + kBase +
                        R"(, "zip": [{"optimizer.type": ["nmd", "adam", "muon"], "optimizer.lr": [0.01, 0.001]}]})"),
            "zip[0].optimizer.lr: has 2 values but zip[0].optimizer.type has 3: the lists of a zip group pair up "
            "by position and must have equal lengths");
}

TEST(Sweep, UnknownKeyIsAnErrorNamingIt) {
  EXPECT_EQ(sweep_error(std::string("{") + kBase + R"(, "axis": {"seed": [0]}})"),
            "axis: unknown key (allowed: base, axes, zip, name, description)");
}

TEST(Sweep, BadValueIsAnErrorNamingTheRunAndTheConfigPath) {
  EXPECT_EQ(sweep_error(std::string("{") + kBase + R"(, "axes": {"optimizer.lr": [0.1, -1]}})"),
            "run 1 (optimizer.lr=-1): optimizer.lr: must be > 0, got -1");
}

TEST(Sweep, UnknownConfigKeyInAnAxisIsAnErrorNamingTheRun) {
  const std::string e = sweep_error(std::string("{") + kBase + R"(, "axes": {"model.widht": [8]}})");
  EXPECT_EQ(e.rfind("run 0 (model.widht=8): model.widht: unknown key", 0), 0u) << e;
}

TEST(Sweep, EmptyValueListIsAnErrorNamingThePath) {
  EXPECT_EQ(sweep_error(std::string("{") + kBase + R"(, "axes": {"seed": []}})"),
            "axes.seed: must be a non-empty list of values, got []");
}

TEST(Sweep, KeyVariedTwiceIsAnError) {
  EXPECT_EQ(sweep_error(std::string("{") + kBase + R"(, "axes": {"seed": [0]}, "zip": [{"seed": [1]}]})"),
            "zip[0].seed: is varied twice (also at axes.seed)");
}

TEST(Sweep, KeyThatIsNotDottedIdentifiersIsAnError) {
  EXPECT_EQ(sweep_error(std::string("{") + kBase + R"(, "axes": {"model..width": [8]}})"),
            "axes.model..width: not a dotted config key such as optimizer.lr");
}

TEST(Sweep, MissingBaseIsAnError) {
  EXPECT_EQ(sweep_error(R"({"axes": {"seed": [0]}})"), "base: missing: a config object, or the path of a config file");
}

// ---------------------------------------------------------------------------------------------
// files

TEST_F(SweepDir, BasePathIsRelativeToTheSweepFile) {
  write("configs/base.json", R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "adam", "lr": 0.001}})");
  write("configs/sweeps/s.json", R"({"base": "../base.json", "axes": {"seed": [0, 1]}})");
  const Sweep s = load_sweep(dir_ / "configs/sweeps/s.json");
  EXPECT_EQ(s.name, "s");
  ASSERT_EQ(s.runs.size(), 2u);
  EXPECT_EQ(s.runs[0].config["optimizer"]["type"], "adam");
}

// The committed sweeps reproduce the committed paper configs (names aside) at the paper's lrs.
TEST(Sweep, PaperFig4SweepHoldsEveryFig4Config) {
  const fs::path root = SKILLRUN_SOURCE_DIR;
  const Sweep s = load_sweep(root / "configs/sweeps/paper_fig4.json");
  EXPECT_EQ(s.runs.size(), 3u * 3u * 5u * 3u);  // optimizers x lrs x widths x seeds
  for (const auto& [type, lr] : {std::pair{"nmd", "0.01"}, {"adam", "0.001"}, {"muon", "0.01"}}) {
    for (int width : {250, 450, 650, 850, 1050}) {
      const std::string name = fmt::format("optimizer.type={},optimizer.lr={},model.width={},seed=0", type, lr, width);
      const auto run = std::find_if(s.runs.begin(), s.runs.end(), [&](const SweepRun& r) { return r.name == name; });
      ASSERT_NE(run, s.runs.end()) << name;
      const fs::path file = root / fmt::format("configs/paper/fig4_{}_w{}.json", type, width);
      json paper = to_json(load_experiment(file.string(), {}));
      json ours = run->config;
      paper.erase("name");
      ours.erase("name");
      EXPECT_EQ(ours, paper) << name;
    }
  }
}

TEST(Sweep, PaperFig2SweepHoldsEveryFig2Config) {
  const fs::path root = SKILLRUN_SOURCE_DIR;
  const Sweep s = load_sweep(root / "configs/sweeps/paper_fig2.json");
  EXPECT_EQ(s.runs.size(), 3u * 3u);  // (optimizer, lr) pairs x seeds
  for (const std::string type : {"nmd", "adam", "muon"}) {
    const auto run = std::find_if(s.runs.begin(), s.runs.end(), [&](const SweepRun& r) {
      return r.config["optimizer"]["type"] == type && r.config["seed"] == 0;
    });
    ASSERT_NE(run, s.runs.end()) << type;
    json paper = to_json(load_experiment((root / ("configs/paper/fig2_" + type + ".json")).string(), {}));
    json ours = run->config;
    paper.erase("name");
    ours.erase("name");
    EXPECT_EQ(ours, paper) << type;
  }
}

// ---------------------------------------------------------------------------------------------
// run directory status

TEST_F(SweepDir, NoDirectoryIsPending) { EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Pending); }

TEST_F(SweepDir, ConfigWithoutSummaryIsPending) {
  write("run/config.json", "{}");
  EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Pending);
}

TEST_F(SweepDir, ConvergedAndMaxStepsAreDone) {
  write_summary("converged");
  EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Done);
  EXPECT_EQ(inspect_run(dir_ / "run").detail, "converged, 40 steps");
  write_summary("max_steps");
  EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Done);
}

TEST_F(SweepDir, DivergedIsAResult) {
  write_summary("diverged");
  EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Diverged);
  EXPECT_TRUE(is_result(SweepRunState::Diverged));
}

TEST_F(SweepDir, RunningAndInterruptedAreToResume) {
  write_summary("running");
  EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Running);
  write_summary("interrupted");
  EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Interrupted);
  EXPECT_FALSE(is_result(SweepRunState::Interrupted));
}

TEST_F(SweepDir, UnreadableSummaryIsIncomplete) {
  write("run/summary.json", "{\"status\": ");
  EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Incomplete);
}

// A run that exited 1 mid-way leaves its summary at "running": the marker decides.
TEST_F(SweepDir, FailedMarkerOutranksAnUnfinishedSummary) {
  write_summary("running");
  write_failed_marker(dir_ / "run", {1, 0, "starting\nerror: cannot write metrics.csv\n"});
  const RunDirState s = inspect_run(dir_ / "run");
  EXPECT_EQ(s.state, SweepRunState::Failed);
  EXPECT_EQ(s.detail, "exit 1: error: cannot write metrics.csv");
}

TEST_F(SweepDir, FinishedSummaryOutranksAFailedMarker) {
  write_summary("converged");
  write_failed_marker(dir_ / "run", {1, 0, ""});
  EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Done);
}

TEST_F(SweepDir, RemovingTheFailedMarkerMakesTheRunResumable) {
  write_summary("running");
  write_failed_marker(dir_ / "run", {-1, 9, ""});
  EXPECT_EQ(inspect_run(dir_ / "run").detail, "killed by signal 9");
  remove_failed_marker(dir_ / "run");
  EXPECT_EQ(inspect_run(dir_ / "run").state, SweepRunState::Running);
}

// ---------------------------------------------------------------------------------------------
// config.json of an existing run directory

TEST_F(SweepDir, NoConfigFileIsNoDifference) {
  const json resolved = to_json(
      parse_experiment(json{{"task", {{"type", "sparse_parity"}}}, {"optimizer", {{"type", "sgd"}, {"lr", 0.1}}}}));
  EXPECT_FALSE(config_difference(dir_ / "run", resolved, "in the sweep"));
}

// The stored config is resolved again: a file with defaults left out still matches.
TEST_F(SweepDir, SameConfigWrittenDifferentlyIsNoDifference) {
  write("run/config.json", R"({"optimizer": {"lr": 0.1, "type": "sgd"}, "task": {"type": "sparse_parity"}})");
  const json resolved = to_json(
      parse_experiment(json{{"task", {{"type", "sparse_parity"}}}, {"optimizer", {{"type", "sgd"}, {"lr", 0.1}}}}));
  EXPECT_FALSE(config_difference(dir_ / "run", resolved, "in the sweep"));
}

TEST_F(SweepDir, DifferentConfigNamesTheKeyAndBothValues) {
  write("run/config.json", R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": 0.1}})");
  const json resolved = to_json(
      parse_experiment(json{{"task", {{"type", "sparse_parity"}}}, {"optimizer", {{"type", "sgd"}, {"lr", 0.2}}}}));
  EXPECT_EQ(config_difference(dir_ / "run", resolved, "in the sweep").value_or("none"),
            "optimizer.lr (0.1 in the directory, 0.2 in the sweep)");
}

// ---------------------------------------------------------------------------------------------
// run.lock

TEST_F(SweepDir, RunLockIsExclusiveUntilReleased) {
  {
    std::optional<FileLock> first = try_lock_run(dir_);
    ASSERT_TRUE(first);
    EXPECT_FALSE(try_lock_run(dir_));  // another open file description: refused
  }
  EXPECT_TRUE(try_lock_run(dir_));
}

}  // namespace
}  // namespace skillrun
