// The update phase of every run, packed or alone (train/trainer.h, docs/ARCHITECTURE.md
// "Packs"): the only place an MLP's parameters are updated. Every run has its own Optimizer (a
// view of its state: describe(), state() and checkpoints exactly as alone), and the runs whose
// optimizers share a structure (the same rule for every tensor: type, Nesterov,
// momentum or not, msign method and steps; only scalar hyperparameters differ) form a group:
// their state buffers are slices of one arena per state slot, and each tensor is updated for
// the whole group by one backend call, its per-run scalars (lr, momentum, betas, eps, weight
// decay, Muon's step factors) in a small table in backend memory (optim/optimizer.h:
// update_tensor). Newton-Schulz runs batched over the group's Muon matrices. A run alone is a
// pack of one.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"
#include "model/mlp.h"
#include "optim/optimizer.h"

namespace skillrun {

// The structure of an optimizer over these parameters: runs with equal keys share a group.
std::string optimizer_structure(const OptimizerConfig& config, const std::vector<Parameter>& params);

class PackOptimizer {
 public:
  // configs[s]: the optimizer of run (slot) s of `model`.
  PackOptimizer(Backend& backend, Model& model, const std::vector<OptimizerConfig>& configs);
  // One run's parameters (any tensors, not only an Mlp's): a pack of one.
  PackOptimizer(Backend& backend, std::vector<Parameter>& params, const OptimizerConfig& config);
  ~PackOptimizer();
  PackOptimizer(const PackOptimizer&) = delete;
  PackOptimizer& operator=(const PackOptimizer&) = delete;

  Optimizer& optimizer(int slot) { return *runs_.at(static_cast<std::size_t>(slot)).optimizer; }
  int groups() const { return static_cast<int>(groups_.size()); }

  // The runs the next steps update (uploads the groups' run tables: not inside a step capture).
  void set_active(const std::vector<bool>& active);
  // One update of every active run from its gradients; each active run's step count goes up by
  // one (all active runs must be at the same count: they train in lockstep).
  void step();

 private:
  struct Group;
  struct Run {
    OptimizerConfig config;  // owned: the Optimizer's layout points into it
    std::unique_ptr<Optimizer> optimizer;
    std::size_t group = 0;
    uint32_t slice = 0;  // the run's slice of its group's state arenas
  };
  // Run s's parameters at params_[s]; tensor p of run s at run s * run_stride_ from run 0's.
  PackOptimizer(Backend& backend, std::vector<std::vector<Parameter>*> params, std::size_t run_stride,
                const std::vector<OptimizerConfig>& configs);
  void step_group(Group& group, int64_t t);

  Backend& backend_;
  std::vector<std::vector<Parameter>*> params_;  // by slot
  std::size_t run_stride_ = 0;
  std::vector<Run> runs_;  // by slot
  std::vector<std::unique_ptr<Group>> groups_;
  std::vector<bool> active_;
};

}  // namespace skillrun
