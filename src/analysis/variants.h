// Variants: which runs `skillrun analyze` may average together. Runs are averaged over seeds
// only: runs of one optimizer type that differ in any other resolved-config key are different
// variants ("muon, momentum=0" and "muon, momentum=0.95"), each with its own best lr and its own
// column, line and analysis.json entry. Two keys never split: optimizer.lr (the best lr is
// selected over it) and model.width (the paper's Fig. 3 averages across widths; fig4 draws
// them). Neither do the keys that say how a run ran rather than what it is: seed, name, device
// and the checkpoint settings (kSeedLikeKeys).
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/run_analysis.h"

namespace skillrun {

// Keys that never split variants and are never said to differ: seed, name, device,
// train.checkpoint_every, train.checkpoint_seconds.
bool is_seed_like_key(const std::string& dotted_key);

// A config as dotted keys ("optimizer.momentum") to leaf values; arrays are leaves.
std::map<std::string, nlohmann::json> flatten_config(const nlohmann::json& config);

struct Variant {
  std::string name;                // "muon", "muon, momentum=0": the type and what differs
  nlohmann::json values;           // object: dotted key -> value, for the keys that split
  std::vector<std::size_t> runs;   // indices into the runs
};

// The variants of `runs`, sorted by optimizer type then by their values (numbers numerically).
// compare_keys empty: by optimizer.type and every key (not seed-like, not optimizer.lr or
// model.width) whose value differs among the runs of that type, a key absent from some of them
// included. Else by the values of compare_keys alone (UsageError naming --compare when no run
// has one of them). A name shows each differing key by the shortest tail of its dotted path no
// other key of the runs ends in ("momentum", "other_params.lr"), and leaves out the keys a
// variant lacks, unless names would then coincide.
std::vector<Variant> split_variants(const std::vector<RunAnalysis>& runs, const std::vector<std::string>& compare_keys);

// The keys that split variants, sorted: the keys of every Variant::values.
std::vector<std::string> variant_keys(const std::vector<Variant>& variants);

// What the runs at `indices` differ in besides seed-like keys and `ignored` keys, for a note
// under a table: "optimizer.momentum (0, 0.95); device: cpu (1 run), cuda (1 run)" (config keys,
// then summary.json's device, git_commit and precision). Empty when nothing.
std::string pooled_differences(const std::vector<RunAnalysis>& runs, const std::vector<std::size_t>& indices,
                               const std::vector<std::string>& ignored);

}  // namespace skillrun
