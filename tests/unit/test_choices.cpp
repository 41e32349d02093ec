// The config choices as enums (config/choices.h): every value round-trips through its spelling,
// the spellings are exactly those configs use (docs/CONFIG.md), and anything else is refused.
#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "config/choices.h"

namespace skillrun {
namespace {

template <class E>
class ConfigChoices : public ::testing::Test {};
using ChoiceEnums = ::testing::Types<DeviceChoice, Precision, TaskType, OptimizerType, MsignMethod, MuonScale, MuonParams, LrScheduleType>;
TYPED_TEST_SUITE(ConfigChoices, ChoiceEnums);

TYPED_TEST(ConfigChoices, EveryValueRoundTripsThroughItsName) {
  std::set<std::string_view> names;
  int index = 0;
  for (const auto& c : ChoiceSet<TypeParam>::all) {
    // The table lists the values in declaration order, none left out in between.
    EXPECT_EQ(static_cast<int>(c.value), index++) << c.name;
    EXPECT_EQ(name(c.value), c.name);
    EXPECT_EQ(parse_choice<TypeParam>(name(c.value)), c.value) << c.name;
    EXPECT_TRUE(names.insert(c.name).second) << c.name << " spelled twice";
  }
}

TYPED_TEST(ConfigChoices, AnUnknownNameIsRefused) {
  std::vector<std::string> unknown = {"", "unknown", "x"};
  for (const auto& c : ChoiceSet<TypeParam>::all) {
    std::string upper(c.name);
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    unknown.push_back(upper);                      // spellings are exact: "SVD" is not "svd"
    unknown.push_back(std::string(c.name) + " ");  // nor is "svd "
  }
  for (const std::string& s : unknown) {
    EXPECT_FALSE(find_choice<TypeParam>(s).has_value()) << '"' << s << '"';
    EXPECT_THROW(parse_choice<TypeParam>(s), std::invalid_argument) << '"' << s << '"';
  }
}

// The spellings are the config's interface: pinned here, one list per enum, in message order.
template <class E>
void expect_spellings(const std::vector<std::pair<E, std::string_view>>& expected) {
  ASSERT_EQ(std::size(ChoiceSet<E>::all), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(ChoiceSet<E>::all[i].value, expected[i].first);
    EXPECT_EQ(ChoiceSet<E>::all[i].name, expected[i].second);
  }
}

TEST(ConfigChoicesSpelling, EachEnumIsSpelledAsInConfigs) {
  expect_spellings<DeviceChoice>({{DeviceChoice::Auto, "auto"}, {DeviceChoice::Cpu, "cpu"}, {DeviceChoice::Cuda, "cuda"}});
  expect_spellings<Precision>(
      {{Precision::Fp32, "fp32"}, {Precision::Tf32, "tf32"}, {Precision::Bf16, "bf16"}, {Precision::Fp64, "fp64"}});
  expect_spellings<TaskType>({{TaskType::SparseParity, "sparse_parity"},
                              {TaskType::IclLinreg, "icl_linreg"},
                              {TaskType::AssocMemory, "assoc_memory"}});
  expect_spellings<OptimizerType>({{OptimizerType::Sgd, "sgd"},
                                   {OptimizerType::Nmd, "nmd"},
                                   {OptimizerType::Adam, "adam"},
                                   {OptimizerType::AdamW, "adamw"},
                                   {OptimizerType::SignGd, "signgd"},
                                   {OptimizerType::Muon, "muon"},
                                   {OptimizerType::Gd, "gd"},
                                   {OptimizerType::Ngd, "ngd"},
                                   {OptimizerType::SpecGd, "specgd"}});
  expect_spellings<MsignMethod>(
      {{MsignMethod::NewtonSchulz5, "ns5"},
       {MsignMethod::PolarExpress, "polar_express"},
       {MsignMethod::Svd, "svd"},
       {MsignMethod::NormMatched, "norm_matched"}});
  expect_spellings<WeightDecayMode>({{WeightDecayMode::Decoupled, "decoupled"}, {WeightDecayMode::Coupled, "coupled"}});
  expect_spellings<MuonScale>({{MuonScale::SqrtRatio, "sqrt_ratio"},
                               {MuonScale::Keller, "keller"},
                               {MuonScale::Moonshot, "moonshot"},
                               {MuonScale::None, "none"}});
  expect_spellings<MuonParams>({{MuonParams::Hidden, "hidden"}, {MuonParams::AllWeights, "all_weights"}});
  expect_spellings<LrScheduleType>({{LrScheduleType::Constant, "constant"},
                                    {LrScheduleType::Plateau, "plateau"},
                                    {LrScheduleType::Geometric, "geometric"}});
}

// parse_choice's own message (the config reader and the CLI flags say it with the JSON path or
// the flag: config/experiment.h, parse_config_choice).
TEST(ConfigChoicesSpelling, TheMessageNamesTheChoiceAndListsTheAlternatives) {
  try {
    parse_choice<MsignMethod>("newton_schulz");
    ADD_FAILURE() << "newton_schulz accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "unknown msign method \"newton_schulz\" (expected ns5 | polar_express | svd | norm_matched)");
  }
}

}  // namespace
}  // namespace skillrun
