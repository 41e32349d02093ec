// Optimizers of the paper's Appendix A, as per-parameter update rules over backend ops:
// sgd, nmd (normalised momentum descent), adam, adamw, signgd and muon. Muon updates the
// hidden weight matrices (or all weight matrices); every other parameter gets `other_params`
// (Adam, lr 1e-3 by default), as in the paper's App. B.
#pragma once
#include <cstdint>
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

// Builds the rule for one tensor from one optimizer config (never muon's dispatch). Types:
// sgd | nmd | adam | adamw | signgd | muon. Instantiated for float and double.
template <class T>
std::unique_ptr<UpdateRule<T>> make_update_rule(Backend& backend, const OptimizerConfig& config,
                                                const TensorShape& shape);

// Muon's scale factor for W in R^{m x n} (m = rows = fan_out, n = cols = fan_in).
double muon_scale(MuonScale scale, int rows, int cols);

class Optimizer {
 public:
  Optimizer(Backend& backend, const OptimizerConfig& config, std::vector<Parameter>& params);
  // One update of every parameter from its .grad.
  void step();
  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }
  // "layers.0.weight: muon(...); layers.0.bias: adam(...)" for the log.
  std::vector<std::string> describe() const;
  std::vector<Buffer<float>*> state();

 private:
  std::vector<Parameter>* params_;
  std::vector<std::unique_ptr<UpdateRule<float>>> rules_;  // one per parameter, same order
  int64_t steps_ = 0;
};

}  // namespace skillrun
