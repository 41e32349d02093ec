// The generic Newton-Schulz msign, built only from Backend ops (gemm, axpby, sum_squares) so
// that it runs unchanged on every backend, plus the coefficient schedules and the dispatch.
// Each iteration is three named steps, Gram, polynomial, apply, with the Gram matrix on the
// small side of X and the two X buffers swapped rather than copied.
#include "optim/msign.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>

namespace skillrun {

void Backend::msign_newton_schulz(const float* G, float* out, int rows, int cols,
                                  std::span<const NsCoefficients> iterations, double norm_scale,
                                  double norm_eps) {
  if (rows <= 0 || cols <= 0) return;
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  const int s = std::min(rows, cols);  // side of the Gram matrix
  const bool wide = rows <= cols;      // wide: A = X X^T (rows x rows); tall: A = X^T X

  // ||X0||_F <= 1 bounds every singular value by 1, inside the region where the quintics work.
  const double norm = std::sqrt(sum_squares(G, n));
  const float inv = static_cast<float>(1.0 / (norm_scale * norm + norm_eps));

  // Each iteration writes into the other X buffer. Starting in `out` after an even number of
  // iterations (in the scratch buffer after an odd number) leaves the result in `out`.
  Buffer<float> scratch(*this, iterations.empty() ? 0 : n);
  float* x = iterations.size() % 2 == 0 ? out : scratch.data();
  float* x_next = iterations.size() % 2 == 0 ? scratch.data() : out;
  axpby(x, G, n, inv, 0.0f);
  if (iterations.empty()) return;

  Buffer<float> gram(*this, static_cast<std::size_t>(s) * s);  // A
  Buffer<float> poly(*this, static_cast<std::size_t>(s) * s);  // B = b A + c A^2
  const std::size_t ss = static_cast<std::size_t>(s) * s;
  for (const NsCoefficients& k : iterations) {
    // Gram: A = X X^T or X^T X (s x s).
    if (wide) {
      gemm(Trans::No, Trans::Yes, s, s, cols, 1.0f, x, cols, x, cols, 0.0f, gram.data(), s);
    } else {
      gemm(Trans::Yes, Trans::No, s, s, rows, 1.0f, x, cols, x, cols, 0.0f, gram.data(), s);
    }
    // Polynomial: B = c A A + b A.
    gemm(Trans::No, Trans::No, s, s, s, static_cast<float>(k.c), gram.data(), s, gram.data(), s,
         0.0f, poly.data(), s);
    axpby(poly.data(), gram.data(), ss, static_cast<float>(k.b), 1.0f);
    // Apply: X' = a X + B X (wide) or a X + X B (tall); same polynomial in X X^T either way.
    axpby(x_next, x, n, static_cast<float>(k.a), 0.0f);
    if (wide) {
      gemm(Trans::No, Trans::No, rows, cols, rows, 1.0f, poly.data(), s, x, cols, 1.0f, x_next,
           cols);
    } else {
      gemm(Trans::No, Trans::No, rows, cols, cols, 1.0f, x, cols, poly.data(), s, 1.0f, x_next,
           cols);
    }
    std::swap(x, x_next);
  }
}

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

void msign(Backend& backend, MsignMethod method, const float* G, float* out, int rows, int cols,
           int steps) {
  switch (method) {
    case MsignMethod::NewtonSchulz5:
      backend.msign_newton_schulz(G, out, rows, cols, ns5_coefficients(steps), 1.0, 1e-7);
      return;
    case MsignMethod::PolarExpress:
      // The schedule was optimised for ||X0||_F slightly below 1, hence the 2% margin.
      backend.msign_newton_schulz(G, out, rows, cols, polar_express_coefficients(steps), 1.02,
                                  1e-6);
      return;
    case MsignMethod::Svd:
      backend.msign_svd(G, out, rows, cols);
      return;
  }
  throw std::invalid_argument("msign: unknown method");
}

MsignMethod parse_msign_method(std::string_view name) {
  if (name == "ns5") return MsignMethod::NewtonSchulz5;
  if (name == "polar_express") return MsignMethod::PolarExpress;
  if (name == "svd") return MsignMethod::Svd;
  throw std::invalid_argument("unknown msign method \"" + std::string(name) +
                              "\" (expected ns5 | polar_express | svd)");
}

std::string_view msign_method_name(MsignMethod method) {
  switch (method) {
    case MsignMethod::NewtonSchulz5: return "ns5";
    case MsignMethod::PolarExpress: return "polar_express";
    case MsignMethod::Svd: return "svd";
  }
  return "unknown";
}

}  // namespace skillrun
