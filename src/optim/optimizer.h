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

// Updates one parameter from its gradient; owns that parameter's optimizer state.
class UpdateRule {
 public:
  virtual ~UpdateRule() = default;
  // t: the 1-based number of this step.
  virtual void apply(Parameter& p, int64_t t) = 0;
  virtual std::string describe() const = 0;
  // State buffers in a fixed order (momentum, second moment, ...): for checkpoints.
  virtual std::vector<Buffer<float>*> state() = 0;
};

// Builds the rule for one parameter from one optimizer config (never muon's dispatch).
std::unique_ptr<UpdateRule> make_update_rule(Backend& backend, const OptimizerConfig& config,
                                             const Parameter& p);

// Muon's scale factor for W in R^{m x n} (m = rows = fan_out, n = cols = fan_in).
double muon_scale(const std::string& scale, int rows, int cols);

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
  std::vector<std::unique_ptr<UpdateRule>> rules_;  // one per parameter, same order
  int64_t steps_ = 0;
};

}  // namespace skillrun
