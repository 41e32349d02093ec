// The experiment config as a specification: defaults, round trip through the resolved JSON,
// the exact error message for each kind of mistake, `--set` overrides, file reading, and the
// memory estimate that rejects impossible configs. Messages are compared in full where the
// wording is part of the user interface (docs/CONFIG.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "config/experiment.h"
#include "core/error.h"
#include "core/strings.h"

namespace skillrun {
namespace {

using nlohmann::json;

// The smallest valid config: only the task type and the optimizer are required.
json minimal() { return {{"task", {{"type", "sparse_parity"}}}, {"optimizer", {{"type", "sgd"}, {"lr", 0.1}}}}; }

json with_optimizer(json optimizer) {
  json j = minimal();
  j["optimizer"] = std::move(optimizer);
  return j;
}

// The ConfigError message parse_experiment throws, or "no error".
std::string config_error(const json& j) {
  try {
    parse_experiment(j);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

std::string override_error(json j, const std::string& assignment) {
  try {
    apply_override(j, assignment);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "no error";
}

testing::AssertionResult starts_with(const std::string& text, const std::string& prefix) {
  if (text.starts_with(prefix)) return testing::AssertionSuccess();
  return testing::AssertionFailure()
         << "\"" << text << "\"\ndoes not start with\n\"" << prefix << "\"";
}

testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\"" << text << "\"\ndoes not contain\n\"" << part << "\"";
}

// A file in a fresh temp directory, removed with the object.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    dir_ =
        std::filesystem::temp_directory_path() /
        ("skillrun_test_config_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    std::ofstream(path()) << contents;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string path() const { return (dir_ / "config.json").string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
};

// ---------------------------------------------------------------------------------------------
// defaults and round trip

TEST(ConfigDefaults, MinimalConfigResolvesEveryDefault) {
  const ExperimentConfig c = parse_experiment(minimal());
  EXPECT_EQ(c.name, "run");
  EXPECT_EQ(c.seed, 0u);
  EXPECT_EQ(c.device, DeviceChoice::Auto);
  EXPECT_EQ(c.precision, Precision::Fp32);
  EXPECT_EQ(c.task.type, TaskType::SparseParity);
  EXPECT_EQ(c.task.n_tasks, 5);
  EXPECT_EQ(c.task.n_bits, 100);
  EXPECT_EQ(c.task.k, 3);
  EXPECT_DOUBLE_EQ(c.task.zipf_exponent, 1.4);
  EXPECT_EQ(c.model.type, "mlp");
  EXPECT_EQ(c.model.width, 250);
  EXPECT_EQ(c.model.depth, 2);
  EXPECT_EQ(c.train.batch_size, 10000);
  EXPECT_EQ(c.train.max_steps, 20000);
  EXPECT_TRUE(c.train.stop_when_learned);
  EXPECT_EQ(c.train.checkpoint_every, 0);
  EXPECT_DOUBLE_EQ(c.train.checkpoint_seconds, 300.0);
  EXPECT_EQ(c.eval.every, 50);
  EXPECT_EQ(c.eval.samples_per_task, 1000);
  EXPECT_DOUBLE_EQ(c.eval.tau_bits, 0.1);
}

TEST(ConfigDefaults, SgdMomentumDefaultsToZero) {
  EXPECT_EQ(parse_experiment(minimal()).optimizer.momentum, 0.0);
}

TEST(ConfigDefaults, NmdMomentumDefaultsToPointNine) {
  const auto c = parse_experiment(with_optimizer({{"type", "nmd"}, {"lr", 0.1}}));
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.9);
}

TEST(ConfigDefaults, MuonMomentumDefaultsToPointNineFive) {
  const auto c = parse_experiment(with_optimizer({{"type", "muon"}, {"lr", 0.02}}));
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.95);
}

TEST(ConfigDefaults, MuonOtherParamsDefaultToAdamLrOneEMinusThree) {
  const auto c = parse_experiment(with_optimizer({{"type", "muon"}, {"lr", 0.02}}));
  ASSERT_NE(c.optimizer.other, nullptr);
  EXPECT_EQ(c.optimizer.other->type, OptimizerType::Adam);
  EXPECT_DOUBLE_EQ(c.optimizer.other->lr, 1e-3);
  EXPECT_EQ(c.optimizer.other->other, nullptr);
}

TEST(ConfigDefaults, MuonOtherParamsWithoutLrGetLrOneEMinusThree) {
  const auto c = parse_experiment(
      with_optimizer({{"type", "muon"}, {"lr", 0.02}, {"other_params", {{"type", "sgd"}}}}));
  EXPECT_EQ(c.optimizer.other->type, OptimizerType::Sgd);
  EXPECT_DOUBLE_EQ(c.optimizer.other->lr, 1e-3);
}

TEST(ConfigDefaults, MuonOtherParamsWithoutTypeAreAdam) {
  const auto c = parse_experiment(
      with_optimizer({{"type", "muon"}, {"lr", 0.02}, {"other_params", {{"lr", 0.005}}}}));
  EXPECT_EQ(c.optimizer.other->type, OptimizerType::Adam);
  EXPECT_DOUBLE_EQ(c.optimizer.other->lr, 0.005);
}

TEST(ConfigDefaults, NonMuonOptimizerHasNoOtherParams) {
  EXPECT_EQ(parse_experiment(minimal()).optimizer.other, nullptr);
}

TEST(ConfigRoundTrip, ResolvedJsonOfDefaultsReparsesToTheSameJson) {
  const json resolved = to_json(parse_experiment(minimal()));
  EXPECT_EQ(to_json(parse_experiment(resolved)), resolved);
}

TEST(ConfigRoundTrip, EveryNonDefaultValueSurvivesTheRoundTrip) {
  const json in = {
      {"name", "exp-1.a_b"},
      {"seed", std::numeric_limits<uint64_t>::max()},
      {"device", "cpu"},
      {"precision", "fp32"},
      {"task",
       {{"type", "sparse_parity"},
        {"n_tasks", 7},
        {"n_bits", 20},
        {"k", 4},
        {"zipf_exponent", 0.0}}},
      {"model", {{"type", "mlp"}, {"width", 33}, {"depth", 1}}},
      {"optimizer",
       {{"type", "muon"},
        {"lr", 0.02},
        {"momentum", 0.5},
        {"nesterov", true},
        {"weight_decay", 0.01},
        {"msign", "polar_express"},
        {"ns_steps", 7},
        {"scale", "moonshot"},
        {"muon_params", "all_weights"},
        {"weight_decay_mode", "coupled"},
        {"other_params",
         {{"type", "adamw"},
          {"lr", 0.003},
          {"weight_decay", 0.1},
          {"beta1", 0.8},
          {"beta2", 0.95},
          {"eps", 1e-10}}}}},
      {"train", {{"batch_size", 64}, {"max_steps", 4000000000LL}, {"stop_when_learned", false},
                 {"checkpoint_every", 500}, {"checkpoint_seconds", 0.0}}},
      {"eval", {{"every", 3}, {"samples_per_task", 17}, {"tau_bits", 0.25}, {"spectra_every", 2}}},
  };
  // Every key is given, so the resolved JSON is the input itself.
  EXPECT_EQ(to_json(parse_experiment(in)), in);
}

TEST(ConfigRoundTrip, SeedIsWrittenAsUnsignedInteger) {
  json j = minimal();
  j["seed"] = 42;
  EXPECT_TRUE(to_json(parse_experiment(j))["seed"].is_number_unsigned());
}

TEST(ConfigRoundTrip, AdamResolvedJsonHasOnlyAdamKeys) {
  const json o =
      to_json(parse_experiment(with_optimizer({{"type", "adam"}, {"lr", 0.001}})))["optimizer"];
  const json expected = {{"type", "adam"}, {"lr", 0.001},    {"weight_decay", 0.0},
                         {"beta1", 0.9},   {"beta2", 0.999}, {"eps", 1e-8}};
  EXPECT_EQ(o, expected);
}

TEST(ConfigRoundTrip, SgdResolvedJsonHasMomentumAndNesterov) {
  const json o = to_json(parse_experiment(minimal()))["optimizer"];
  const json expected = {
      {"type", "sgd"}, {"lr", 0.1}, {"weight_decay", 0.0}, {"momentum", 0.0}, {"nesterov", false}};
  EXPECT_EQ(o, expected);
}

TEST(ConfigRoundTrip, MuonResolvedJsonNestsDefaultOtherParams) {
  const json o =
      to_json(parse_experiment(with_optimizer({{"type", "muon"}, {"lr", 0.02}})))["optimizer"];
  const json other = {{"type", "adam"}, {"lr", 0.001},    {"weight_decay", 0.0},
                      {"beta1", 0.9},   {"beta2", 0.999}, {"eps", 1e-8}};
  EXPECT_EQ(o["other_params"], other);
  EXPECT_EQ(o["msign"], "ns5");
  EXPECT_EQ(o["ns_steps"], 5);
  EXPECT_EQ(o["scale"], "sqrt_ratio");
  EXPECT_EQ(o["muon_params"], "hidden");
}

// ---------------------------------------------------------------------------------------------
// errors: structure

TEST(ConfigErrors, RootMustBeAnObject) {
  EXPECT_EQ(config_error(json::array({1})), "the config must be a JSON object, got [1]");
}

TEST(ConfigErrors, UnknownRootKeyIsNamed) {
  json j = minimal();
  j["nmae"] = "x";
  EXPECT_EQ(config_error(j),
            "nmae: unknown key (did you mean \"name\"? allowed: name, seed, device, precision, task, model, optimizer, "
            "train, eval)");
}

TEST(ConfigErrors, UnknownModelKeyListsAllowedKeys) {
  json j = minimal();
  j["model"] = {{"widht", 100}};
  EXPECT_EQ(config_error(j), "model.widht: unknown key (did you mean \"width\"? allowed: type, width, depth)");
}

TEST(ConfigErrors, SectionMustBeAnObject) {
  json j = minimal();
  j["train"] = 5;
  EXPECT_EQ(config_error(j), "train: expected an object, got 5");
}

TEST(ConfigErrors, MissingOptimizerIsAnError) {
  json j = minimal();
  j.erase("optimizer");
  EXPECT_TRUE(starts_with(config_error(j), "optimizer: missing"));
}

// The task defines the experiment like the optimizer does: no default task is trained silently.
TEST(ConfigErrors, MissingTaskIsAnError) {
  json j = minimal();
  j.erase("task");
  EXPECT_EQ(config_error(j), "task: required: an object with at least \"type\" (sparse_parity or icl_linreg)");
}

TEST(ConfigErrors, MissingTaskTypeIsNamed) {
  json j = minimal();
  j["task"] = {{"n_tasks", 3}};
  EXPECT_EQ(config_error(j), "task: missing required key \"type\" (sparse_parity or icl_linreg)");
}

TEST(ConfigErrors, MissingLrIsNamed) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "sgd"}})),
            "optimizer: missing required key \"lr\"");
}

TEST(ConfigErrors, MissingTypeIsNamed) {
  EXPECT_EQ(config_error(with_optimizer({{"lr", 0.1}})),
            "optimizer: missing required key \"type\"");
}

// ---------------------------------------------------------------------------------------------
// errors: types and ranges

TEST(ConfigErrors, StringForIntegerIsQuotedInMessage) {
  json j = minimal();
  j["model"] = {{"width", "abc"}};
  EXPECT_EQ(config_error(j), "model.width: expected an integer, got \"abc\"");
}

TEST(ConfigErrors, FractionalIntegerIsRejected) {
  json j = minimal();
  j["model"] = {{"width", 2.5}};
  EXPECT_EQ(config_error(j), "model.width: expected an integer, got 2.5");
}

// Integral floats are rejected too: integers are JSON integers, so 250.0 never passes.
TEST(ConfigErrors, IntegralFloatIsRejectedAsInteger) {
  json j = minimal();
  j["model"] = {{"width", 250.0}};
  EXPECT_EQ(config_error(j), "model.width: expected an integer, got 250.0");
}

TEST(ConfigErrors, IntegerBeyondIntRangeIsRejectedBeforeNarrowing) {
  json j = minimal();
  j["model"] = {{"width", 1000000000000LL}};
  EXPECT_EQ(config_error(j), "model.width: must be <= 2147483647, got 1000000000000");
}

TEST(ConfigErrors, HugeUnsignedIntegerIsRejectedBeforeNarrowing) {
  json j = minimal();
  j["train"] = {{"max_steps", std::numeric_limits<uint64_t>::max()}};
  EXPECT_EQ(config_error(j),
            "train.max_steps: must be <= 4294967295, got 18446744073709551615");
}

TEST(ConfigErrors, ZeroWidthIsBelowMinimum) {
  json j = minimal();
  j["model"] = {{"width", 0}};
  EXPECT_EQ(config_error(j), "model.width: must be >= 1, got 0");
}

TEST(ConfigErrors, NegativeLrIsNamed) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "sgd"}, {"lr", -1}})),
            "optimizer.lr: must be > 0, got -1");
}

TEST(ConfigErrors, ZeroLrIsRejected) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "sgd"}, {"lr", 0}})),
            "optimizer.lr: must be > 0, got 0");
}

TEST(ConfigErrors, StringLrIsNotANumber) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "sgd"}, {"lr", "0.1"}})),
            "optimizer.lr: expected a number, got \"0.1\"");
}

TEST(ConfigErrors, BoolIsNotANumber) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "sgd"}, {"lr", true}})),
            "optimizer.lr: expected a number, got true");
}

TEST(ConfigErrors, MomentumOfOneIsOutsideUnitInterval) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "sgd"}, {"lr", 0.1}, {"momentum", 1}})),
            "optimizer.momentum: must be in [0, 1), got 1");
}

TEST(ConfigErrors, NegativeWeightDecayIsRejected) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "adamw"}, {"lr", 0.1}, {"weight_decay", -0.5}})),
            "optimizer.weight_decay: must be >= 0, got -0.5");
}

TEST(ConfigErrors, NsStepsAboveHundredIsRejected) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "muon"}, {"lr", 0.1}, {"ns_steps", 101}})),
            "optimizer.ns_steps: must be <= 100, got 101");
}

TEST(ConfigErrors, NonBoolNesterovIsRejected) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "sgd"}, {"lr", 0.1}, {"nesterov", 1}})),
            "optimizer.nesterov: expected true or false, got 1");
}

TEST(ConfigErrors, KAboveNBitsNamesBoth) {
  json j = minimal();
  j["task"] = {{"type", "sparse_parity"}, {"k", 101}};
  EXPECT_EQ(config_error(j), "task.k: must be <= task.n_bits (100), got 101");
}

TEST(ConfigErrors, NegativeZipfExponentIsRejected) {
  json j = minimal();
  j["task"] = {{"type", "sparse_parity"}, {"zipf_exponent", -0.1}};
  EXPECT_EQ(config_error(j), "task.zipf_exponent: must be >= 0, got -0.1");
}

TEST(ConfigErrors, NegativeSeedIsRejected) {
  json j = minimal();
  j["seed"] = -1;
  EXPECT_EQ(config_error(j), "seed: must be >= 0, got -1");
}

TEST(ConfigErrors, NameWithSlashIsRejected) {
  json j = minimal();
  j["name"] = "a/b";
  EXPECT_TRUE(starts_with(config_error(j), "name: must be non-empty and use only letters"));
  EXPECT_TRUE(contains(config_error(j), "got \"a/b\""));
}

TEST(ConfigErrors, EmptyNameIsRejected) {
  json j = minimal();
  j["name"] = "";
  EXPECT_TRUE(starts_with(config_error(j), "name: must be non-empty"));
}

TEST(ConfigErrors, DotDotNameIsRejected) {
  json j = minimal();
  j["name"] = "..";
  EXPECT_TRUE(starts_with(config_error(j), "name: must be non-empty"));
}

// The default run directory is runs/<name>-YYYYmmdd-HHMMSS[-N], and a file name has at most 255
// bytes: a 300-character name used to validate and then fail at `run` ("File name too long").
TEST(ConfigErrors, NameLongerThanTwoHundredCharactersIsRejected) {
  json j = minimal();
  j["name"] = std::string(201, 'a');
  EXPECT_EQ(config_error(j),
            "name: must be at most 200 characters (it becomes part of the run directory's name), got 201");
}

TEST(Config, NameOfTwoHundredCharactersIsAccepted) {
  json j = minimal();
  j["name"] = std::string(200, 'a');
  EXPECT_EQ(parse_experiment(j).name.size(), 200u);
}

TEST(ConfigErrors, UnknownDeviceListsChoices) {
  json j = minimal();
  j["device"] = "gpu";
  EXPECT_EQ(config_error(j), "device: unknown device \"gpu\" (expected one of: auto, cpu, cuda)");
}

TEST(ConfigErrors, UnknownPrecisionListsChoices) {
  json j = minimal();
  j["precision"] = "fp16";
  EXPECT_EQ(config_error(j), "precision: unknown precision \"fp16\" (expected one of: fp32, tf32, bf16, fp64)");
}

TEST(Config, PrecisionAcceptsTf32AndBf16) {
  for (Precision p : {Precision::Fp32, Precision::Tf32, Precision::Bf16}) {
    json j = minimal();
    j["precision"] = name(p);
    EXPECT_EQ(parse_experiment(j).precision, p);
  }
}

// device and precision are read once, into enums, and written back as the same spellings: the
// resolved config (config.json) says what the file said.
TEST(Config, DeviceAndPrecisionRoundTripThroughTheirSpellings) {
  for (DeviceChoice d : {DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda}) {
    json j = minimal();
    j["device"] = name(d);
    const ExperimentConfig c = parse_experiment(j);
    EXPECT_EQ(c.device, d);
    EXPECT_EQ(to_json(c)["device"], j["device"]);
  }
  json icl = minimal();
  icl["task"] = {{"type", "icl_linreg"}, {"d", 4}};
  icl["optimizer"] = {{"type", "gd"}, {"lr", 0.1}};
  icl["precision"] = "fp64";
  const ExperimentConfig c = parse_experiment(icl);
  EXPECT_EQ(c.precision, Precision::Fp64);
  EXPECT_EQ(to_json(c)["precision"], "fp64");
  EXPECT_EQ(parse_experiment(to_json(c)).precision, Precision::Fp64);
}

// A flag that names a config choice without a config (bench --msign's --device, --precision)
// reads it as the config key does: the same message, under the flag's name.
TEST(ConfigErrors, AChoiceParsedOutsideAConfigNamesItsPathAndListsTheChoices) {
  EXPECT_EQ(parse_config_choice<Precision>("--precision", "bf16"), Precision::Bf16);
  EXPECT_EQ(parse_config_choice<DeviceChoice>("--device", "cuda"), DeviceChoice::Cuda);
  try {
    parse_config_choice<Precision>("--precision", "fp16");
    ADD_FAILURE() << "fp16 accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.path(), "--precision");
    EXPECT_STREQ(e.what(), "--precision: unknown precision \"fp16\" (expected one of: fp32, tf32, bf16, fp64)");
  }
  try {
    parse_config_choice<DeviceChoice>("device", "GPU\n");
    ADD_FAILURE() << "GPU accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "device: unknown device \"GPU\\n\" (expected one of: auto, cpu, cuda)");
  }
}

// ---------------------------------------------------------------------------------------------
// errors: optimizer types and per-type keys

TEST(ConfigErrors, UnknownOptimizerTypeListsChoices) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "adm"}, {"lr", 0.1}})),
            "optimizer.type: unknown optimizer \"adm\" (expected one of: sgd, nmd, adam, adamw, "
            "signgd, muon)");
}

TEST(ConfigErrors, MsignOnSgdIsOnlyValidForMuon) {
  EXPECT_TRUE(
      starts_with(config_error(with_optimizer({{"type", "sgd"}, {"lr", 0.1}, {"msign", "svd"}})),
                  "optimizer.msign: only valid when optimizer.type is muon"));
}

TEST(ConfigErrors, MomentumOnAdamNamesTheTypesThatTakeIt) {
  EXPECT_TRUE(
      starts_with(config_error(with_optimizer({{"type", "adam"}, {"lr", 0.1}, {"momentum", 0.9}})),
                  "optimizer.momentum: only valid when optimizer.type is sgd, nmd, signgd "
                  "or muon"));
}

TEST(ConfigErrors, BetaOnSgdIsOnlyValidForAdam) {
  EXPECT_TRUE(
      starts_with(config_error(with_optimizer({{"type", "sgd"}, {"lr", 0.1}, {"beta1", 0.9}})),
                  "optimizer.beta1: only valid when optimizer.type is adam or adamw"));
}

TEST(ConfigErrors, NesterovOnNmdIsRejected) {
  EXPECT_TRUE(
      starts_with(config_error(with_optimizer({{"type", "nmd"}, {"lr", 0.1}, {"nesterov", true}})),
                  "optimizer.nesterov: only valid when optimizer.type is sgd or muon"));
}

TEST(ConfigErrors, OtherParamsOnAdamIsOnlyValidForMuon) {
  EXPECT_TRUE(starts_with(config_error(with_optimizer(
                              {{"type", "adam"}, {"lr", 0.1}, {"other_params", json::object()}})),
                          "optimizer.other_params: only valid when optimizer.type is muon"));
}

TEST(ConfigErrors, UnknownOptimizerKeyIsNamedWithTheKeyItProbablyMeant) {
  EXPECT_TRUE(starts_with(config_error(with_optimizer({{"type", "sgd"}, {"lr", 0.1}, {"momentun", 0.9}})),
                          "optimizer.momentun: unknown key (did you mean \"momentum\"? allowed: type, lr, momentum"));
  // Nothing close: no guess, just the allowed keys.
  EXPECT_TRUE(starts_with(config_error(with_optimizer({{"type", "sgd"}, {"lr", 0.1}, {"speed", 0.9}})),
                          "optimizer.speed: unknown key (allowed: type, lr"));
}

TEST(NearestName, SuggestsOnlyAWordCloseEnoughToBeMeant) {
  const std::vector<std::string> commands = {"run", "validate", "bench", "analyze", "sweep", "devices"};
  EXPECT_EQ(nearest_name("analyse", commands), "analyze");  // one substitution
  EXPECT_EQ(nearest_name("runn", commands), "run");         // one insertion
  EXPECT_EQ(nearest_name("swep", commands), "sweep");       // one deletion
  EXPECT_FALSE(nearest_name("frobnicate", commands).has_value());
  EXPECT_FALSE(nearest_name("xyz", commands).has_value());  // 3 letters: 1 edit allowed, "run" is 3 away
  EXPECT_EQ(nearest_name("widht", std::vector<std::string>{"type", "width", "depth"}), "width");  // a swap
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);                                              // the textbook pair
  EXPECT_EQ(edit_distance("ab", "ba"), 1u);                                                       // one swap
}

TEST(ConfigErrors, UnknownMsignListsChoices) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "muon"}, {"lr", 0.1}, {"msign", "ns6"}})),
            "optimizer.msign: unknown msign method \"ns6\" (expected one of: ns5, polar_express, "
            "svd, norm_matched)");
}

TEST(ConfigErrors, NestedLrErrorHasNestedPath) {
  EXPECT_EQ(config_error(with_optimizer(
                {{"type", "muon"}, {"lr", 0.1}, {"other_params", {{"type", "adam"}, {"lr", -2}}}})),
            "optimizer.other_params.lr: must be > 0, got -2");
}

TEST(ConfigErrors, MuonCannotBeOtherParams) {
  EXPECT_TRUE(starts_with(
      config_error(
          with_optimizer({{"type", "muon"}, {"lr", 0.1}, {"other_params", {{"type", "muon"}}}})),
      "optimizer.other_params.type: muon cannot"));
}

TEST(ConfigErrors, MuonKeyInsideOtherParamsIsUnknown) {
  EXPECT_TRUE(starts_with(
      config_error(
          with_optimizer({{"type", "muon"}, {"lr", 0.1}, {"other_params", {{"ns_steps", 3}}}})),
      "optimizer.other_params.ns_steps: unknown key"));
}

TEST(ConfigErrors, PerTypeRuleAppliesInsideOtherParams) {
  EXPECT_TRUE(starts_with(
      config_error(with_optimizer({{"type", "muon"},
                                   {"lr", 0.1},
                                   {"other_params", {{"type", "adam"}, {"momentum", 0.9}}}})),
      "optimizer.other_params.momentum: only valid when "
      "optimizer.other_params.type is sgd, nmd or signgd"));
}

TEST(ConfigErrors, OtherParamsMustBeAnObject) {
  EXPECT_EQ(config_error(with_optimizer({{"type", "muon"}, {"lr", 0.1}, {"other_params", "adam"}})),
            "optimizer.other_params: expected an object, got \"adam\"");
}

// ---------------------------------------------------------------------------------------------
// memory estimate

// Defaults: D = 5 + 100 = 105; layers 105 -> 250 -> 2.
// P = 105*250 + 250 + 250*2 + 2 = 27002; 4P = 108008.
// batch: 10000 * (105 + 2*(250 + 2) + 8) = 6170000 (8: the ReLU mask of the hidden layer, 250
// columns padded to 256 bits = 8 floats), plus 10000*8 = 80000.
// eval: 5 * 1000 * (105 + 4) = 545000.
// floats = 108008 + 6170000 + 80000 + 545000 = 6903008; bytes = 4 * that = 27612032.
TEST(ConfigMemory, DefaultEstimateMatchesHandComputation) {
  EXPECT_EQ(estimated_memory_bytes(parse_experiment(minimal())), 27612032u);
}

// Depth 1 is linear 105 -> 2: P = 212, 4P = 848; batch 10000*(105 + 2*2) + 80000 = 1170000;
// eval 545000; floats = 1715848; bytes = 6863392.
TEST(ConfigMemory, DepthOneIsALinearModel) {
  json j = minimal();
  j["model"] = {{"depth", 1}};
  EXPECT_EQ(estimated_memory_bytes(parse_experiment(j)), 6863392u);
}

TEST(ConfigMemory, HugeConfigSaturatesInsteadOfOverflowing) {
  ExperimentConfig c;
  c.model.width = std::numeric_limits<int>::max();
  c.model.depth = std::numeric_limits<int>::max();
  c.train.batch_size = std::numeric_limits<int>::max();
  EXPECT_EQ(estimated_memory_bytes(c), std::numeric_limits<std::size_t>::max());
}

// batch term: 2e9 * (105 + 2*(100000 + 2) + 8) = 4.002e14 floats -> 1.6 PB, far above any
// machine and far above the weights (4 * 1.08e7) and the eval set (5.45e5).
TEST(ConfigMemory, HugeBatchIsRejectedNamingBatchSize) {
  json j = minimal();
  j["train"] = {{"batch_size", 2000000000}};
  j["model"] = {{"width", 100000}};
  EXPECT_TRUE(starts_with(config_error(j),
                          "train.batch_size: buffers of 1.6 PB cannot be allocated (this machine "
                          "has "));
}

// Weights: 100000 hidden layers of 100000^2 -> 4e15 floats, dominating the batch term.
TEST(ConfigMemory, HugeModelIsRejectedNamingWidth) {
  json j = minimal();
  j["model"] = {{"width", 100000}, {"depth", 100000}};
  j["train"] = {{"batch_size", 1}};
  EXPECT_TRUE(starts_with(config_error(j), "model.width: buffers of "));
}

// Eval: 1e6 tasks * 1e6 samples * (1e6 + 100 + 4) ~ 1e18 floats, the largest term.
TEST(ConfigMemory, HugeEvalSetIsRejectedNamingSamplesPerTask) {
  json j = minimal();
  j["task"] = {{"type", "sparse_parity"}, {"n_tasks", 1000000}};
  j["eval"] = {{"samples_per_task", 1000000}};
  j["train"] = {{"batch_size", 1}};
  j["model"] = {{"width", 1}};
  EXPECT_TRUE(starts_with(config_error(j), "eval.samples_per_task: buffers of "));
}

// ---------------------------------------------------------------------------------------------
// overrides

TEST(ConfigOverride, NumberValueBecomesANumber) {
  json j = minimal();
  apply_override(j, "optimizer.lr=0.003");
  EXPECT_TRUE(j["optimizer"]["lr"].is_number_float());
  EXPECT_DOUBLE_EQ(j["optimizer"]["lr"].get<double>(), 0.003);
}

TEST(ConfigOverride, BoolValueBecomesABool) {
  json j = minimal();
  apply_override(j, "train.stop_when_learned=false");
  EXPECT_EQ(j["train"]["stop_when_learned"], false);
}

TEST(ConfigOverride, UnparsableValueFallsBackToString) {
  json j = minimal();
  apply_override(j, "optimizer.type=adam");
  EXPECT_EQ(j["optimizer"]["type"], "adam");
}

TEST(ConfigOverride, ObjectValueBecomesAnObject) {
  json j = minimal();
  apply_override(j, R"(optimizer.other_params={"type":"sgd","lr":0.01})");
  EXPECT_EQ(j["optimizer"]["other_params"], json({{"type", "sgd"}, {"lr", 0.01}}));
}

TEST(ConfigOverride, OnlyTheFirstEqualsSplits) {
  json j = minimal();
  apply_override(j, "name=a=b");
  EXPECT_EQ(j["name"], "a=b");
}

TEST(ConfigOverride, MissingIntermediateObjectsAreCreated) {
  json j = minimal();
  apply_override(j, "model.width=64");
  EXPECT_EQ(j["model"], json({{"width", 64}}));
}

TEST(ConfigOverride, OverrideReplacesExistingValue) {
  json j = minimal();
  apply_override(j, "optimizer.lr=0.5");
  EXPECT_EQ(j["optimizer"], json({{"type", "sgd"}, {"lr", 0.5}}));
}

TEST(ConfigOverride, MissingEqualsIsAUsageError) {
  EXPECT_EQ(override_error(minimal(), "optimizer.lr"),
            "--set \"optimizer.lr\": expected KEY=VALUE with a dotted key such as optimizer.lr");
}

TEST(ConfigOverride, EmptyKeyIsAUsageError) {
  EXPECT_TRUE(contains(override_error(minimal(), "=3"), "expected KEY=VALUE"));
}

TEST(ConfigOverride, EmptyKeySegmentIsAUsageError) {
  EXPECT_TRUE(contains(override_error(minimal(), "optimizer..lr=3"), "expected KEY=VALUE"));
}

TEST(ConfigOverride, NonIdentifierKeyIsAUsageError) {
  EXPECT_TRUE(contains(override_error(minimal(), "optimizer.l r=3"), "expected KEY=VALUE"));
}

TEST(ConfigOverride, ScalarIntermediateIsAUsageErrorNamingTheKey) {
  EXPECT_EQ(override_error(minimal(), "optimizer.lr.x=1"),
            "--set \"optimizer.lr.x=1\": cannot set optimizer.lr.x because optimizer.lr is not an "
            "object (it is 0.1)");
}

TEST(ConfigOverride, UnknownKeyIsLeftForValidation) {
  json j = minimal();
  apply_override(j, "model.widht=3");
  EXPECT_EQ(config_error(j), "model.widht: unknown key (did you mean \"width\"? allowed: type, width, depth)");
}

// ---------------------------------------------------------------------------------------------
// files

TEST(ConfigFile, ValidFileIsRead) {
  const TempFile f(R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": 0.1}})");
  EXPECT_EQ(read_json_file(f.path()), minimal());
}

TEST(ConfigFile, MissingFileIsAUsageError) {
  const std::string path = "/nonexistent/skillrun/config.json";
  try {
    read_json_file(path);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_TRUE(starts_with(e.what(), "cannot read config file " + path + ": "));
  }
}

// The second ',' on line 3 is the offending character:
//   line 1: {
//   line 2:   "optimizer": {"type": "sgd", "lr": 0.1},
//   line 3:   "model": {"width": 250,, "depth": 2}
// On line 3: 2 spaces (cols 1-2), "model" (3-9), ':' (10), ' ' (11), '{' (12), "width" (13-19),
// ':' (20), ' ' (21), 250 (22-24), ',' (25), ',' (26) -> line 3, column 26.
TEST(ConfigFile, MalformedJsonReportsLineAndColumn) {
  const TempFile f(
      "{\n"
      "  \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1},\n"
      "  \"model\": {\"width\": 250,, \"depth\": 2}\n"
      "}\n");
  try {
    read_json_file(f.path());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(starts_with(e.what(), f.path() + ": malformed JSON at line 3, column 26: "));
  }
}

// "{\n  \"a\": 1\n" ends after line 2; the parser wants '}' at line 3, column 1.
TEST(ConfigFile, TruncatedJsonPointsJustPastTheEnd) {
  const TempFile f("{\n  \"a\": 1\n");
  try {
    read_json_file(f.path());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(starts_with(e.what(), f.path() + ": malformed JSON at line 3, column 1: "));
  }
}

TEST(ConfigFile, LoadAppliesOverridesInOrderBeforeValidating) {
  const TempFile f(R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": 0.1}})");
  const auto c = load_experiment(f.path(), {"optimizer.lr=0.5", "optimizer.lr=0.25", "seed=7"});
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.25);
  EXPECT_EQ(c.seed, 7u);
}

TEST(ConfigFile, LoadReportsOverriddenValueWithItsPath) {
  const TempFile f(R"({"task": {"type": "sparse_parity"}, "optimizer": {"type": "sgd", "lr": 0.1}})");
  try {
    load_experiment(f.path(), {"optimizer.lr=-1"});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "optimizer.lr: must be > 0, got -1");
    EXPECT_EQ(e.path(), "optimizer.lr");
  }
}

}  // namespace
}  // namespace skillrun

namespace skillrun {
namespace {
TEST(ConfigErrors, MaxStepsBeyondTheThirtyTwoBitCounterIsRejected) {
  // 2^32 = 4294967296 would wrap the step word of the Philox counter and repeat batches.
  nlohmann::json j = {{"task", {{"type", "sparse_parity"}}},
                      {"optimizer", {{"type", "sgd"}, {"lr", 0.1}}},
                      {"train", {{"max_steps", 4294967296LL}}}};
  try {
    parse_experiment(j);
    FAIL() << "accepted max_steps = 2^32";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "train.max_steps: must be <= 4294967295, got 4294967296");
  }
}
}  // namespace
}  // namespace skillrun

namespace skillrun {
namespace {
TEST(ConfigErrors, NegativeCheckpointSecondsIsRejected) {
  nlohmann::json j = {{"task", {{"type", "sparse_parity"}}},
                      {"optimizer", {{"type", "sgd"}, {"lr", 0.1}}},
                      {"train", {{"checkpoint_seconds", -1}}}};
  try {
    parse_experiment(j);
    FAIL() << "accepted checkpoint_seconds = -1";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("train.checkpoint_seconds: must be >= 0", 0), 0u) << e.what();
  }
}
}  // namespace
}  // namespace skillrun

// ---------------------------------------------------------------------------------------------
// the spectral lens: eval.spectra_every, optimizer.weight_decay_mode, msign norm_matched

namespace skillrun {
namespace {

TEST(SpectralConfig, SpectraEveryIsOffByDefaultAndANonNegativeInteger) {
  EXPECT_EQ(parse_experiment(minimal()).eval.spectra_every, 0);
  json j = minimal();
  j["eval"] = {{"spectra_every", 3}};
  EXPECT_EQ(parse_experiment(j).eval.spectra_every, 3);
  EXPECT_EQ(to_json(parse_experiment(j))["eval"]["spectra_every"], 3);
  j["eval"] = {{"spectra_every", -1}};
  EXPECT_TRUE(starts_with(config_error(j), "eval.spectra_every: "));
}

TEST(SpectralConfig, WeightDecayModeIsForNmdSignGdAndMuonOnly) {
  for (const char* type : {"nmd", "signgd", "muon"}) {
    const ExperimentConfig c =
        parse_experiment(with_optimizer({{"type", type}, {"lr", 0.1}, {"weight_decay_mode", "coupled"}}));
    EXPECT_EQ(c.optimizer.weight_decay_mode, WeightDecayMode::Coupled) << type;
    EXPECT_EQ(to_json(c)["optimizer"]["weight_decay_mode"], "coupled") << type;
    EXPECT_EQ(parse_experiment(with_optimizer({{"type", type}, {"lr", 0.1}})).optimizer.weight_decay_mode,
              WeightDecayMode::Decoupled);
  }
  // sgd is coupled by definition; adam/adamw: the type decides.
  for (const char* type : {"sgd", "adam", "adamw"})
    EXPECT_EQ(config_error(with_optimizer({{"type", type}, {"lr", 0.1}, {"weight_decay_mode", "coupled"}})),
              std::string("optimizer.weight_decay_mode: only valid when optimizer.type is nmd, signgd or muon (it is ") +
                  type + ")");
  EXPECT_TRUE(contains(config_error(with_optimizer({{"type", "muon"}, {"lr", 0.1}, {"weight_decay_mode", "l2"}})),
                       "unknown weight decay mode \"l2\" (expected one of: decoupled, coupled)"));
}

TEST(SpectralConfig, MsignNormMatchedIsAMuonChoice) {
  const ExperimentConfig c = parse_experiment(with_optimizer({{"type", "muon"}, {"lr", 0.1}, {"msign", "norm_matched"}}));
  EXPECT_EQ(c.optimizer.msign, MsignMethod::NormMatched);
  EXPECT_EQ(to_json(c)["optimizer"]["msign"], "norm_matched");
}

}  // namespace
}  // namespace skillrun
