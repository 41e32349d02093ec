// Matrices with known singular values for the spectra tests: U diag(sigma) V^T with random
// orthonormal U and V (the Q factors of Gaussian matrices, LAPACK in double).
#pragma once
#include <lapacke.h>

#include <random>
#include <stdexcept>
#include <vector>

namespace skillrun_test {

// A random orthonormal basis (n x k, row-major, k <= n).
inline std::vector<double> orthonormal(int n, int k, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist;
  std::vector<double> a(static_cast<std::size_t>(n) * k), tau(static_cast<std::size_t>(k));
  for (double& x : a) x = dist(rng);
  if (LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n, k, a.data(), k, tau.data()) != 0 ||
      LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n, k, k, a.data(), k, tau.data()) != 0)
    throw std::runtime_error("orthonormal: LAPACK failed");
  return a;
}

// U diag(sigma) V^T (rows x cols, row-major, fp32): its singular values are `sigma` (and zeros).
inline std::vector<float> with_singular_values(int rows, int cols, const std::vector<double>& sigma, unsigned seed) {
  const int k = static_cast<int>(sigma.size());
  const auto U = orthonormal(rows, k, seed), V = orthonormal(cols, k, seed + 1);
  std::vector<float> out(static_cast<std::size_t>(rows) * cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      double v = 0;
      for (int l = 0; l < k; ++l) v += U[i * k + l] * sigma[l] * V[j * k + l];
      out[static_cast<std::size_t>(i) * cols + j] = static_cast<float>(v);
    }
  return out;
}

}  // namespace skillrun_test
