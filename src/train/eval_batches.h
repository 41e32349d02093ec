// The evals of a pack's runs, computed together: one pass over each seed's eval set for the
// runs of a segment (Evaluator::evaluate(model, range)), held per slot until that run's own eval
// hook takes its result (train/run_monitor.h: the loop's shared eval comes before the runs').
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "train/evaluator.h"
#include "train/pack_members.h"

namespace skillrun {

class EvalBatches {
 public:
  // One result per slot of the segment, in slot order.
  using EvaluateSegment = std::function<std::vector<EvalResult>(const Segment& segment)>;

  explicit EvalBatches(std::size_t slots);
  // Evaluates every segment at `step` and keeps each slot's result, replacing what it held.
  void compute(const std::vector<Segment>& segments, int64_t step, const EvaluateSegment& evaluate);
  // The eval of `slot` at `step`: the one computed for that step (once), else alone(). Either
  // way the slot holds nothing after.
  EvalResult take(std::size_t slot, int64_t step, const std::function<EvalResult()>& alone);

 private:
  struct Held {
    EvalResult result;
    int64_t step = -1;
  };
  std::vector<std::optional<Held>> held_;  // by slot
};

}  // namespace skillrun
