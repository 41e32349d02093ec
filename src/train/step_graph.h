// When a trainer's step runs eagerly and when it replays a captured step graph (Backend's
// begin/end_step_capture, launch_step_graph: CUDA graphs, docs/CUDA.md). Untimed steps are
// captured once, after kWarmupSteps eager steps (which size every scratch buffer the step's ops
// need), and replayed from then on; again whenever the set of runs a step trains changes. A
// failed capture turns graphs off for good. Timed steps run eagerly.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"

namespace skillrun {

// Whether the steps of these runs on `backend` should be captured: the backend has step graphs,
// SKILLRUN_CUDA_GRAPH is not 0, and no run uses msign svd (cuSOLVER's SVD queries its workspace
// on the host, which a graph cannot hold).
bool step_graph_wanted(const Backend& backend, const std::vector<ExperimentConfig>& configs);

class StepGraph {
 public:
  static constexpr int kWarmupSteps = 2;
  enum class State { Warmup, Captured, Off };

  // wanted: capture (step_graph_wanted); else every step runs eagerly. subject() names the step
  // in the log line of a capture ("training step of 3 runs").
  StepGraph(Backend& backend, bool wanted, std::function<std::string()> subject);

  State state() const { return state_; }
  // The captured step no longer trains the right runs: warm up and capture afresh.
  void invalidate();
  // Step `step` (0-based): by eager() (timed steps, warm-up, graphs off), or by a replay of the
  // captured graph, which record() (the eager step, whose ops the backend records, not runs)
  // captures first when none is. True when the step was replayed: the caller then accounts for
  // what a replay does not do on the host (the optimizers' step counts).
  bool run(int64_t step, bool timed, const std::function<void()>& eager, const std::function<void()>& record);

 private:
  bool replay(int64_t step, const std::function<void()>& record);  // false: run it eagerly

  Backend& backend_;
  std::function<std::string()> subject_;
  State state_;
  int eager_steps_ = 0;  // since the last invalidate()
};

}  // namespace skillrun
