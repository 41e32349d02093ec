// A mutation fuzzer for the config and sweep parsers: from a fixed seed it mutates the repo's
// configs (configs/*.json, configs/*/*.json, sweep files included) with byte flips, insertions,
// deletions, splices, deep nesting, duplicate keys, huge numbers, NUL bytes and invalid UTF-8,
// and feeds each text through the entry points the CLI uses (parse_json -> --set ->
// parse_experiment -> resolved JSON; parse_ordered_json -> expand_sweep). The only outcomes
// allowed are a result or skillrun's ConfigError/UsageError: any other exception fails the test,
// a crash ends it. CI runs a fixed number of inputs in seconds; for a long run set
//   SKILLRUN_FUZZ_SECONDS=600 [SKILLRUN_FUZZ_SEED=n] [SKILLRUN_FUZZ_LAST=file]
// (the last input is then written to SKILLRUN_FUZZ_LAST first, so a crash leaves it behind).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <typeinfo>
#include <vector>

#include "config/experiment.h"
#include "core/error.h"
#include "sweep/sweep.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

const fs::path kConfigs = fs::path(SKILLRUN_SOURCE_DIR) / "configs";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// configs/*.json and configs/*/*.json, sorted so that a seed always means the same inputs.
std::vector<std::string> seed_corpus() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kConfigs)) {
    if (entry.is_directory()) {
      for (const auto& inner : fs::directory_iterator(entry.path()))
        if (inner.path().extension() == ".json") files.push_back(inner.path());
    } else if (entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> corpus;
  for (const auto& f : files) corpus.push_back(slurp(f));
  return corpus;
}

// Everything the mutations insert besides random bytes: what hostile or careless input holds.
const std::vector<std::string> kTokens = {"1e400",
                                          "-1e400",
                                          "1e-400",
                                          "18446744073709551616",
                                          "-9223372036854775809",
                                          "18446744073709551615",
                                          "-0",
                                          "0.0",
                                          "NaN",
                                          "Infinity",
                                          "null",
                                          "true",
                                          "[]",
                                          "{}",
                                          "\"\"",
                                          "\"\\u0000\"",
                                          "\"\\ud800\"",
                                          "\xff",
                                          "\xc0\x80",
                                          "\xed\xa0\x80",
                                          "\xf4\x90\x80\x80",
                                          std::string(1, '\0'),
                                          "\"task\"",
                                          "\"optimizer\""};

class Mutator {
 public:
  Mutator(uint64_t seed, std::vector<std::string> corpus) : rng_(seed), corpus_(std::move(corpus)) {}

  std::string next() {
    std::string text = corpus_[pick(corpus_.size())];
    const int n = 1 + static_cast<int>(pick(4));
    for (int i = 0; i < n; ++i) mutate(text);
    return text;
  }

  // Inputs that parse are kept to mutate further, so mutations can stack up.
  void keep(const std::string& text) {
    if (corpus_.size() < kMaxCorpus) corpus_.push_back(text);
  }

  std::size_t pick(std::size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

 private:
  static constexpr std::size_t kMaxCorpus = 400;

  void mutate(std::string& t) {
    const std::size_t at = pick(t.size() + 1);
    switch (pick(10)) {
      case 0:  // flip one bit
        if (!t.empty()) t[std::min(at, t.size() - 1)] ^= static_cast<char>(1u << pick(8));
        break;
      case 1:  // insert a random byte
        t.insert(at, 1, static_cast<char>(pick(256)));
        break;
      case 2:  // delete a range
        t.erase(at, 1 + pick(16));
        break;
      case 3: {  // splice: a piece of another input
        const std::string& other = corpus_[pick(corpus_.size())];
        const std::size_t from = pick(other.size());
        t.insert(at, other.substr(from, 1 + pick(64)));
        break;
      }
      case 4: {  // deep nesting, sometimes far beyond any limit
        const std::size_t depth = pick(3) == 0 ? 20000 + pick(60000) : 1 + pick(100);
        const char open = pick(2) ? '[' : '{';
        std::string nest(depth, open);
        if (open == '{') {
          nest.clear();
          for (std::size_t i = 0; i < depth; ++i) nest += "{\"a\":";
          nest += "1" + std::string(depth, '}');
        } else {
          nest += std::string(depth, ']');
        }
        replace_value(t, nest);
        break;
      }
      case 5: {  // duplicate a key: `"key":` followed by a copy of itself with another value
        const std::size_t q = t.find("\":", at);
        if (q == std::string::npos) break;
        const std::size_t start = t.rfind('"', q - 1);
        if (start == std::string::npos) break;
        t.insert(start, t.substr(start, q - start + 2) + " " + kTokens[pick(14)] + ", ");
        break;
      }
      case 6:  // a hostile token
        t.insert(at, kTokens[pick(kTokens.size())]);
        break;
      case 7:  // replace a value with a hostile token
        replace_value(t, kTokens[pick(kTokens.size())]);
        break;
      case 8:  // NUL then garbage after the value
        t += std::string(1, '\0') + "garbage";
        break;
      default: {  // duplicate a chunk in place
        const std::size_t len = 1 + pick(32);
        t.insert(at, t.substr(at, len));
        break;
      }
    }
  }

  // Replaces the value after a random ':' (up to the next ',' or '}') with `value`.
  void replace_value(std::string& t, const std::string& value) {
    const std::size_t colon = t.find(':', pick(t.size() + 1));
    if (colon == std::string::npos) {
      t.insert(pick(t.size() + 1), value);
      return;
    }
    std::size_t end = t.find_first_of(",}", colon + 1);
    if (end == std::string::npos) end = t.size();
    t.replace(colon + 1, end - colon - 1, value);
  }

  std::mt19937_64 rng_;
  std::vector<std::string> corpus_;
};

// Feeds `text` through what `validate`, `run` and `sweep` do with it. Returns "" when each entry
// point returned or threw ConfigError/UsageError, else what it threw. `parsed` tells whether
// the text was valid JSON for the strict reader.
std::string feed(const std::string& text, const std::string& set_value, bool& parsed) {
  parsed = false;
  try {
    try {
      nlohmann::json j = parse_json(text, "fuzz.json");
      parsed = true;
      apply_override(j, "seed=" + set_value);     // a --set value cut from the same input
      (void)to_json(parse_experiment(j)).dump();  // `run` writes the resolved config
    } catch (const ConfigError&) {
    } catch (const UsageError&) {
    }
    try {
      const Sweep s = expand_sweep(parse_ordered_json(text, "fuzz.json"), kConfigs / "sweeps", "fuzz", {});
      for (const auto& run : s.runs) (void)run.config.dump();
    } catch (const ConfigError&) {
    } catch (const UsageError&) {
    }
  } catch (const std::exception& e) {
    return std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
  return "";
}

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char ch : s.substr(0, 400)) {
    if (ch >= 32 && ch < 127) {
      out += static_cast<char>(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    }
  }
  return s.size() > 400 ? out + "... (" + std::to_string(s.size()) + " bytes)" : out;
}

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

// 3000 inputs take a few seconds; SKILLRUN_FUZZ_SECONDS turns it into a timed run.
TEST(ConfigFuzz, MutatedConfigsAndSweepsEndInAResultOrAConfigOrUsageError) {
  const uint64_t seconds = env_or("SKILLRUN_FUZZ_SECONDS", 0);
  const uint64_t iterations = seconds ? UINT64_MAX : env_or("SKILLRUN_FUZZ_ITERATIONS", 3000);
  const char* last_file = std::getenv("SKILLRUN_FUZZ_LAST");
  Mutator mutator(env_or("SKILLRUN_FUZZ_SEED", 12), seed_corpus());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);

  uint64_t done = 0, parsed_count = 0, failures = 0;
  for (; done < iterations; ++done) {
    if (seconds && (done % 64 == 0) && std::chrono::steady_clock::now() > deadline) break;
    const std::string text = mutator.next();
    const std::size_t cut = mutator.pick(text.size() + 1);
    const std::string set_value = text.substr(cut, mutator.pick(200));
    if (last_file) std::ofstream(last_file, std::ios::binary) << text << "\n--set seed=" << set_value;
    bool parsed = false;
    const std::string problem = feed(text, set_value, parsed);
    if (parsed) {
      ++parsed_count;
      mutator.keep(text);
    }
    if (!problem.empty() && ++failures <= 10)
      ADD_FAILURE() << problem << "\ninput: " << printable(text) << "\n--set seed=" << printable(set_value);
  }
  std::printf("config fuzz: %llu inputs, %llu valid JSON, %llu failures\n", static_cast<unsigned long long>(done),
              static_cast<unsigned long long>(parsed_count), static_cast<unsigned long long>(failures));
  EXPECT_EQ(failures, 0u);
}

}  // namespace
}  // namespace skillrun
