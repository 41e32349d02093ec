#include "train/eval_batches.h"

#include <stdexcept>
#include <utility>

namespace skillrun {

EvalBatches::EvalBatches(std::size_t slots) : held_(slots) {}

void EvalBatches::compute(const std::vector<Segment>& segments, int64_t step, const EvaluateSegment& evaluate) {
  for (const Segment& seg : segments) {
    std::vector<EvalResult> results = evaluate(seg);
    if (results.size() != static_cast<std::size_t>(seg.range.count))
      throw std::logic_error("EvalBatches: one eval result per slot of a segment");
    for (std::size_t i = 0; i < results.size(); ++i)
      held_.at(static_cast<std::size_t>(seg.range.first) + i) = Held{std::move(results[i]), step};
  }
}

EvalResult EvalBatches::take(std::size_t slot, int64_t step, const std::function<EvalResult()>& alone) {
  std::optional<Held> held = std::move(held_.at(slot));
  held_[slot].reset();
  return held && held->step == step ? std::move(held->result) : alone();
}

}  // namespace skillrun
