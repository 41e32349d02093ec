// The coefficient schedules of the Newton-Schulz msign and the dispatch by method; the
// iteration itself is Backend::msign_newton_schulz (backend/newton_schulz.cpp).
#include "optim/msign.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace skillrun {

std::vector<NsCoefficients> ns5_coefficients(int steps) {
  if (steps < 0) throw std::invalid_argument("ns5_coefficients: steps must be >= 0");
  return std::vector<NsCoefficients>(static_cast<std::size_t>(steps), {3.4445, -4.7750, 2.0315});
}

std::vector<NsCoefficients> polar_express_coefficients(int steps) {
  if (steps < 0) throw std::invalid_argument("polar_express_coefficients: steps must be >= 0");
  static constexpr NsCoefficients kSchedule[] = {
      {8.156554524902461, -22.48329292557795, 15.878769915207462},
      {4.042929935166739, -2.808917465908714, 0.5000178451051316},
      {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
      {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
      {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
  };
  constexpr int kScheduled = static_cast<int>(std::size(kSchedule));
  std::vector<NsCoefficients> out;
  out.reserve(static_cast<std::size_t>(steps));
  for (int i = 0; i < steps; ++i) out.push_back(kSchedule[std::min(i, kScheduled - 1)]);
  return out;
}

NsSchedule ns_schedule(MsignMethod method, int steps, bool fp64) {
  switch (method) {
    case MsignMethod::NewtonSchulz5:
      return {ns5_coefficients(steps), 1.0, fp64 ? 1e-300 : 1e-7};
    case MsignMethod::PolarExpress:
      // The schedule was optimised for ||X0||_F slightly below 1, hence the 2% margin.
      return {polar_express_coefficients(steps), 1.02, fp64 ? 1e-300 : 1e-6};
    case MsignMethod::Svd:
    case MsignMethod::NormMatched:  // its scale depends on the shape: norm_matched_schedule
      break;
  }
  throw std::invalid_argument("ns_schedule: not a Newton-Schulz method");
}

NsSchedule norm_matched_schedule(int rows, int cols, bool fp64) {
  const double side = static_cast<double>(std::max(1, std::min(rows, cols)));
  const NsSchedule ns5 = ns_schedule(MsignMethod::NewtonSchulz5, 0, fp64);
  // X0 = G / (||G||_F / sqrt(side) + eps / sqrt(side)) = sqrt(side) G / (||G||_F + eps).
  return {{}, 1.0 / std::sqrt(side), ns5.norm_eps / std::sqrt(side)};
}

// The eps in X0 = G / (scale ||G||_F + eps) only keeps G = 0 from dividing by zero. In fp32 it is
// Muon's customary 1e-7; fp64 runs (in-context regression) reach gradients of norm 1e-12 and
// below, which an eps of 1e-7 would shrink towards zero instead of normalising, so theirs is
// tiny (ns_schedule's fp64 flag).
template <class T>
void msign_runs(Backend& backend, MsignMethod method, const T* G, T* out, std::size_t stride, int rows, int cols,
                int steps, int runs) {
  if (method == MsignMethod::Svd) return backend.svd_op(dtype_of<T>, G, out, stride, rows, cols, runs);
  const bool fp64 = std::is_same_v<T, double>;
  const NsSchedule s =
      method == MsignMethod::NormMatched ? norm_matched_schedule(rows, cols, fp64) : ns_schedule(method, steps, fp64);
  backend.newton_schulz(NsArgs{dtype_of<T>, G, out, stride, rows, cols, s.iterations, s.norm_scale, s.norm_eps, runs});
}
template void msign_runs<float>(Backend&, MsignMethod, const float*, float*, std::size_t, int, int, int, int);
template void msign_runs<double>(Backend&, MsignMethod, const double*, double*, std::size_t, int, int, int, int);

}  // namespace skillrun
