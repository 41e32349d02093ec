// Groups, their state arenas and run tables, and the batched update of each tensor. The
// scalars of a run are formed exactly as its own rules form them (update_rules.cpp, with
// lr_scale 1: sparse-parity runs have a constant lr), so that the one-call-per-run default of
// the *_runs ops gives a packed run the bits of the run alone.
#include "optim/pack_optimizer.h"

#include <fmt/format.h>

#include "core/error.h"
#include "optim/msign.h"

namespace skillrun {

namespace {
std::size_t aligned(std::size_t n) { return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }

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

// Entry `slice` of a group for the tensor whose rule is `c` in run `slot`.
RunUpdate run_update(const OptimizerConfig& c, uint32_t slot, uint32_t slice, const Parameter& p) {
  RunUpdate u;
  u.run = slot;
  u.slice = slice;
  const double lr = c.lr * 1.0;  // lr_scale 1, as Optimizer::step applies the rules
  u.lr = static_cast<float>(lr);
  u.momentum = static_cast<float>(c.type == OptimizerType::Adam || c.type == OptimizerType::AdamW ? c.beta1
                                                                                                  : c.momentum);
  u.beta2 = static_cast<float>(c.beta2);
  u.eps = static_cast<float>(c.eps);
  u.weight_decay = static_cast<float>(c.weight_decay);
  if (c.type == OptimizerType::Muon) {
    u.step_alpha = static_cast<float>(-lr * muon_scale(c.scale, p.rows, p.cols));
    u.step_beta = static_cast<float>(1.0 - lr * c.weight_decay);
  }
  return u;
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
    Buffer<float> direction, orthogonal;  // Muon: per entry, at scratch_stride
    std::size_t scratch_stride = 0;
  };
  std::vector<Tensor> tensors;  // per parameter
};

PackOptimizer::PackOptimizer(Backend& backend, Mlp& model, const std::vector<OptimizerConfig>& configs)
    : backend_(backend), model_(model) {
  if (static_cast<int>(configs.size()) != model.runs())
    throw RuntimeError(fmt::format("PackOptimizer: {} optimizers for {} runs", configs.size(), model.runs()));
  runs_.reserve(configs.size());  // never grows: the optimizers' layouts point into the configs
  std::vector<std::string> keys;
  for (std::size_t s = 0; s < configs.size(); ++s) {
    Run& run = runs_.emplace_back();
    run.config = configs[s];
    const std::string key = optimizer_structure(run.config, model.parameters(static_cast<int>(s)));
    std::size_t g = 0;
    while (g < keys.size() && keys[g] != key) ++g;
    if (g == keys.size()) {
      keys.push_back(key);
      auto group = std::make_unique<Group>();
      group->layout = state_layout(run.config, model.parameters(static_cast<int>(s)));
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
    const std::vector<Parameter>& params = model.parameters(group->slots.front());
    group->tensors.resize(params.size());
    for (std::size_t p = 0; p < params.size(); ++p) {
      Group::Tensor& t = group->tensors[p];
      t.device = Buffer<RunUpdate>(backend, slices);
      if (group->layout.rule_configs[p]->type == OptimizerType::Muon) {
        t.scratch_stride = aligned(params[p].size());
        t.direction = Buffer<float>(backend, slices * t.scratch_stride);
        t.orthogonal = Buffer<float>(backend, slices * t.scratch_stride);
      }
    }
    for (int slot : group->slots) {
      Run& run = runs_[static_cast<std::size_t>(slot)];
      run.optimizer = std::make_unique<Optimizer>(backend, run.config, model.parameters(slot),
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
        t.table.push_back(run_update(*run.optimizer->layout().rule_configs[p], static_cast<uint32_t>(slot), run.slice,
                                     model_.parameters(slot)[p]));
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
  const std::vector<Parameter>& params = model_.parameters(0);  // run r's tensor at + r * run_stride
  const std::size_t param_stride = model_.run_stride();
  const std::size_t stride0 = group.layout.sizes[0], stride1 = group.layout.sizes[1];
  for (std::size_t p = 0; p < params.size(); ++p) {
    Group::Tensor& tensor = group.tensors[p];
    if (tensor.table.empty()) return;  // no active run in this group
    const RunTable runs{tensor.table, tensor.device.data()};
    const OptimizerConfig& c = *group.layout.rule_configs[p];
    float* w = model_.parameters(0)[p].value.data();
    const float* g = model_.parameters(0)[p].grad.data();
    const std::size_t n = params[p].size();
    // This tensor's state in slice 0 of each arena (nullptr when the rule keeps no such slot).
    float* m = state_buffer_count(c) > 0 ? group.arenas[0].data() + group.layout.offsets[0][p] : nullptr;
    float* v = state_buffer_count(c) > 1 ? group.arenas[1].data() + group.layout.offsets[1][p] : nullptr;
    const auto args = [&](UpdateKind kind) {
      UpdateArgs a(kind, w, g, param_stride, n, runs);
      a.m = m;
      a.m_stride = stride0;
      a.v = v;
      a.v_stride = stride1;
      a.nesterov = c.nesterov;
      a.decoupled = c.type == OptimizerType::AdamW;
      a.t = t;
      a.scratch = tensor.direction.data();
      a.scratch_stride = tensor.scratch_stride;
      return a;
    };
    switch (c.type) {
      case OptimizerType::Sgd:
        backend_.update(args(UpdateKind::Sgd));
        break;
      case OptimizerType::Nmd:
        backend_.update(args(UpdateKind::Nmd));
        break;
      case OptimizerType::Adam:
      case OptimizerType::AdamW:
        backend_.update(args(UpdateKind::Adam));
        break;
      case OptimizerType::SignGd:
        backend_.update(args(UpdateKind::SignGd));
        break;
      case OptimizerType::Muon: {
        const std::size_t ss = tensor.scratch_stride;
        backend_.update(args(UpdateKind::Momentum));
        msign_runs(backend_, c.msign, tensor.direction.data(), tensor.orthogonal.data(), ss, params[p].rows,
                   params[p].cols, c.ns_steps, static_cast<int>(tensor.table.size()));
        UpdateArgs step = args(UpdateKind::MuonStep);
        step.scratch = tensor.orthogonal.data();
        backend_.update(step);
        break;
      }
      default:
        throw ConfigError("optimizer.type", fmt::format("{} has no update rule of its own", name(c.type)));
    }
  }
}

}  // namespace skillrun
