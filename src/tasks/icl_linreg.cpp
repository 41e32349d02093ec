// Host side of the in-context linear-regression task, in double. Matrices are at most
// 4096 x 4096 and built once per run: products go to BLAS (dgemm), the QR of the random basis
// and the SVD of the distance to LAPACK, the rest are plain loops.
#include "tasks/icl_linreg.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "core/error.h"
#include "core/philox.h"
#include "core/philox_gaussian.h"

namespace skillrun {

HostMatrix operator*(const HostMatrix& x, const HostMatrix& y) {
  const int n = x.n;
  HostMatrix out(n);
  if (n > 0) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, x.a.data(), n, y.a.data(), n, 0.0,
                out.a.data(), n);
  }
  return out;
}

HostMatrix transpose(const HostMatrix& x) {
  HostMatrix out(x.n);
  for (int i = 0; i < x.n; ++i)
    for (int j = 0; j < x.n; ++j) out(j, i) = x(i, j);
  return out;
}

HostMatrix sandwich(const HostMatrix& v, const std::vector<double>& values) {
  // (V diag(values)) V^T
  const int n = v.n;
  HostMatrix scaled = v, out(n);
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < n; ++k) scaled(i, k) *= values[static_cast<std::size_t>(k)];
  if (n > 0) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, scaled.a.data(), n, v.a.data(), n, 0.0,
                out.a.data(), n);
  }
  return out;
}

double spectral_norm(const HostMatrix& x) {
  const int n = x.n;
  if (n == 0) return 0.0;
  std::vector<double> a = x.a, s(static_cast<std::size_t>(n));
  double dummy = 0.0;
  const lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', n, n, a.data(), n, s.data(), &dummy, 1, &dummy, 1);  // ||X^T||_2 = ||X||_2
  if (info != 0) {
    throw RuntimeError("spectral_norm: LAPACK dgesdd of a " + std::to_string(n) + "x" + std::to_string(n) +
                       " matrix failed, info = " + std::to_string(info) +
                       (info < 0 ? " (a NaN or infinity in the iterate?)" : ""));
  }
  return s[0];
}

std::vector<double> spectrum_values(const SpectrumConfig& spectrum, int d) {
  std::vector<double> values(static_cast<std::size_t>(d));
  for (int i = 0; i < d; ++i) {
    if (spectrum.kappa) {
      values[static_cast<std::size_t>(i)] = d == 1 ? 1.0 : std::pow(*spectrum.kappa, -static_cast<double>(i) / (d - 1));
    } else {
      values[static_cast<std::size_t>(i)] = std::pow(static_cast<double>(i + 1), -spectrum.exponent);
    }
  }
  return values;
}

HostMatrix random_orthogonal(uint64_t seed, uint32_t index, int d) {
  // Gaussian entries by Box-Muller from two 32-bit uniforms in (0, 1); element e uses words
  // 2 (e % 2) and 2 (e % 2) + 1 of block e / 2. Column-major for LAPACK.
  const std::size_t count = static_cast<std::size_t>(d) * d;
  std::vector<double> g(count);
  for (std::size_t e = 0; e < count; ++e) g[e] = philox_gaussian(seed, RngStream::IclBasis, index, e);
  std::vector<double> tau(static_cast<std::size_t>(d));
  lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, d, d, g.data(), d, tau.data());
  std::vector<double> r_diagonal(static_cast<std::size_t>(d));
  for (int i = 0; i < d; ++i) r_diagonal[static_cast<std::size_t>(i)] = g[static_cast<std::size_t>(i) * d + i];
  if (info == 0) info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, d, d, d, g.data(), d, tau.data());
  if (info != 0) throw RuntimeError("random_orthogonal: LAPACK QR failed, info = " + std::to_string(info));
  HostMatrix q(d);
  for (int j = 0; j < d; ++j) {
    const double sign = r_diagonal[static_cast<std::size_t>(j)] < 0 ? -1.0 : 1.0;
    for (int i = 0; i < d; ++i) q(i, j) = sign * g[static_cast<std::size_t>(j) * d + i];
  }
  return q;
}

IclProblem::IclProblem(const TaskConfig& task, uint64_t seed)
    : d_(task.d), lambda_x_(spectrum_values(task.sigma_x, task.d)), lambda_w_(spectrum_values(task.sigma_w, task.d)) {
  if (task.type != TaskType::IclLinreg) throw std::invalid_argument("IclProblem needs task.type icl_linreg");
  if (task.coordinates == "original") {
    vx_ = random_orthogonal(seed, 0, d_);
    vw_ = task.basis == "shared" ? vx_ : random_orthogonal(seed, 1, d_);
  } else {
    // The same problem rotated by V*^T: Sigma_x's basis becomes I, exactly, and Sigma_w's is
    // I (shared) or V*^T W (independent; as Haar-distributed as W itself).
    vx_ = HostMatrix(d_);
    for (int i = 0; i < d_; ++i) vx_(i, i) = 1.0;
    vw_ = task.basis == "shared" ? vx_ : transpose(random_orthogonal(seed, 0, d_)) * random_orthogonal(seed, 1, d_);
  }
  const auto map = [](const std::vector<double>& v, double (*f)(double)) {
    std::vector<double> out(v.size());
    std::transform(v.begin(), v.end(), out.begin(), f);
    return out;
  };
  sx_ = sandwich(vx_, lambda_x_);
  sw_ = sandwich(vw_, lambda_w_);
  sx_inv_ = sandwich(vx_, map(lambda_x_, [](double l) { return 1.0 / l; }));
  p_ = sx_ * sw_ * sx_;
  const HostMatrix sw_half = sandwich(vw_, map(lambda_w_, [](double l) { return std::sqrt(l); }));
  h_ = sandwich(vx_, map(lambda_x_, [](double l) { return std::sqrt(l); }));
  a_ = sw_half * sx_;
  c_ = sw_half * h_;
}

double IclProblem::loss(const HostMatrix& q) const {
  // R = Sx Q - I; L = 1/2 tr(R Sx R^T Sw) = 1/2 sum_ij (R Sx R^T)_ij (Sw)_ji.
  HostMatrix r = sx_ * q;
  for (int i = 0; i < d_; ++i) r(i, i) -= 1.0;
  const HostMatrix m = r * sx_ * transpose(r);
  double acc = 0.0;
  for (int i = 0; i < d_; ++i)
    for (int j = 0; j < d_; ++j) acc += m(i, j) * sw_(j, i);
  return 0.5 * acc;
}

HostMatrix IclProblem::gradient(const HostMatrix& q) const {
  // Sx Sw Sx Q Sx - Sx Sw Sx, as the paper writes it.
  HostMatrix g = p_ * q * sx_;
  for (std::size_t i = 0; i < g.a.size(); ++i) g.a[i] -= p_.a[i];
  return g;
}

double IclProblem::distance(const HostMatrix& q) const {
  HostMatrix diff = q;
  for (std::size_t i = 0; i < diff.a.size(); ++i) diff.a[i] -= sx_inv_.a[i];
  return spectral_norm(diff);
}

double IclProblem::mode_value(const HostMatrix& q, int mode) const {
  if (mode < 1 || mode > d_) throw std::out_of_range("mode " + std::to_string(mode) + " outside [1, d]");
  const int c = mode - 1;
  double acc = 0.0;
  for (int i = 0; i < d_; ++i) {
    double row = 0.0;
    for (int j = 0; j < d_; ++j) row += q(i, j) * vx_(j, c);
    acc += vx_(i, c) * row;
  }
  return acc;
}

double IclProblem::mode_error(const HostMatrix& q, int mode) const {
  return std::abs(mode_value(q, mode) - 1.0 / lambda_x_[static_cast<std::size_t>(mode - 1)]);
}

}  // namespace skillrun
