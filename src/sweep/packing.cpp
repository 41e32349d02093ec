// Pack planning: signatures and the greedy cut, in sweep order so the plan is stable.
#include "sweep/packing.h"

#include <map>
#include <stdexcept>

namespace skillrun {

std::vector<Pack> plan_packs(const std::vector<SweepRun>& runs, std::size_t max_runs) {
  if (max_runs < 1) throw std::invalid_argument("plan_packs: max_runs must be >= 1");
  std::vector<Pack> groups;
  std::map<std::string, std::size_t> group_of;  // signature -> index in groups
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::string signature = pack_signature(runs[i].config);
    const auto [it, added] = group_of.emplace(signature, groups.size());
    if (added) groups.push_back({signature, {}});
    groups[it->second].runs.push_back(i);
  }
  std::vector<Pack> packs;
  for (const Pack& group : groups)
    for (std::size_t start = 0; start < group.runs.size(); start += max_runs) {
      Pack& pack = packs.emplace_back();
      pack.signature = group.signature;
      for (std::size_t j = start; j < std::min(start + max_runs, group.runs.size()); ++j)
        pack.runs.push_back(group.runs[j]);
    }
  return packs;
}

}  // namespace skillrun
