// The generic Newton-Schulz msign, Backend::newton_schulz's default (one run after the other), built only from
// Backend ops (gemm, axpby, sum_squares) so that it runs unchanged on every backend. Each
// iteration is three named steps, Gram, polynomial, apply, with the Gram matrix on the small
// side of X and the two X buffers swapped rather than copied. Coefficients: optim/msign.h.
#include <algorithm>
#include <cmath>
#include <utility>

#include "backend/backend.h"

namespace skillrun {

namespace {

// One implementation for both element types: T = float (the MLP) or double (precision fp64).
template <class T>
void newton_schulz_generic(Backend& be, const T* G, T* out, int rows, int cols,
                   std::span<const NsCoefficients> iterations, double norm_scale, double norm_eps) {
  if (rows <= 0 || cols <= 0) return;
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  const int s = std::min(rows, cols);  // side of the Gram matrix
  const bool wide = rows <= cols;      // wide: A = X X^T (rows x rows); tall: A = X^T X

  // ||X0||_F <= 1 bounds every singular value by 1, inside the region where the quintics work.
  const double norm = std::sqrt(be.sum_squares(G, n));
  const T inv = static_cast<T>(1.0 / (norm_scale * norm + norm_eps));

  // Each iteration writes into the other X buffer. Starting in `out` after an even number of
  // iterations (in the scratch buffer after an odd number) leaves the result in `out`.
  Buffer<T> scratch(be, iterations.empty() ? 0 : n);
  T* x = iterations.size() % 2 == 0 ? out : scratch.data();
  T* x_next = iterations.size() % 2 == 0 ? scratch.data() : out;
  be.axpby(x, G, n, inv, T(0));
  if (iterations.empty()) return;

  const std::size_t ss = static_cast<std::size_t>(s) * s;
  Buffer<T> gram(be, ss);  // A
  Buffer<T> poly(be, ss);  // B = b A + c A^2
  for (const NsCoefficients& k : iterations) {
    // Gram: A = X X^T or X^T X (s x s).
    if (wide) {
      be.gemm(Trans::No, Trans::Yes, s, s, cols, T(1), x, cols, x, cols, T(0), gram.data(), s);
    } else {
      be.gemm(Trans::Yes, Trans::No, s, s, rows, T(1), x, cols, x, cols, T(0), gram.data(), s);
    }
    // Polynomial: B = c A A + b A.
    be.gemm(Trans::No, Trans::No, s, s, s, static_cast<T>(k.c), gram.data(), s, gram.data(), s, T(0),
            poly.data(), s);
    be.axpby(poly.data(), gram.data(), ss, static_cast<T>(k.b), T(1));
    // Apply: X' = a X + B X (wide) or a X + X B (tall); same polynomial in X X^T either way.
    be.axpby(x_next, x, n, static_cast<T>(k.a), T(0));
    if (wide) {
      be.gemm(Trans::No, Trans::No, rows, cols, rows, T(1), poly.data(), s, x, cols, T(1), x_next, cols);
    } else {
      be.gemm(Trans::No, Trans::No, rows, cols, cols, T(1), x, cols, poly.data(), s, T(1), x_next, cols);
    }
    std::swap(x, x_next);
  }
}

}  // namespace

void Backend::newton_schulz(const NsArgs& a) {
  for (int r = 0; r < a.runs; ++r) {
    const std::size_t offset = static_cast<std::size_t>(r) * a.stride;
    if (a.dtype == DType::F64) {
      newton_schulz_generic(*this, static_cast<const double*>(a.G) + offset, static_cast<double*>(a.out) + offset, a.rows,
                    a.cols, a.iterations, a.norm_scale, a.norm_eps);
    } else {
      newton_schulz_generic(*this, static_cast<const float*>(a.G) + offset, static_cast<float*>(a.out) + offset, a.rows,
                    a.cols, a.iterations, a.norm_scale, a.norm_eps);
    }
  }
}

}  // namespace skillrun
