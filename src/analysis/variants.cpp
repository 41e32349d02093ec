// Splitting runs into variants by the config keys they differ in, naming them, and saying what
// a set of runs pooled together differs in.
#include "analysis/variants.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/error.h"

namespace skillrun {
namespace {

using nlohmann::json;
using FlatConfig = std::map<std::string, json>;

void flatten_into(const json& node, const std::string& prefix, FlatConfig& out) {
  if (!node.is_object()) {
    out[prefix] = node;
    return;
  }
  for (const auto& [key, value] : node.items()) flatten_into(value, prefix.empty() ? key : prefix + "." + key, out);
}

json flat_value(const FlatConfig& flat, const std::string& key) {
  const auto it = flat.find(key);
  return it == flat.end() ? json(nullptr) : it->second;
}

// A value in a name: strings bare, numbers shortest ("0", not "0.0"), "—" for absent.
std::string value_text(const json& v) {
  if (v.is_number_float()) return fmt::format("{}", v.get<double>());
  return display_value(v);
}

// The shortest tail of `key`'s dotted path that no other key in `all` ends in.
std::string short_name(const std::string& key, const std::set<std::string>& all) {
  for (std::size_t pos = key.rfind('.'); pos != std::string::npos && pos > 0; pos = key.rfind('.', pos - 1)) {
    const std::string tail = key.substr(pos + 1);
    if (std::none_of(all.begin(), all.end(), [&](const std::string& other) {
          return other != key && (other == tail || other.ends_with("." + tail));
        }))
      return tail;
  }
  return key;
}

bool never_splits(const std::string& key) {
  return is_seed_like_key(key) || key == "optimizer.lr" || key == "model.width";
}

// The keys whose values differ among the flat configs at `indices` (absent counts as a value).
std::vector<std::string> differing(const std::vector<FlatConfig>& flats, const std::vector<std::size_t>& indices) {
  std::set<std::string> keys;
  for (std::size_t i : indices)
    for (const auto& [k, v] : flats[i]) keys.insert(k);
  std::vector<std::string> out;
  for (const std::string& k : keys) {
    const json first = flat_value(flats[indices.front()], k);
    if (std::any_of(indices.begin(), indices.end(), [&](std::size_t i) { return flat_value(flats[i], k) != first; }))
      out.push_back(k);
  }
  return out;
}

std::string runs_count(int n) { return fmt::format("{} run{}", n, n == 1 ? "" : "s"); }

}  // namespace

bool is_seed_like_key(const std::string& key) {
  return key == "seed" || key == "name" || key == "device" || key == "train.checkpoint_every" ||
         key == "train.checkpoint_seconds";
}

std::map<std::string, json> flatten_config(const json& config) {
  FlatConfig out;
  flatten_into(config, "", out);
  return out;
}

std::vector<Variant> split_variants(const std::vector<RunAnalysis>& runs, const std::vector<std::string>& compare_keys) {
  std::vector<FlatConfig> flats;
  std::set<std::string> all_keys;
  for (const RunAnalysis& r : runs) {
    flats.push_back(flatten_config(r.config));
    for (const auto& [k, v] : flats.back()) all_keys.insert(k);
  }
  for (const std::string& key : compare_keys)
    if (std::all_of(runs.begin(), runs.end(), [&](const RunAnalysis& r) { return value_at(r.config, key).is_null(); }))
      throw UsageError(fmt::format("--compare: no run has the config key \"{}\"", key));

  // The keys that split, per optimizer type ("" for all runs under --compare).
  std::map<std::string, std::vector<std::size_t>> by_type;
  for (std::size_t i = 0; i < runs.size(); ++i)
    by_type[compare_keys.empty() ? display_value(value_at(runs[i].config, "optimizer.type")) : ""].push_back(i);
  std::map<std::string, std::vector<std::string>> split_keys;
  for (const auto& [type, indices] : by_type) {
    if (!compare_keys.empty()) {
      split_keys[type] = compare_keys;
      continue;
    }
    for (const std::string& k : differing(flats, indices))
      if (!never_splits(k)) split_keys[type].push_back(k);
  }

  std::map<std::pair<std::string, std::vector<json>>, std::vector<std::size_t>> members;
  for (const auto& [type, indices] : by_type)
    for (std::size_t i : indices) {
      std::vector<json> values;
      for (const std::string& k : split_keys[type]) values.push_back(value_at(runs[i].config, k));
      members[{type, values}].push_back(i);
    }

  std::vector<Variant> variants;
  std::vector<std::vector<std::string>> parts_with_absent;  // per variant, every key (absent as "—")
  std::vector<std::vector<std::string>> parts_shown;        // per variant, the keys worth naming
  for (const auto& [id, indices] : members) {
    const auto& [type, values] = id;
    const std::vector<std::string>& keys = split_keys[type];
    Variant v;
    v.values = json::object();
    v.runs = indices;
    std::vector<std::string> all_parts, shown;
    if (compare_keys.empty()) all_parts.push_back(type), shown.push_back(type);
    for (std::size_t j = 0; j < keys.size(); ++j) {
      v.values[keys[j]] = values[j];
      const std::string part = keys[j] == "optimizer.type" ? value_text(values[j])
                                                            : short_name(keys[j], all_keys) + "=" + value_text(values[j]);
      all_parts.push_back(part);
      // A key named only where this variant has it and where runs hold two values of it (a key
      // present in some runs only follows from one that is named, e.g. another type).
      std::set<json> present;
      for (std::size_t i : by_type[type])
        if (json x = value_at(runs[i].config, keys[j]); !x.is_null()) present.insert(x);
      if (!values[j].is_null() && (present.size() > 1 || !compare_keys.empty())) shown.push_back(part);
    }
    parts_with_absent.push_back(all_parts);
    parts_shown.push_back(shown);
    variants.push_back(std::move(v));
  }
  std::set<std::string> names;
  for (const auto& parts : parts_shown) names.insert(fmt::format("{}", fmt::join(parts, ", ")));
  const bool distinct = names.size() == variants.size();
  for (std::size_t i = 0; i < variants.size(); ++i)
    variants[i].name = fmt::format("{}", fmt::join(distinct ? parts_shown[i] : parts_with_absent[i], ", "));
  return variants;
}

std::vector<std::string> variant_keys(const std::vector<Variant>& variants) {
  std::set<std::string> keys;
  for (const Variant& v : variants)
    for (const auto& [k, value] : v.values.items()) keys.insert(k);
  return {keys.begin(), keys.end()};
}

std::string pooled_differences(const std::vector<RunAnalysis>& runs, const std::vector<std::size_t>& indices,
                               const std::vector<std::string>& ignored) {
  if (indices.size() < 2) return "";
  std::vector<FlatConfig> flats;  // of the runs at `indices` only: a sweep has many groups
  std::vector<std::size_t> all;
  for (std::size_t i : indices) all.push_back(flats.size()), flats.push_back(flatten_config(runs[i].config));
  std::vector<std::string> parts;
  for (const std::string& k : differing(flats, all)) {
    if (is_seed_like_key(k) || std::find(ignored.begin(), ignored.end(), k) != ignored.end()) continue;
    std::set<json> values;
    for (const FlatConfig& flat : flats) values.insert(flat_value(flat, k));
    std::vector<std::string> texts;
    for (const json& v : values) texts.push_back(value_text(v));
    parts.push_back(fmt::format("{} ({})", k, fmt::join(texts, ", ")));
  }
  for (const char* field : {"device", "git_commit", "precision"}) {
    std::map<std::string, int> counts;
    for (std::size_t i : indices) {
      const auto it = runs[i].provenance.find(field);
      ++counts[it == runs[i].provenance.end() ? "?" : it->second];
    }
    if (counts.size() < 2) continue;
    std::vector<std::string> texts;
    for (const auto& [value, n] : counts) texts.push_back(fmt::format("{} ({})", value, runs_count(n)));
    parts.push_back(fmt::format("{}: {}", field, fmt::join(texts, ", ")));
  }
  return fmt::format("{}", fmt::join(parts, "; "));
}

}  // namespace skillrun
