// Least-squares fits on log–log axes, the two scaling numbers of a run:
// (a) log T_k against log p_k — the quantization model (Michaud et al.) predicts slope −1 for
//     sequential learning (T_k ∝ 1/p_k), 0 for fully parallel learning;
// (b) the step-scaling exponent α_S of mean_loss(t) ≈ L∞ + C·t^(−α_S) (the paper's open
//     question), to set beside α/(α+1) with α = zipf_exponent − 1.
#pragma once
#include <cstdint>
#include <optional>
#include <span>

#include "analysis/acquisition.h"
#include "config/experiment.h"

namespace skillrun {

// y ≈ intercept + slope·x by ordinary least squares.
struct LineFit {
  double slope = 0;
  double slope_stderr = 0;  // sqrt(residual variance / Σ(x − x̄)²), n − 2 degrees of freedom; NaN for n = 2
  double intercept = 0;
  double r_squared = 0;     // 1 when the points lie on the line (also when y is constant)
  int points = 0;
};

// Empty for fewer than 2 points or when every x is the same.
std::optional<LineFit> fit_line(std::span<const double> x, std::span<const double> y);

// Slope of log T_k against log p_k over the subtasks learned at a step > 0 (log 0 is
// undefined); empty for fewer than 2 such subtasks or when they all share one p_k.
std::optional<LineFit> acquisition_frequency_slope(const AcquisitionTimes& T, std::span<const double> p);

// mean_loss(t) ≈ L∞ + C·t^(−α_S).
struct StepScalingFit {
  double alpha_s = 0;         // α_S
  double alpha_s_stderr = 0;  // of the log–log slope at the chosen L∞
  double loss_floor = 0;      // L∞ (bits)
  double coefficient = 0;     // C
  double r_squared = 0;       // of log(L − L∞) against log t
  int64_t first_step = 0;     // the window fitted: [first_step, last_step]
  int64_t last_step = 0;
  int points = 0;
};

// Fits the decaying part of a loss curve. The window starts where the curve has fallen by 10%
// of its total drop from its maximum over t > 0 (this skips the plateau before learning starts)
// and runs to the last point. L∞ is scanned over [0, min loss) and refined by golden-section
// search, keeping the L∞ whose log(L − L∞)-vs-log t line has the highest R²; α_S is minus
// that line's slope. Empty for fewer than 4 points in the window or a curve that does not fall.
std::optional<StepScalingFit> fit_step_scaling(std::span<const int64_t> steps, std::span<const double> loss);

// α/(α+1) with α = zipf_exponent − 1: the step-scaling exponent the quantization model
// predicts for Zipf-distributed subtasks. Empty when α <= 0 (no power law to predict).
std::optional<double> predicted_step_exponent(double zipf_exponent);
// assoc_memory with label noise and power-law frequencies (arXiv 2602.05725): the loss-vs-steps
// exponents the paper predicts, GD's 1 - 1/beta (a lower bound on its loss: Omega~(T^-(1-1/beta)),
// for sgd without momentum) and Muon's 2 (an upper bound: O~(T^-2)). Empty for other optimizers,
// without noise or with beta <= 1.
std::optional<double> predicted_assoc_loss_exponent(double zipf_exponent, double label_noise,
                                                    const OptimizerConfig& optimizer);

}  // namespace skillrun
