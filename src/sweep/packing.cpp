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

PackFit fit_pack(const std::vector<std::size_t>& run_bytes, std::size_t budget_bytes) {
  std::size_t need = 0, largest = 1;
  for (std::size_t bytes : run_bytes) {
    need = need > SIZE_MAX - bytes ? SIZE_MAX : need + bytes;
    largest = std::max(largest, bytes);
  }
  PackFit fit;
  fit.runs_per_pack = std::max<std::size_t>(1, run_bytes.size());
  if (need <= budget_bytes) return fit;
  fit.runs_per_pack = std::max<std::size_t>(1, budget_bytes / largest);
  const std::size_t parts = (run_bytes.size() + fit.runs_per_pack - 1) / fit.runs_per_pack;
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  fit.note = fmt::format("a pack of {} runs needs about {:.2f} GiB, more than the {:.2f} GiB a pack may use: it "
                         "trains as {} packs of at most {}",
                         run_bytes.size(), static_cast<double>(need) / kGiB, static_cast<double>(budget_bytes) / kGiB,
                         parts, fit.runs_per_pack);
  return fit;
}

std::vector<Pack> fit_packs(const std::vector<Pack>& packs, const std::vector<SweepRun>& runs,
                            std::size_t budget_bytes, std::vector<std::string>& notes) {
  std::vector<Pack> fitted;
  for (const Pack& pack : packs) {
    std::vector<std::size_t> run_bytes;
    for (std::size_t i : pack.runs) run_bytes.push_back(estimated_memory_bytes(parse_experiment(runs[i].config)));
    const PackFit fit = fit_pack(run_bytes, budget_bytes);
    if (fit.note.empty()) {
      fitted.push_back(pack);
      continue;
    }
    notes.push_back(fit.note);
    for (std::size_t start = 0; start < pack.runs.size(); start += fit.runs_per_pack) {
      Pack& part = fitted.emplace_back();
      part.signature = pack.signature;
      part.runs.assign(pack.runs.begin() + static_cast<std::ptrdiff_t>(start),
                       pack.runs.begin() +
                           static_cast<std::ptrdiff_t>(std::min(start + fit.runs_per_pack, pack.runs.size())));
    }
  }
  return fitted;
}

}  // namespace skillrun
