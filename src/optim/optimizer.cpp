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

Optimizer::Optimizer(Backend& backend, const OptimizerConfig& config, std::vector<Parameter>& params,
                     std::vector<Buffer<float>*> arenas, std::size_t slice)
    : params_(&params), layout_(state_layout(config, params)) {
  if (arenas.empty()) {
    state_arenas_.reserve(kStateSlots);  // `arenas` points into it
    for (int slot = 0; slot < kStateSlots; ++slot) {
      Buffer<float>& arena = state_arenas_.emplace_back(backend, layout_.sizes[static_cast<std::size_t>(slot)]);
      if (!arena.empty()) backend.fill(arena.data(), arena.size(), 0.0f);
      arenas.push_back(&arena);
    }
    slice = 0;
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Parameter& p = params[i];
    const StateAllocator<float> from_arenas = [&, i](int slot, std::size_t count) {
      const std::size_t k = static_cast<std::size_t>(slot);
      return Buffer<float>::view(*arenas.at(k), slice * layout_.sizes[k] + layout_.offsets[k][i], count);
    };
    rules_.push_back(make_update_rule<float>(backend, *layout_.rule_configs[i],
                                             TensorShape{p.name, p.rows, p.cols, p.is_matrix}, from_arenas));
  }
}

void Optimizer::step() {
  ++steps_;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    Parameter& p = (*params_)[i];
    rules_[i]->apply(p.value.data(), p.grad.data(), steps_);
  }
}

std::vector<std::string> Optimizer::describe() const {
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Parameter& p = (*params_)[i];
    lines.push_back(p.name + " (" + std::to_string(p.rows) + "x" + std::to_string(p.cols) + "): " + rules_[i]->describe());
  }
  return lines;
}

std::vector<Buffer<float>*> Optimizer::state() {
  std::vector<Buffer<float>*> all;
  for (auto& r : rules_)
    for (Buffer<float>* b : r->state()) all.push_back(b);
  return all;
}

}  // namespace skillrun
