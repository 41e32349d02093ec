// Optimizers of the paper's Appendix A, as update rules over backend ops: sgd, nmd (normalised
// momentum descent), adam, adamw, signgd and muon. Muon updates the hidden weight matrices (or
// all weight matrices); every other parameter gets `other_params` (Adam, lr 1e-3 by default),
// as in the paper's App. B. One update path (update_tensor) serves every run, packed or alone,
// fp32 or fp64; an Optimizer is a run's view of its state.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"
#include "model/mlp.h"

namespace skillrun {

// The state buffers a rule of this config keeps: 0, 1 (momentum) or 2 (Adam's first and
// second moments), in that order.
int state_buffer_count(const OptimizerConfig& config);

// Whether rule `c` folds its weight decay into the gradient (weight_decay_mode coupled, wd > 0;
// nmd, signgd, muon): its entries carry coupled_weight_decay instead of weight_decay.
bool coupled_decay(const OptimizerConfig& c);

// ---- the update path: every update of every rule goes through these two functions ----------
// The entry of run `slot` (its state in slice `slice`) for a (rows x cols) tensor under rule `c`
// at lr_scale (a step-size schedule's factor; 1 for a constant lr): the rule's scalars in T,
// formed in double and rounded once.
template <class T>
RunUpdateOf<T> run_update(const OptimizerConfig& c, double lr_scale, uint32_t slot, uint32_t slice, int rows, int cols);

// Muon's scratch for every entry of a run table: its direction and orthogonalised direction at
// entry index * stride, and the tensor's shape (rows x cols), which msign needs. Other rules
// keep none (all null).
template <class T>
struct MuonScratch {
  T* direction = nullptr;
  T* orthogonal = nullptr;
  std::size_t stride = 0;
  int rows = 0, cols = 0;
};

// One update by rule `c` of the tensor of every entry of `tensor`'s run table (their step t,
// 1-based). `tensor` says where the entries' w, g, m and v lie (Backend::update's UpdateArgs:
// its kind, scratch and flags are set here). sgd | nmd | adam | adamw | signgd are one
// Backend::update each; muon its momentum, msign (optim/msign.h) and scaled step. Entries with
// coupled_weight_decay first get g += wd w, one axpby each, in g's own buffer (it is the step's
// gradient, rewritten before the next step). Instantiated for float (the MLP) and double (fp64
// runs).
template <class T>
void update_tensor(Backend& backend, const OptimizerConfig& c, UpdateArgs tensor, const MuonScratch<T>& muon,
                   int64_t t);

// "muon(lr=0.02, beta=0.95, ...)": the rule of `c` on a (rows x cols) tensor, for run.log.
std::string describe_rule(const OptimizerConfig& c, int rows, int cols);

// Muon's scale factor for W in R^{m x n} (m = rows = fan_out, n = cols = fan_in).
double muon_scale(MuonScale scale, int rows, int cols);

// How an Optimizer lays out its state: per parameter the config of its rule (Muon's matrices
// get `config`, the rest other_params), and per state slot (0: momentum or Adam's first moment,
// 1: Adam's second moment) the offset of each parameter's buffer and the slot's size, every
// buffer starting on kArenaAlignment (arena_layout).
struct StateLayout {
  std::vector<const OptimizerConfig*> rule_configs;  // per parameter: into the config (valid while it lives)
  std::vector<std::vector<std::size_t>> offsets;     // [slot][parameter]; 0 where unused
  std::vector<std::size_t> sizes;                    // [slot]
};
inline constexpr int kStateSlots = 2;
StateLayout state_layout(const OptimizerConfig& config, const std::vector<Parameter>& params);

// One run's optimizer as a view of its slice of a pack's state arenas (optim/pack_optimizer.h,
// which updates it): its state buffers for checkpoints, its step count, describe() for the log.
class Optimizer {
 public:
  // The state buffers are views into slice `slice` of `arenas` (one per state slot), slot k's
  // slice at slice * (state_layout's sizes[k]), zeroed by their owner.
  Optimizer(const OptimizerConfig& config, const std::vector<Parameter>& params, std::vector<Buffer<float>*> arenas,
            std::size_t slice);
  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }
  // "layers.0.weight (16x11): muon(...)" per parameter, for the log.
  std::vector<std::string> describe() const;
  // State buffers in a fixed order (per parameter: momentum, second moment, as kept): for checkpoints.
  std::vector<Buffer<float>*> state();
  const StateLayout& layout() const { return layout_; }

 private:
  std::vector<std::string> description_;
  StateLayout layout_;
  std::vector<Buffer<float>> state_;  // views
  int64_t steps_ = 0;
};

}  // namespace skillrun
