// Assigns an update rule to every parameter: the configured optimizer, except that Muon only
// takes weight matrices (hidden ones by default) and hands the rest to other_params.
#include "optim/optimizer.h"

#include "core/error.h"

namespace skillrun {

Optimizer::Optimizer(Backend& backend, const OptimizerConfig& config, std::vector<Parameter>& params)
    : params_(&params) {
  for (const Parameter& p : params) {
    const TensorShape shape{p.name, p.rows, p.cols, p.is_matrix};
    const bool muon = config.type == OptimizerType::Muon;
    const bool muon_takes_it = muon && p.is_matrix && (config.muon_params == MuonParams::AllWeights || p.is_hidden);
    if (!muon || muon_takes_it) {
      rules_.push_back(make_update_rule<float>(backend, config, shape));
    } else {
      if (!config.other) throw ConfigError("optimizer.other_params", "muon needs other_params");
      rules_.push_back(make_update_rule<float>(backend, *config.other, shape));
    }
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
