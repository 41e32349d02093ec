// The one JSON reader every file and --set value goes through, as a specification of what it
// refuses before any value is built: nesting deeper than kMaxJsonDepth (the library recurses and
// would overflow the stack), a key twice in one object (nothing is silently ignored), bytes after
// the value, and --set values that are not valid UTF-8.
#include <gtest/gtest.h>

#include <string>

#include "config/experiment.h"
#include "core/error.h"

namespace skillrun {
namespace {

using nlohmann::json;

// `levels` nested arrays: [[[...]]].
std::string nested_arrays(int levels) { return std::string(levels, '[') + std::string(levels, ']'); }

// The ConfigError message parse_json throws for `text` read from "x.json", or "no error".
std::string parse_error(const std::string& text) {
  try {
    parse_json(text, "x.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

std::string override_error(const std::string& assignment) {
  json j = json::object();
  try {
    apply_override(j, assignment);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "no error";
}

TEST(JsonInput, NestingAtTheLimitIsRead) {
  // The root object is one level, so the seed may hold kMaxJsonDepth - 1 levels of arrays.
  const json j = parse_json("{\"seed\": " + nested_arrays(kMaxJsonDepth - 1) + "}", "x.json");
  EXPECT_TRUE(j["seed"].is_array());
}

TEST(JsonInput, NestingOneBeyondTheLimitIsAnErrorNamingTheSource) {
  EXPECT_EQ(parse_error("{\"seed\": " + nested_arrays(kMaxJsonDepth) + "}"),
            "x.json: nesting too deep (limit: 64 levels of arrays and objects)");
}

// 58 500 levels (117 KB) overflowed the stack while the library built and destroyed the value.
TEST(JsonInput, NestingFiftyEightThousandLevelsDeepIsAnErrorNotACrash) {
  EXPECT_EQ(parse_error("{\"seed\": " + nested_arrays(58500) + "}"),
            "x.json: nesting too deep (limit: 64 levels of arrays and objects)");
}

TEST(JsonInput, DuplicateKeyIsAnErrorNamingItsPath) {
  EXPECT_EQ(parse_error(R"({"optimizer": {"type": "sgd", "lr": -1, "lr": 0.1}})"),
            "optimizer.lr: duplicate key in x.json");
}

TEST(JsonInput, DuplicateRootKeyIsNamed) {
  EXPECT_EQ(parse_error(R"({"seed": 1, "seed": 2})"), "seed: duplicate key in x.json");
}

TEST(JsonInput, DuplicateKeyInsideAListNamesTheElementIndex) {
  EXPECT_EQ(parse_error(R"({"zip": [{"a": [1]}, {"seed": [1], "seed": [2]}]})"),
            "zip[1].seed: duplicate key in x.json");
}

TEST(JsonInput, SameKeyInSiblingObjectsIsNoDuplicate) {
  const json j = parse_json(R"({"a": {"lr": 1}, "b": {"lr": 2}, "c": [{"lr": 3}, {"lr": 4}]})", "x.json");
  EXPECT_EQ(j["c"][1]["lr"], 4);
}

// The library stops at a NUL byte, so without a check "garbage" after one would be ignored.
TEST(JsonInput, NulByteAfterTheValueIsAnErrorWithLineAndColumn) {
  EXPECT_EQ(parse_error(std::string("{\"seed\": 1}\n\0 garbage", 21)),
            "x.json: malformed JSON at line 2, column 1: a NUL byte, which JSON text cannot contain");
}

TEST(JsonInput, TextAfterTheValueIsAnErrorWithLineAndColumn) {
  EXPECT_TRUE(parse_error("{\"seed\": 1} 2").starts_with("x.json: malformed JSON at line 1, column 13: "));
}

TEST(JsonInput, InvalidUtf8InAStringIsAnErrorWithLineAndColumn) {
  EXPECT_TRUE(parse_error("{\"name\": \"\xff\"}").starts_with("x.json: malformed JSON at line 1, column 11: "));
}

// The column is that of the number's last character, where the library notices the overflow.
TEST(JsonInput, NumberOutOfRangeIsAnErrorWithLineAndColumn) {
  EXPECT_EQ(parse_error("{\"seed\": 1e400}"),
            "x.json: malformed JSON at line 1, column 14: number overflow parsing '1e400'");
}

TEST(JsonInput, OrderedParseKeepsTheKeyOrderOfTheText) {
  const nlohmann::ordered_json j = parse_ordered_json(R"({"b": 1, "a": 2})", "x.json");
  EXPECT_EQ(j.begin().key(), "b");
}

TEST(JsonInput, OrderedParseRefusesDuplicateKeysToo) {
  try {
    parse_ordered_json(R"({"axes": {"seed": [1, 2], "seed": [3, 4]}})", "sweep.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "axes.seed: duplicate key in sweep.json");
  }
}

// ---------------------------------------------------------------------------------------------
// --set values

TEST(JsonInputOverride, DeeplyNestedValueIsAUsageErrorNamingTheKey) {
  EXPECT_EQ(override_error("seed=" + nested_arrays(58500)),
            "--set seed: nesting too deep (limit: 64 levels of arrays and objects), the key's levels included");
}

// Root object + task + sigma_x: the value may add kMaxJsonDepth - 3 levels.
TEST(JsonInputOverride, ValueNestingCountsTheLevelsOfTheKey) {
  EXPECT_EQ(override_error("task.sigma_x.x=" + nested_arrays(kMaxJsonDepth - 3)), "no error");
  EXPECT_EQ(override_error("task.sigma_x.x=" + nested_arrays(kMaxJsonDepth - 2)),
            "--set task.sigma_x.x: nesting too deep (limit: 64 levels of arrays and objects), the key's levels "
            "included");
}

TEST(JsonInputOverride, KeyWithMoreLevelsThanTheLimitIsAUsageError) {
  std::string key = "a";
  for (int i = 0; i < kMaxJsonDepth; ++i) key += ".a";
  EXPECT_EQ(override_error(key + "=1"), "--set " + key + ": nesting too deep (limit: 64 levels of arrays and objects)");
}

TEST(JsonInputOverride, DuplicateKeyInAnObjectValueIsAUsageErrorNamingItsPath) {
  EXPECT_EQ(override_error(R"(optimizer={"type": "sgd", "lr": -1, "lr": 0.1})"),
            "--set optimizer: optimizer.lr: duplicate key");
}

// It used to fail only when the config was printed, as the library's type_error.316 (exit 1).
TEST(JsonInputOverride, InvalidUtf8ValueIsAUsageErrorNamingTheKey) {
  EXPECT_EQ(override_error("name=\xff"), "--set name: the value is not valid UTF-8");
}

TEST(JsonInputOverride, ValidUtf8StringIsKept) {
  json j = json::object();
  apply_override(j, "name=caf\xc3\xa9");
  EXPECT_EQ(j["name"], "caf\xc3\xa9");
}

}  // namespace
}  // namespace skillrun
