#include "train/pack_members.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "core/error.h"

namespace skillrun {

void check_pack(const std::vector<ExperimentConfig>& configs) {
  if (configs.empty()) throw UsageError("a pack needs at least one run");
  for (const ExperimentConfig& c : configs)
    if (c.is_icl()) throw UsageError(fmt::format("run {}: only sparse_parity runs train in packs", c.name));
  const nlohmann::json first = to_json(configs.front());
  const std::string signature = pack_signature(first);
  for (std::size_t i = 1; i < configs.size(); ++i) {
    const nlohmann::json other = to_json(configs[i]);
    if (pack_signature(other) == signature) continue;
    nlohmann::json a = first, b = other;
    for (const char* key : {"seed", "optimizer", "name"}) a.erase(key), b.erase(key);
    throw UsageError(fmt::format("runs {} and {} cannot share a pack (they may differ only in seed and optimizer): {}",
                                 configs.front().name, configs[i].name,
                                 json_difference(a, b, "in the first", "in the other")));
  }
}

PackMembers::PackMembers(const std::vector<uint64_t>& seeds) : slot_of_run_(seeds.size(), 0) {
  for (uint64_t seed : seeds)
    if (std::find(seeds_.begin(), seeds_.end(), seed) == seeds_.end()) seeds_.push_back(seed);
  for (std::size_t g = 0; g < seeds_.size(); ++g) {
    first_slot_.push_back(static_cast<int>(run_at_slot_.size()));
    for (std::size_t r = 0; r < seeds.size(); ++r) {
      if (seeds[r] != seeds_[g]) continue;
      slot_of_run_[r] = static_cast<int>(run_at_slot_.size());
      run_at_slot_.push_back(static_cast<int>(r));
      group_of_slot_.push_back(g);
    }
    group_size_.push_back(static_cast<int>(run_at_slot_.size()) - first_slot_.back());
  }
  set_active(std::vector<bool>(seeds.size(), true));
}

std::vector<Segment> PackMembers::segments(const std::vector<bool>& which) const {
  if (which.size() != slots()) throw std::invalid_argument("PackMembers::segments: one flag per slot");
  std::vector<Segment> found;
  for (std::size_t s = 0; s < slots(); ++s) {
    if (!which[s]) continue;
    const std::size_t group = group_of_slot_[s];
    if (!found.empty() && found.back().group == group &&
        found.back().range.first + found.back().range.count == static_cast<int>(s))
      ++found.back().range.count;
    else
      found.push_back({group, RunRange{static_cast<int>(s), 1}});
  }
  return found;
}

bool PackMembers::set_active(const std::vector<bool>& active) {
  if (active == active_) return false;
  segments_ = segments(active);
  active_ = active;
  drawn_groups_.clear();
  for (const Segment& seg : segments_)
    if (std::find(drawn_groups_.begin(), drawn_groups_.end(), seg.group) == drawn_groups_.end())
      drawn_groups_.push_back(seg.group);
  return true;
}

}  // namespace skillrun
