// Assigns an update rule to every parameter: the configured optimizer, except that Muon only
// takes weight matrices (hidden ones by default) and hands the rest to other_params.
#include "optim/optimizer.h"

#include <cstddef>
#include <vector>

#include "core/error.h"

namespace skillrun {

StateLayout state_layout(const OptimizerConfig& config, const std::vector<Parameter>& params) {
  StateLayout layout;
  // The config of each parameter's rule: Muon's matrices, other_params for the rest.
  for (const Parameter& p : params) {
    const bool muon = config.type == OptimizerType::Muon;
    const bool muon_takes_it = muon && p.is_matrix && (config.muon_params == MuonParams::AllWeights || p.is_hidden);
    if (muon && !muon_takes_it && !config.other) throw ConfigError("optimizer.other_params", "muon needs other_params");
    layout.rule_configs.push_back(!muon || muon_takes_it ? &config : config.other.get());
  }
  // One arena per state slot: the parameters whose rule keeps that slot, laid out in order.
  layout.offsets.assign(kStateSlots, std::vector<std::size_t>(params.size(), 0));
  for (int slot = 0; slot < kStateSlots; ++slot) {
    std::vector<std::size_t> sizes, owners;
    for (std::size_t i = 0; i < params.size(); ++i)
      if (state_buffer_count(*layout.rule_configs[i]) > slot) {
        sizes.push_back(params[i].size());
        owners.push_back(i);
      }
    const std::vector<std::size_t> offsets = arena_layout(sizes);
    for (std::size_t k = 0; k < owners.size(); ++k) layout.offsets[slot][owners[k]] = offsets[k];
    layout.sizes.push_back(offsets.back());
  }
  return layout;
}

Optimizer::Optimizer(const OptimizerConfig& config, const std::vector<Parameter>& params,
                     std::vector<Buffer<float>*> arenas, std::size_t slice)
    : layout_(state_layout(config, params)) {
  if (arenas.size() != static_cast<std::size_t>(kStateSlots))
    throw RuntimeError("Optimizer: one state arena per slot expected, got " + std::to_string(arenas.size()));
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Parameter& p = params[i];
    const OptimizerConfig& rule = *layout_.rule_configs[i];
    description_.push_back(p.name + " (" + std::to_string(p.rows) + "x" + std::to_string(p.cols) +
                           "): " + describe_rule(rule, p.rows, p.cols));
    for (int slot = 0; slot < state_buffer_count(rule); ++slot) {
      const auto k = static_cast<std::size_t>(slot);
      state_.push_back(Buffer<float>::view(*arenas[k], slice * layout_.sizes[k] + layout_.offsets[k][i], p.size()));
    }
  }
}

std::vector<std::string> Optimizer::describe() const { return description_; }

std::vector<Buffer<float>*> Optimizer::state() {
  std::vector<Buffer<float>*> all;
  for (Buffer<float>& b : state_) all.push_back(&b);
  return all;
}

}  // namespace skillrun
