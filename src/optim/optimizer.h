// Optimizers of the paper's Appendix A, as per-parameter update rules over backend ops:
// sgd, nmd (normalised momentum descent), adam, adamw, signgd and muon. Muon updates the
// hidden weight matrices (or all weight matrices); every other parameter gets `other_params`
// (Adam, lr 1e-3 by default), as in the paper's App. B.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"
#include "model/mlp.h"

namespace skillrun {

// What an update rule needs to know of the tensor it updates (row-major rows x cols).
struct TensorShape {
  std::string name;
  int rows = 0;
  int cols = 0;
  bool is_matrix = false;  // Muon needs a matrix
  std::size_t size() const { return static_cast<std::size_t>(rows) * cols; }
};

// Updates one tensor of element type T (float for the MLP, double for fp64 runs) from its
// gradient; owns that tensor's optimizer state. The same rules serve every task.
template <class T>
class UpdateRule {
 public:
  virtual ~UpdateRule() = default;
  // t: the 1-based number of this step. lr_scale multiplies the configured lr for this step
  // (step-size schedules; 1 for a constant lr).
  virtual void apply(T* value, const T* grad, int64_t t, double lr_scale = 1.0) = 0;
  virtual std::string describe() const = 0;
  // State buffers in a fixed order (momentum, second moment, ...): for checkpoints.
  virtual std::vector<Buffer<T>*> state() = 0;
};

// The state buffers a rule of this config keeps: 0, 1 (momentum) or 2 (Adam's first and
// second moments). The rules allocate exactly these, in this order.
int state_buffer_count(const OptimizerConfig& config);

// Where a rule's state buffer number `slot` (of `count` elements, zeroed) comes from; empty:
// the rule allocates its own. The Optimizer passes views into its per-slot arenas.
template <class T>
using StateAllocator = std::function<Buffer<T>(int slot, std::size_t count)>;

// Builds the rule for one tensor from one optimizer config (never muon's dispatch). Types:
// sgd | nmd | adam | adamw | signgd | muon. Instantiated for float and double.
template <class T>
std::unique_ptr<UpdateRule<T>> make_update_rule(Backend& backend, const OptimizerConfig& config,
                                                const TensorShape& shape, const StateAllocator<T>& allocate = {});

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

class Optimizer {
 public:
  // With `arenas` (one per slot), the state buffers are views into slice `slice` of those, slot
  // k's slice at slice * (state_layout's sizes[k]): a pack's state arenas, zeroed by their
  // owner. Without, the optimizer allocates and zeroes its own.
  Optimizer(Backend& backend, const OptimizerConfig& config, std::vector<Parameter>& params,
            std::vector<Buffer<float>*> arenas = {}, std::size_t slice = 0);
  // One update of every parameter from its .grad.
  void step();
  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }
  // "layers.0.weight: muon(...); layers.0.bias: adam(...)" for the log.
  std::vector<std::string> describe() const;
  std::vector<Buffer<float>*> state();
  const StateLayout& layout() const { return layout_; }

 private:
  std::vector<Parameter>* params_;
  // State slot s of every rule in one allocation (all momenta, then all second moments), each
  // parameter's buffer a view at its offset: a pack of runs can later stride over them.
  std::vector<Buffer<float>> state_arenas_;
  std::vector<std::unique_ptr<UpdateRule<float>>> rules_;  // one per parameter, same order
  StateLayout layout_;
  int64_t steps_ = 0;
};

}  // namespace skillrun
