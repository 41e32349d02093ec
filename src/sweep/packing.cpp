// Pack planning: signatures and the greedy cut, in sweep order so the plan is stable.
#include "sweep/packing.h"

#include <algorithm>
#include <cstdint>
#include <map>

#include <fmt/format.h>
#include <stdexcept>

namespace skillrun {

bool can_pack(const nlohmann::json& resolved_config) {
  const auto task = resolved_config.find("task");
  return task == resolved_config.end() || !task->is_object() ||
         task->value("type", "") != name(TaskType::IclLinreg);
}

std::vector<Pack> plan_packs(const std::vector<SweepRun>& runs, std::size_t max_runs) {
  if (max_runs < 1) throw std::invalid_argument("plan_packs: max_runs must be >= 1");
  std::vector<Pack> groups;
  std::map<std::string, std::size_t> group_of;  // signature -> index in groups
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (!can_pack(runs[i].config)) {
      groups.push_back({pack_signature(runs[i].config), {i}, /*alone=*/true});
      continue;
    }
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
      pack.alone = group.alone;
      for (std::size_t j = start; j < std::min(start + max_runs, group.runs.size()); ++j)
        pack.runs.push_back(group.runs[j]);
    }
  return packs;
}

std::vector<Pack> fit_packs(const std::vector<Pack>& packs, const std::vector<SweepRun>& runs,
                            std::size_t budget_bytes, std::vector<std::string>& notes) {
  std::vector<Pack> fitted;
  for (std::size_t p = 0; p < packs.size(); ++p) {
    const Pack& pack = packs[p];
    std::size_t need = 0, largest = 1;
    for (std::size_t i : pack.runs) {
      const std::size_t bytes = estimated_memory_bytes(parse_experiment(runs[i].config));
      need = need > SIZE_MAX - bytes ? SIZE_MAX : need + bytes;
      largest = std::max(largest, bytes);
    }
    if (need <= budget_bytes) {
      fitted.push_back(pack);
      continue;
    }
    const std::size_t per_pack = std::max<std::size_t>(1, budget_bytes / largest);
    constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
    notes.push_back(fmt::format("a pack of {} runs needs about {:.2f} GiB, more than the {:.2f} GiB available: "
                                "split into packs of at most {}",
                                pack.runs.size(), static_cast<double>(need) / kGiB,
                                static_cast<double>(budget_bytes) / kGiB, per_pack));
    for (std::size_t start = 0; start < pack.runs.size(); start += per_pack) {
      Pack& part = fitted.emplace_back();
      part.signature = pack.signature;
      part.runs.assign(pack.runs.begin() + static_cast<std::ptrdiff_t>(start),
                       pack.runs.begin() + static_cast<std::ptrdiff_t>(std::min(start + per_pack, pack.runs.size())));
    }
  }
  return fitted;
}

}  // namespace skillrun
