// Evals computed for a pack's runs together (train/eval_batches.h): one evaluate call per
// segment, each slot's result handed to that slot's own eval once, and only at its step.
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "train/eval_batches.h"

namespace skillrun {
namespace {

// A fake evaluator: slot s's result has mean_loss_bits = 100 * step + s; records each call.
struct FakeEvaluator {
  explicit FakeEvaluator(int64_t at) : step(at) {}
  int64_t step;
  std::vector<std::pair<int, int>> calls;  // (first, count) per segment evaluated
  std::vector<EvalResult> operator()(const Segment& seg) {
    calls.emplace_back(seg.range.first, seg.range.count);
    std::vector<EvalResult> out(static_cast<std::size_t>(seg.range.count));
    for (int i = 0; i < seg.range.count; ++i)
      out[static_cast<std::size_t>(i)].mean_loss_bits = 100.0 * static_cast<double>(step) + seg.range.first + i;
    return out;
  }
};

EvalResult alone_marker() {
  EvalResult r;
  r.mean_loss_bits = -1;
  return r;
}

TEST(EvalBatches, OneCallPerSegmentAndEachSlotTakesItsOwnResult) {
  EvalBatches batches(5);
  FakeEvaluator fake{3};
  batches.compute({{0, RunRange{0, 2}}, {1, RunRange{3, 2}}}, 3, [&](const Segment& s) { return fake(s); });
  EXPECT_EQ(fake.calls, (std::vector<std::pair<int, int>>{{0, 2}, {3, 2}}));
  int alone = 0;
  const auto by_itself = [&] {
    ++alone;
    return alone_marker();
  };
  EXPECT_EQ(batches.take(1, 3, by_itself).mean_loss_bits, 301);
  EXPECT_EQ(batches.take(4, 3, by_itself).mean_loss_bits, 304);
  EXPECT_EQ(batches.take(0, 3, by_itself).mean_loss_bits, 300);
  EXPECT_EQ(alone, 0);
  // Slot 2 was in no segment: it is evaluated by itself.
  EXPECT_EQ(batches.take(2, 3, by_itself).mean_loss_bits, -1);
  EXPECT_EQ(alone, 1);
}

TEST(EvalBatches, AResultIsTakenOnceAndOnlyAtItsStep) {
  EvalBatches batches(2);
  FakeEvaluator fake{5};
  batches.compute({{0, RunRange{0, 2}}}, 5, [&](const Segment& s) { return fake(s); });
  int alone = 0;
  const auto by_itself = [&] {
    ++alone;
    return alone_marker();
  };
  EXPECT_EQ(batches.take(0, 5, by_itself).mean_loss_bits, 500);
  EXPECT_EQ(batches.take(0, 5, by_itself).mean_loss_bits, -1);  // taken already
  EXPECT_EQ(batches.take(1, 6, by_itself).mean_loss_bits, -1);  // computed for step 5, asked at 6
  EXPECT_EQ(batches.take(1, 5, by_itself).mean_loss_bits, -1);  // the stale one went with that
  EXPECT_EQ(alone, 3);
}

TEST(EvalBatches, ALaterRoundReplacesWhatASlotHeld) {
  EvalBatches batches(1);
  FakeEvaluator fake{1};
  batches.compute({{0, RunRange{0, 1}}}, 1, [&](const Segment& s) { return fake(s); });
  fake.step = 2;
  batches.compute({{0, RunRange{0, 1}}}, 2, [&](const Segment& s) { return fake(s); });
  EXPECT_EQ(batches.take(0, 2, alone_marker).mean_loss_bits, 200);
}

TEST(EvalBatches, AnEvaluatorGivingTheWrongNumberOfResultsIsAnError) {
  EvalBatches batches(3);
  EXPECT_THROW(batches.compute({{0, RunRange{0, 3}}}, 0, [](const Segment&) { return std::vector<EvalResult>(2); }),
               std::logic_error);
}

}  // namespace
}  // namespace skillrun
