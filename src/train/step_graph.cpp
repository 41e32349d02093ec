#include "train/step_graph.h"

#include <cstdlib>
#include <exception>
#include <utility>

#include <spdlog/spdlog.h>

namespace skillrun {

bool step_graph_wanted(const Backend& backend, const std::vector<ExperimentConfig>& configs) {
  if (!backend.supports_step_graph()) return false;
  if (const char* env = std::getenv("SKILLRUN_CUDA_GRAPH"); env != nullptr && std::string(env) == "0") return false;
  for (const ExperimentConfig& config : configs)
    if (config.optimizer.type == OptimizerType::Muon && config.optimizer.msign == MsignMethod::Svd) return false;
  return true;
}

StepGraph::StepGraph(Backend& backend, bool wanted, std::function<std::string()> subject)
    : backend_(backend), subject_(std::move(subject)), state_(wanted ? State::Warmup : State::Off) {}

void StepGraph::invalidate() {
  if (state_ == State::Off) return;
  state_ = State::Warmup;
  eager_steps_ = 0;
}

bool StepGraph::run(int64_t step, bool timed, const std::function<void()>& eager, const std::function<void()>& record) {
  if (!timed && state_ != State::Off && replay(step, record)) return true;
  ++eager_steps_;
  eager();
  return false;
}

bool StepGraph::replay(int64_t step, const std::function<void()>& record) {
  if (state_ == State::Warmup) {
    if (eager_steps_ < kWarmupSteps) return false;
    try {
      backend_.begin_step_capture(static_cast<uint32_t>(step));
      record();
      backend_.end_step_capture();
      state_ = State::Captured;
      spdlog::info("{} captured as a CUDA graph at step {}; replaying it from now on", subject_(), step);
    } catch (const std::exception& e) {
      backend_.abort_step_capture();
      state_ = State::Off;
      spdlog::warn("could not capture the training step as a CUDA graph ({}); running eagerly", e.what());
      return false;
    }
  }
  backend_.launch_step_graph(static_cast<uint32_t>(step));
  return true;
}

}  // namespace skillrun
