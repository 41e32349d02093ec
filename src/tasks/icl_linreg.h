// In-context linear regression (paper Section 5, Appendix C): the population loss of a linear
// attention layer reduces to a d x d preconditioner Q with
//   L(Q) = 1/2 tr((Sx Q - I) Sx (Sx Q - I)^T Sw),  grad L = Sx Sw Sx Q Sx - Sx Sw Sx,
// minimised at Q = Sx^-1, where Sx = Vx diag(lambda_x) Vx^T is the input covariance and
// Sw = Vw diag(lambda_w) Vw^T the task covariance. With a shared basis (Vx = Vw = V*,
// Assumption 1) SpecGD's iterates stay diagonal in V* (Lemma 3).
//
// IclProblem is the host side, all in double: the spectra, the orthogonal bases (random from
// the seed, or Sigma_x's eigenbasis = I under task.coordinates "eigenbasis"), the fixed matrices the iteration needs, and reference implementations of the loss
// and of the metrics (spectral distance to Sx^-1, per-eigenmode errors) that the training loop
// (train/icl_trainer.h) and the tests use.
#pragma once
#include <cstdint>
#include <vector>

#include "config/experiment.h"

namespace skillrun {

// Dense row-major n x n matrix of doubles (host).
struct HostMatrix {
  int n = 0;
  std::vector<double> a;
  HostMatrix() = default;
  explicit HostMatrix(int size) : n(size), a(static_cast<std::size_t>(size) * size, 0.0) {}
  double& operator()(int i, int j) { return a[static_cast<std::size_t>(i) * n + j]; }
  double operator()(int i, int j) const { return a[static_cast<std::size_t>(i) * n + j]; }
};

HostMatrix operator*(const HostMatrix& x, const HostMatrix& y);  // BLAS dgemm
HostMatrix transpose(const HostMatrix& x);
// V diag(values) V^T
HostMatrix sandwich(const HostMatrix& v, const std::vector<double>& values);
// Largest singular value (LAPACK dgesdd, values only).
double spectral_norm(const HostMatrix& x);

// lambda_1 = 1 >= ... >= lambda_d > 0 (SpectrumConfig's rule).
std::vector<double> spectrum_values(const SpectrumConfig& spectrum, int d);
// A Haar-distributed orthogonal d x d matrix: QR of a Gaussian matrix drawn from the IclBasis
// Philox stream (seed, index), columns signed so that R has a positive diagonal.
HostMatrix random_orthogonal(uint64_t seed, uint32_t index, int d);

class IclProblem {
 public:
  IclProblem(const TaskConfig& task, uint64_t seed);

  int d() const { return d_; }
  const std::vector<double>& lambda_x() const { return lambda_x_; }  // descending, lambda_x[0] = 1
  const std::vector<double>& lambda_w() const { return lambda_w_; }
  const HostMatrix& basis_x() const { return vx_; }  // column i: eigenvector of lambda_x[i]
  const HostMatrix& basis_w() const { return vw_; }
  const HostMatrix& sigma_x() const { return sx_; }
  const HostMatrix& sigma_w() const { return sw_; }
  const HostMatrix& sigma_x_inverse() const { return sx_inv_; }
  double sigma_min_x() const { return lambda_x_.back(); }

  // The operands of the device iteration:
  //   gradient  G = P Q Sx - P,          P = Sx Sw Sx
  //   loss      L = 1/2 ||A Q H - C||_F^2 with A = Sw^1/2 Sx, H = Sx^1/2, C = Sw^1/2 Sx^1/2,
  // since L = 1/2 tr(R^T Sw R Sx) = 1/2 ||Sw^1/2 R Sx^1/2||_F^2 for R = Sx Q - I: a sum of
  // squares, never a difference, so it stays accurate down to the minimum.
  const HostMatrix& p() const { return p_; }
  const HostMatrix& loss_left() const { return a_; }
  const HostMatrix& loss_right() const { return h_; }
  const HostMatrix& loss_offset() const { return c_; }

  // References in double, straight from the definitions (O(d^3) on the host).
  double loss(const HostMatrix& q) const;
  HostMatrix gradient(const HostMatrix& q) const;
  // ||Q - Sx^-1||_2 and the same over ||Sx^-1||_2 = 1 / sigma_min(Sx).
  double distance(const HostMatrix& q) const;
  double relative_distance(const HostMatrix& q) const { return relative(distance(q)); }
  double relative(double distance) const { return distance * sigma_min_x(); }
  // theta_i = v_i^T Q v_i for the eigenvectors v_i of Sx (mode i is 1-based); its target is 1/lambda_x_i.
  double mode_value(const HostMatrix& q, int mode) const;
  double mode_error(const HostMatrix& q, int mode) const;

 private:
  int d_;
  std::vector<double> lambda_x_, lambda_w_;
  HostMatrix vx_, vw_, sx_, sw_, sx_inv_, p_, a_, h_, c_;
};

}  // namespace skillrun
