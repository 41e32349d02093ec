// Groups, their state arenas and run tables, and the batched update of each tensor through
// update_tensor (update_rules.cpp; lr_scale 1: sparse-parity runs have a constant lr). A
// backend computes every entry as a table of one, so a packed run has the bits of the run alone.
#include "optim/pack_optimizer.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/round_up.h"

namespace skillrun {

namespace {

// What fixes the rule of one tensor: everything but the scalar hyperparameters.
std::string rule_structure(const OptimizerConfig& c) {
  std::string key(name(c.type));
  switch (c.type) {
    case OptimizerType::Sgd:
      return key + (c.momentum > 0 ? "/momentum" : "") + (c.nesterov ? "/nesterov" : "");
    case OptimizerType::SignGd:
      return key + (c.momentum > 0 ? "/momentum" : "");
    case OptimizerType::Muon:
      return fmt::format("{}/{}/{}/{}/{}", key, name(c.msign), c.ns_steps, name(c.scale), c.nesterov);
    default:
      return key;
  }
}

}  // namespace

std::string optimizer_structure(const OptimizerConfig& config, const std::vector<Parameter>& params) {
  const StateLayout layout = state_layout(config, params);
  std::string key;
  for (const OptimizerConfig* c : layout.rule_configs) key += rule_structure(*c) + ";";
  return key;
}

struct PackOptimizer::Group {
  std::vector<int> slots;  // by slice
  StateLayout layout;      // the first run's (the same for all: one structure)
  std::vector<Buffer<float>> arenas;  // per state slot: slices x layout.sizes[slot]
  struct Tensor {
    std::vector<RunUpdate> table;  // the active runs' entries
    Buffer<RunUpdate> device;      // the same in backend memory
    Buffer<float> direction, orthogonal;  // Muon: per entry, at scratch_stride (nothing for other rules)
    std::size_t scratch_stride = 0;
  };
  std::vector<Tensor> tensors;  // per parameter
};

namespace {
std::vector<std::vector<Parameter>*> runs_of(Model& model) {
  std::vector<std::vector<Parameter>*> params;
  for (int r = 0; r < model.runs(); ++r) params.push_back(&model.parameters(r));
  return params;
}
}  // namespace

PackOptimizer::PackOptimizer(Backend& backend, Model& model, const std::vector<OptimizerConfig>& configs)
    : PackOptimizer(backend, runs_of(model), model.run_stride(), configs) {}

PackOptimizer::PackOptimizer(Backend& backend, std::vector<Parameter>& params, const OptimizerConfig& config)
    : PackOptimizer(backend, {&params}, 0, {config}) {}

PackOptimizer::PackOptimizer(Backend& backend, std::vector<std::vector<Parameter>*> params, std::size_t run_stride,
                             const std::vector<OptimizerConfig>& configs)
    : backend_(backend), params_(std::move(params)), run_stride_(run_stride) {
  if (configs.size() != params_.size())
    throw RuntimeError(fmt::format("PackOptimizer: {} optimizers for {} runs", configs.size(), params_.size()));
  runs_.reserve(configs.size());  // never grows: the optimizers' layouts point into the configs
  std::vector<std::string> keys;
  for (std::size_t s = 0; s < configs.size(); ++s) {
    Run& run = runs_.emplace_back();
    run.config = configs[s];
    const std::string key = optimizer_structure(run.config, *params_[s]);
    std::size_t g = 0;
    while (g < keys.size() && keys[g] != key) ++g;
    if (g == keys.size()) {
      keys.push_back(key);
      auto group = std::make_unique<Group>();
      group->layout = state_layout(run.config, *params_[s]);
      groups_.push_back(std::move(group));
    }
    run.group = g;
    run.slice = static_cast<uint32_t>(groups_[g]->slots.size());
    groups_[g]->slots.push_back(static_cast<int>(s));
  }
  for (auto& group : groups_) {
    const std::size_t slices = group->slots.size();
    for (int slot = 0; slot < kStateSlots; ++slot) {
      Buffer<float>& arena =
          group->arenas.emplace_back(backend, slices * group->layout.sizes[static_cast<std::size_t>(slot)]);
      if (!arena.empty()) backend.fill(arena.data(), arena.size(), 0.0f);
    }
    const std::vector<Parameter>& first = *params_[static_cast<std::size_t>(group->slots.front())];
    group->tensors.resize(first.size());
    for (std::size_t p = 0; p < first.size(); ++p) {
      Group::Tensor& t = group->tensors[p];
      t.device = Buffer<RunUpdate>(backend, slices);
      if (group->layout.rule_configs[p]->type == OptimizerType::Muon) {
        t.scratch_stride = round_up(first[p].size(), kArenaAlignment);
        t.direction = Buffer<float>(backend, slices * t.scratch_stride);
        t.orthogonal = Buffer<float>(backend, slices * t.scratch_stride);
      }
    }
    for (int slot : group->slots) {
      Run& run = runs_[static_cast<std::size_t>(slot)];
      run.optimizer = std::make_unique<Optimizer>(run.config, *params_[static_cast<std::size_t>(slot)],
                                                  std::vector<Buffer<float>*>{&group->arenas[0], &group->arenas[1]},
                                                  run.slice);
    }
  }
  set_active(std::vector<bool>(runs_.size(), true));
}

PackOptimizer::~PackOptimizer() = default;

void PackOptimizer::set_active(const std::vector<bool>& active) {
  if (active == active_) return;
  active_ = active;
  for (auto& group : groups_) {
    for (std::size_t p = 0; p < group->tensors.size(); ++p) {
      Group::Tensor& t = group->tensors[p];
      t.table.clear();
      for (int slot : group->slots) {
        if (!active_[static_cast<std::size_t>(slot)]) continue;
        const Run& run = runs_[static_cast<std::size_t>(slot)];
        const Parameter& param = (*params_[static_cast<std::size_t>(slot)])[p];
        t.table.push_back(run_update<float>(*run.optimizer->layout().rule_configs[p], 1.0, static_cast<uint32_t>(slot),
                                            run.slice, param.rows, param.cols));
      }
      std::vector<RunUpdate> padded = t.table;
      padded.resize(t.device.size());  // entries past the active ones are never read
      t.device.upload(padded);
    }
  }
}

void PackOptimizer::step() {
  // Adam's t: the step count of the active runs, which train in lockstep.
  int64_t t = -1;
  for (std::size_t s = 0; s < runs_.size(); ++s) {
    if (!active_[s]) continue;
    Optimizer& o = *runs_[s].optimizer;
    o.set_steps_taken(o.steps_taken() + 1);
    if (t >= 0 && o.steps_taken() != t)
      throw RuntimeError(fmt::format("PackOptimizer: the runs of a pack are at steps {} and {}", t, o.steps_taken()));
    t = o.steps_taken();
  }
  if (t < 0) return;
  for (auto& group : groups_) step_group(*group, t);
}

void PackOptimizer::step_group(Group& group, int64_t t) {
  std::vector<Parameter>& params = *params_.front();  // run r's tensor at + r * run_stride_
  for (std::size_t p = 0; p < params.size(); ++p) {
    Group::Tensor& tensor = group.tensors[p];
    const OptimizerConfig& c = *group.layout.rule_configs[p];
    // This tensor's state in slice 0 of each arena (null when the rule keeps no such slot).
    float* m = state_buffer_count(c) > 0 ? group.arenas[0].data() + group.layout.offsets[0][p] : nullptr;
    float* v = state_buffer_count(c) > 1 ? group.arenas[1].data() + group.layout.offsets[1][p] : nullptr;
    const UpdateArgs x = UpdateArgs(UpdateKind::Sgd, params[p].value.data(), params[p].grad.data(), run_stride_,
                                    params[p].size(), RunTable{tensor.table, tensor.device.data()})
                             .state(m, group.layout.sizes[0], v, group.layout.sizes[1]);
    const MuonScratch<float> muon{tensor.direction.data(), tensor.orthogonal.data(), tensor.scratch_stride,
                                  params[p].rows, params[p].cols};
    update_tensor(backend_, c, x, muon, t);
  }
}

}  // namespace skillrun
