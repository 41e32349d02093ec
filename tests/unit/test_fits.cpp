// Specification of the two log–log fits: the least-squares line (slope, standard error, R²),
// the slope of log T_k on log p_k, and the step-scaling exponent α_S recovered from synthetic
// curves L(t) = L∞ + C·t^(−α) with a known α (within 5%).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "analysis/fits.h"
#include "tasks/sparse_parity.h"

namespace skillrun {
namespace {

TEST(FitLine, PointsOnALineGiveItsSlopeWithZeroError) {
  const std::vector<double> x = {0, 1, 2, 3}, y = {2, -1, -4, -7};  // y = 2 − 3x
  const auto f = fit_line(x, y);
  ASSERT_TRUE(f.has_value());
  EXPECT_NEAR(f->slope, -3.0, 1e-12);
  EXPECT_NEAR(f->intercept, 2.0, 1e-12);
  EXPECT_NEAR(f->slope_stderr, 0.0, 1e-12);
  EXPECT_NEAR(f->r_squared, 1.0, 1e-12);
}

// x = 0..3, y = 0, 1, 1, 3: x̄ = 1.5, ȳ = 1.25, Sxx = 5, Sxy = 4.5, Syy = 4.75.
// slope = 4.5/5 = 0.9; residual = Syy − slope·Sxy = 0.7; se = sqrt(0.7/(4−2)/5) = sqrt(0.07);
// R² = 1 − 0.7/4.75.
TEST(FitLine, StandardErrorAndRSquaredMatchTheHandComputation) {
  const std::vector<double> x = {0, 1, 2, 3}, y = {0, 1, 1, 3};
  const auto f = fit_line(x, y);
  ASSERT_TRUE(f.has_value());
  EXPECT_NEAR(f->slope, 0.9, 1e-12);
  EXPECT_NEAR(f->intercept, 1.25 - 0.9 * 1.5, 1e-12);
  EXPECT_NEAR(f->slope_stderr, std::sqrt(0.07), 1e-12);
  EXPECT_NEAR(f->r_squared, 1.0 - 0.7 / 4.75, 1e-12);
  EXPECT_EQ(f->points, 4);
}

TEST(FitLine, NeedsTwoDistinctX) {
  EXPECT_FALSE(fit_line(std::vector<double>{1.0}, std::vector<double>{2.0}).has_value());
  EXPECT_FALSE(fit_line(std::vector<double>{1.0, 1.0}, std::vector<double>{2.0, 3.0}).has_value());
}

TEST(FitLine, TwoPointsHaveNoStandardError) {
  const auto f = fit_line(std::vector<double>{0, 1}, std::vector<double>{0, 2});
  ASSERT_TRUE(f.has_value());
  EXPECT_DOUBLE_EQ(f->slope, 2.0);
  EXPECT_TRUE(std::isnan(f->slope_stderr));
}

// T_k = 10⁶/p_k: the quantization model's sequential learning, slope exactly −1.
TEST(FrequencySlope, SequentialLearningHasSlopeMinusOne) {
  const std::vector<double> p = zipf_probabilities(5, 1.4);
  AcquisitionTimes T;
  for (double pk : p) T.push_back(static_cast<int64_t>(std::llround(1e6 / pk)));
  const auto f = acquisition_frequency_slope(T, p);
  ASSERT_TRUE(f.has_value());
  EXPECT_NEAR(f->slope, -1.0, 1e-5);  // rounding T to whole steps moves it by < 1e-5
}

TEST(FrequencySlope, ParallelLearningHasSlopeZero) {
  const auto f = acquisition_frequency_slope({800, 800, 800, 800}, zipf_probabilities(4, 1.4));
  ASSERT_TRUE(f.has_value());
  EXPECT_NEAR(f->slope, 0.0, 1e-12);
}

// Only subtasks learned at a step > 0 enter: here k = 1 and 3 (k = 0 at step 0 has no log,
// k = 2 was never learned), two points, so the slope is theirs:
// (log 400 − log 100)/(log p_3 − log p_1) = log 4 / (−1.4·log 2) = −2/1.4.
TEST(FrequencySlope, SkipsSubtasksNotLearnedOrLearnedAtStepZero) {
  const std::vector<double> p = zipf_probabilities(4, 1.4);
  const auto f = acquisition_frequency_slope({0, 100, std::nullopt, 400}, p);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->points, 2);
  EXPECT_NEAR(f->slope, -2.0 / 1.4, 1e-12);
}

struct Curve {
  std::vector<int64_t> steps;
  std::vector<double> loss;
};

// L(t) = floor + C·t^(−alpha) at t = every, 2·every, ..., last, optionally capped at a plateau.
Curve power_law(double floor, double C, double alpha, int64_t every, int64_t last, double plateau = 1e300) {
  Curve c;
  for (int64_t t = every; t <= last; t += every) {
    c.steps.push_back(t);
    c.loss.push_back(std::min(plateau, floor + C * std::pow(static_cast<double>(t), -alpha)));
  }
  return c;
}

TEST(StepScaling, RecoversTheExponentOfAPureCurve) {
  const Curve c = power_law(0.0, 3.0, 0.3, 50, 20000);
  const auto f = fit_step_scaling(c.steps, c.loss);
  ASSERT_TRUE(f.has_value());
  EXPECT_NEAR(f->alpha_s, 0.3, 0.05 * 0.3);
}

TEST(StepScaling, RecoversTheExponentAndFloorOfACurveWithAFloor) {
  // min loss = 0.05 + 2/sqrt(20000) ≈ 0.064, so the floor 0.05 lies inside the scanned range.
  const Curve c = power_law(0.05, 2.0, 0.5, 50, 20000);
  const auto f = fit_step_scaling(c.steps, c.loss);
  ASSERT_TRUE(f.has_value());
  EXPECT_NEAR(f->alpha_s, 0.5, 0.05 * 0.5);
  EXPECT_NEAR(f->loss_floor, 0.05, 0.005);
  EXPECT_GT(f->r_squared, 0.999);
}

// A plateau at 1 bit until t ≈ 200 (40·t^−0.7 = 0.98), as before a subtask is learned, and a
// point at t = 0: the window starts after the plateau, so the plateau does not bend the fit.
TEST(StepScaling, SkipsThePlateauBeforeTheDecay) {
  Curve c = power_law(0.02, 40.0, 0.7, 50, 20000, /*plateau=*/1.0);
  c.steps.insert(c.steps.begin(), 0);
  c.loss.insert(c.loss.begin(), 1.0);
  const auto f = fit_step_scaling(c.steps, c.loss);
  ASSERT_TRUE(f.has_value());
  EXPECT_NEAR(f->alpha_s, 0.7, 0.05 * 0.7);
  EXPECT_GT(f->first_step, 200);
}

TEST(StepScaling, FlatCurveHasNoFit) {
  const std::vector<int64_t> steps = {0, 100, 200, 300, 400};
  const std::vector<double> loss = {1, 1, 1, 1, 1};
  EXPECT_FALSE(fit_step_scaling(steps, loss).has_value());
}

// γ = 1.4: α = 0.4, α/(α+1) = 0.4/1.4 = 2/7. γ = 1 is no power law.
TEST(StepScaling, PredictedExponentIsAlphaOverAlphaPlusOne) {
  EXPECT_NEAR(*predicted_step_exponent(1.4), 2.0 / 7.0, 1e-12);
  EXPECT_FALSE(predicted_step_exponent(1.0).has_value());
}

}  // namespace
}  // namespace skillrun
