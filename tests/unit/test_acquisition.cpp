// Specification of the acquisition quantities (paper Section 4): T_k(τ), T_first, the
// p-coverage time T(p, τ) and the skill acquisition lag Δ_SAL(p, τ), with hand-worked numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "analysis/acquisition.h"

namespace skillrun {
namespace {

const AcquisitionTimes kFive = {500, 700, 800, 900, 1100};

MetricsRow row(int64_t step, std::vector<double> losses) {
  MetricsRow r;
  r.step = step;
  r.loss_bits = std::move(losses);
  return r;
}

TEST(Acquisition, FirstAcquisitionIsTheEarliestSubtask) { EXPECT_EQ(first_acquisition(kFive), 500); }

TEST(Acquisition, FirstAcquisitionIsUndefinedWhenNothingWasLearned) {
  EXPECT_FALSE(first_acquisition({std::nullopt, std::nullopt}).has_value());
}

TEST(Acquisition, TkIsTheFirstEvalStepAtOrBelowTau) {
  // Subtask 0 crosses 0.1 at step 100 (0.1 itself counts), subtask 1 at 200, then rises again:
  // T_k keeps the first crossing. Subtask 2 never gets to 0.1.
  const std::vector<MetricsRow> rows = {row(0, {1.0, 1.0, 1.0}), row(100, {0.1, 0.5, 0.9}),
                                        row(200, {0.05, 0.09, 0.8}), row(300, {0.02, 0.3, 0.2})};
  const AcquisitionTimes T = acquisition_times(rows, 3, 0.1);
  EXPECT_EQ(T[0], 100);
  EXPECT_EQ(T[1], 200);
  EXPECT_FALSE(T[2].has_value());
}

TEST(Acquisition, LargerTauGivesEarlierTimes) {
  // With τ = 0.5 subtask 1 is learned at step 100 (0.5 <= 0.5) and subtask 2 at 300 (0.2).
  const std::vector<MetricsRow> rows = {row(0, {1.0, 1.0, 1.0}), row(100, {0.1, 0.5, 0.9}),
                                        row(200, {0.05, 0.09, 0.8}), row(300, {0.02, 0.3, 0.2})};
  const AcquisitionTimes T = acquisition_times(rows, 3, 0.5);
  EXPECT_EQ(T, (AcquisitionTimes{100, 100, 300}));
}

TEST(Acquisition, NanLossIsNeverLearned) {
  const std::vector<MetricsRow> rows = {row(0, {1.0}), row(50, {std::nan("")})};
  EXPECT_FALSE(acquisition_times(rows, 1, 0.1)[0].has_value());
}

// −inf <= τ holds, but a diverged run's −inf (or +inf) loss is not a subtask learned.
TEST(Acquisition, InfiniteLossIsNeverLearned) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<MetricsRow> rows = {row(0, {1.0, 1.0}), row(50, {-inf, inf})};
  EXPECT_EQ(acquisition_times(rows, 2, 0.1), (AcquisitionTimes{std::nullopt, std::nullopt}));
}

// The tracker is what read_run streams rows into: the same T_k as acquisition_times.
TEST(Acquisition, TrackerFedRowByRowGivesTheSameTimes) {
  const std::vector<MetricsRow> rows = {row(0, {1.0, 1.0, 1.0}), row(100, {0.1, 0.5, 0.9}), row(200, {0.05, 0.09, 0.8}),
                                        row(300, {0.02, 0.3, 0.2})};
  AcquisitionTracker tracker(3, 0.1);
  for (const MetricsRow& r : rows) tracker.add(r.step, r.loss_bits);
  EXPECT_EQ(tracker.times(), (AcquisitionTimes{100, 200, std::nullopt}));
  EXPECT_EQ(tracker.times(), acquisition_times(rows, 3, 0.1));
}

TEST(Coverage, FullCoverageIsTheLastSubtask) { EXPECT_EQ(coverage_time(kFive, 1.0), 1100); }

// ⌈0.6 · 5⌉ = 3 subtasks: the third smallest T_k.
TEST(Coverage, SixtyPercentOfFiveIsTheThirdSubtask) { EXPECT_EQ(coverage_time(kFive, 0.6), 800); }

// ⌈0.5 · 5⌉ = ⌈2.5⌉ = 3 and ⌈0.1 · 5⌉ = 1: a fraction rounds up to whole subtasks.
TEST(Coverage, FractionRoundsUpToWholeSubtasks) {
  EXPECT_EQ(coverage_time(kFive, 0.5), 800);
  EXPECT_EQ(coverage_time(kFive, 0.1), 500);
}

// 0.14 · 50 (the paper's 50 subtasks) is 7.000000000000001 in double; a bare ceil would ask
// for 8 subtasks. With T_k = 100·(k+1), T(0.14) is the 7th smallest, 700 (not 800).
TEST(Coverage, RoundingErrorInPTimesNDoesNotAddASubtask) {
  AcquisitionTimes fifty;
  for (int k = 0; k < 50; ++k) fifty.push_back(100 * (k + 1));
  EXPECT_EQ(required_subtasks(0.14, 50), 7);
  EXPECT_EQ(coverage_time(fifty, 0.14), 700);
}

TEST(Coverage, OrderOfSubtasksDoesNotMatter) {
  EXPECT_EQ(coverage_time({1100, 500, 900, 700, 800}, 0.6), 800);
}

TEST(Coverage, NeverLearnedSubtaskLeavesFullCoverageUndefined) {
  const AcquisitionTimes T = {500, 700, 800, 900, std::nullopt};
  EXPECT_FALSE(coverage_time(T, 1.0).has_value());
  EXPECT_EQ(coverage_time(T, 0.8), 900);  // ⌈4⌉ = 4 learned subtasks suffice
}

// Three subtasks at 300: T(0.5) needs ⌈2⌉ = 2, T(0.75) needs ⌈3⌉ = 3; both are 300.
TEST(Coverage, TiedSubtasksCountTogether) {
  const AcquisitionTimes T = {300, 300, 300, 900};
  EXPECT_EQ(coverage_time(T, 0.5), 300);
  EXPECT_EQ(coverage_time(T, 0.75), 300);
  EXPECT_EQ(coverage_time(T, 1.0), 900);
}

// Δ_SAL(1) = (1100 − 500)/1100 = 600/1100.
TEST(Sal, SequentialExampleIsSixHundredOverElevenHundred) {
  EXPECT_DOUBLE_EQ(*skill_acquisition_lag(kFive, 1.0), 600.0 / 1100.0);
}

TEST(Sal, ParallelAcquisitionIsZero) {
  const AcquisitionTimes T = {400, 400, 400, 400, 400};
  for (double p : {0.2, 0.6, 1.0}) EXPECT_EQ(*skill_acquisition_lag(T, p), 0.0) << "p = " << p;
}

TEST(Sal, UndefinedNotZeroWhereCoverageWasNotReached) {
  const AcquisitionTimes T = {500, 700, std::nullopt};
  EXPECT_FALSE(skill_acquisition_lag(T, 1.0).has_value());
  // ⌈0.5 · 3⌉ = 2: T(0.5) = 700, SAL = (700 − 500)/700 = 2/7.
  EXPECT_DOUBLE_EQ(*skill_acquisition_lag(T, 0.5), 200.0 / 700.0);
}

// Ties at the front: T_first = 300 = T(0.75), so SAL(0.75) = 0; SAL(1) = (900 − 300)/900 = 2/3.
TEST(Sal, TiesWithTheFirstSubtaskGiveZeroLag) {
  const AcquisitionTimes T = {300, 300, 300, 900};
  EXPECT_EQ(*skill_acquisition_lag(T, 0.75), 0.0);
  EXPECT_DOUBLE_EQ(*skill_acquisition_lag(T, 1.0), 2.0 / 3.0);
}

TEST(Sal, SingleSubtaskHasNoLag) {
  const AcquisitionTimes T = {250};
  EXPECT_EQ(first_acquisition(T), 250);
  EXPECT_EQ(coverage_time(T, 0.1), 250);  // ⌈0.1⌉ = 1
  EXPECT_EQ(coverage_time(T, 1.0), 250);
  EXPECT_EQ(*skill_acquisition_lag(T, 1.0), 0.0);
}

// Everything below τ at step 0: T(p) = 0 and the lag is 0, not 0/0.
TEST(Sal, CoverageAtStepZeroHasZeroLag) { EXPECT_EQ(*skill_acquisition_lag({0, 0}, 1.0), 0.0); }

TEST(Acquisition, FractionLearnedCountsDefinedTimes) {
  EXPECT_DOUBLE_EQ(fraction_learned({500, std::nullopt, 800, std::nullopt}), 0.5);
  EXPECT_DOUBLE_EQ(fraction_learned(kFive), 1.0);
}

}  // namespace
}  // namespace skillrun
