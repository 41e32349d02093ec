// Fits for the scaling numbers. The α_S fit is a one-parameter search (L∞) around a linear
// regression: for a fixed floor the model is a line on log–log axes, so R² of that line is a
// well-behaved score for the floor and no general nonlinear solver is needed.
#include "analysis/fits.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace skillrun {

std::optional<LineFit> fit_line(std::span<const double> x, std::span<const double> y) {
  const std::size_t n = std::min(x.size(), y.size());
  if (n < 2) return std::nullopt;
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < n; ++i) mx += x[i], my += y[i];
  mx /= static_cast<double>(n);
  my /= static_cast<double>(n);
  double sxx = 0, sxy = 0, syy = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx <= 0) return std::nullopt;
  LineFit f;
  f.points = static_cast<int>(n);
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  const double residual = std::max(0.0, syy - f.slope * sxy);  // Σ(y − ŷ)²
  f.r_squared = syy > 0 ? 1.0 - residual / syy : 1.0;
  f.slope_stderr = n > 2 ? std::sqrt(residual / static_cast<double>(n - 2) / sxx)
                         : std::numeric_limits<double>::quiet_NaN();
  return f;
}

std::optional<LineFit> acquisition_frequency_slope(const AcquisitionTimes& T, std::span<const double> p) {
  std::vector<double> log_p, log_t;
  for (std::size_t k = 0; k < T.size() && k < p.size(); ++k) {
    if (!T[k] || *T[k] <= 0 || p[k] <= 0) continue;
    log_p.push_back(std::log(p[k]));
    log_t.push_back(std::log(static_cast<double>(*T[k])));
  }
  return fit_line(log_p, log_t);
}

namespace {

// The window of the curve to fit: t > 0, finite losses, from where the fall from the
// maximum passes 10% of the total drop to the end.
struct Window {
  std::vector<double> log_t, loss;
  int64_t first = 0, last = 0;
  double min_loss = 0;
};

std::optional<Window> decaying_part(std::span<const int64_t> steps, std::span<const double> loss) {
  std::vector<int64_t> t;
  std::vector<double> l;
  for (std::size_t i = 0; i < steps.size() && i < loss.size(); ++i)
    if (steps[i] > 0 && std::isfinite(loss[i])) t.push_back(steps[i]), l.push_back(loss[i]);
  if (l.empty()) return std::nullopt;
  const std::size_t peak = static_cast<std::size_t>(std::max_element(l.begin(), l.end()) - l.begin());
  const double lowest = *std::min_element(l.begin() + static_cast<std::ptrdiff_t>(peak), l.end());
  if (!(l[peak] > lowest)) return std::nullopt;
  const double threshold = l[peak] - 0.1 * (l[peak] - lowest);
  std::size_t start = peak;
  while (l[start] > threshold) ++start;  // terminates: the minimum is below the threshold
  Window w;
  for (std::size_t i = start; i < l.size(); ++i) {
    w.log_t.push_back(std::log(static_cast<double>(t[i])));
    w.loss.push_back(l[i]);
  }
  w.first = t[start];
  w.last = t.back();
  w.min_loss = *std::min_element(w.loss.begin(), w.loss.end());
  return w;
}

std::optional<LineFit> fit_with_floor(const Window& w, double floor) {
  std::vector<double> log_excess(w.loss.size());
  for (std::size_t i = 0; i < w.loss.size(); ++i) log_excess[i] = std::log(w.loss[i] - floor);
  return fit_line(w.log_t, log_excess);
}

double score(const Window& w, double floor) {
  const auto f = fit_with_floor(w, floor);
  return f ? f->r_squared : -std::numeric_limits<double>::infinity();
}

}  // namespace

std::optional<StepScalingFit> fit_step_scaling(std::span<const int64_t> steps, std::span<const double> loss) {
  const auto w = decaying_part(steps, loss);
  if (!w || w->loss.size() < 4) return std::nullopt;
  // The floor is u · min_loss with u in [0, 1): a uniform grid, then points ever closer to 1,
  // where a curve that is nearly flat at its end puts its floor.
  std::vector<double> grid;
  for (int i = 0; i < 64; ++i) grid.push_back(i / 64.0);
  for (int j = 7; j <= 30; ++j) grid.push_back(1.0 - std::ldexp(1.0, -j));
  std::size_t best = 0;
  double best_score = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < grid.size(); ++i) {
    const double s = score(*w, grid[i] * w->min_loss);
    if (s > best_score) best_score = s, best = i;
  }
  // Golden-section refinement between the grid neighbours of the best point.
  double lo = best > 0 ? grid[best - 1] : 0.0;
  double hi = best + 1 < grid.size() ? grid[best + 1] : grid[best];
  const double g = (std::sqrt(5.0) - 1) / 2;
  double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
  double sa = score(*w, a * w->min_loss), sb = score(*w, b * w->min_loss);
  for (int it = 0; it < 60; ++it) {
    if (sa < sb) {
      lo = a, a = b, sa = sb;
      b = lo + g * (hi - lo), sb = score(*w, b * w->min_loss);
    } else {
      hi = b, b = a, sb = sa;
      a = hi - g * (hi - lo), sa = score(*w, a * w->min_loss);
    }
  }
  double u = grid[best];
  if (std::max(sa, sb) > best_score) u = sa > sb ? a : b;

  const double floor = u * w->min_loss;
  const auto line = fit_with_floor(*w, floor);
  if (!line) return std::nullopt;
  StepScalingFit f;
  f.alpha_s = -line->slope;
  f.alpha_s_stderr = line->slope_stderr;
  f.loss_floor = floor;
  f.coefficient = std::exp(line->intercept);
  f.r_squared = line->r_squared;
  f.first_step = w->first;
  f.last_step = w->last;
  f.points = line->points;
  return f;
}

std::optional<double> predicted_assoc_loss_exponent(double zipf_exponent, double label_noise,
                                                    const OptimizerConfig& optimizer) {
  if (!(label_noise > 0) || !(zipf_exponent > 1)) return std::nullopt;
  if (optimizer.type == OptimizerType::Muon) return 2.0;
  if (optimizer.type == OptimizerType::Sgd && optimizer.momentum == 0) return 1.0 - 1.0 / zipf_exponent;
  return std::nullopt;
}

std::optional<double> predicted_step_exponent(double zipf_exponent) {
  const double alpha = zipf_exponent - 1.0;
  if (!(alpha > 0)) return std::nullopt;
  return alpha / (alpha + 1.0);
}

}  // namespace skillrun
