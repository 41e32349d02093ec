// Specification of msign: the Newton-Schulz variants apply their odd polynomial schedule to the
// singular values of G / ||G||_F and keep the singular vectors; the SVD variant is the exact
// polar factor U V^T. References are computed in double with LAPACKE inside the tests, and run
// on the CPU backend (so the generic gemm/axpby Newton-Schulz of optim/msign.cpp is the one
// under test).
#include <gtest/gtest.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "optim/msign.h"

namespace skillrun {
namespace {

// Standard normal entries: a generic, full-rank matrix with spread-out singular values.
std::vector<float> random_matrix(int rows, int cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> m(static_cast<std::size_t>(rows) * cols);
  for (float& x : m) x = dist(rng);
  return m;
}

std::vector<float> run_msign(MsignMethod method, const std::vector<float>& g, int rows, int cols,
                             int steps) {
  CpuBackend backend;
  Buffer<float> G(backend, g.size()), out(backend, g.size());
  G.upload(g);
  msign(backend, method, G.data(), out.data(), rows, cols, steps);
  return out.download();
}

// Singular values (descending) of a row-major float matrix, computed in double.
std::vector<double> singular_values(const std::vector<float>& m, int rows, int cols) {
  std::vector<double> a(m.begin(), m.end()), s(std::min(rows, cols)), superb(s.size());
  const lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', rows, cols, a.data(), cols,
                                         s.data(), nullptr, 1, nullptr, 1, superb.data());
  EXPECT_EQ(info, 0);
  return s;
}

// U V^T (rows x cols, row-major, double) from LAPACK's thin SVD of m.
std::vector<double> polar_factor(const std::vector<float>& m, int rows, int cols) {
  const int k = std::min(rows, cols);
  std::vector<double> a(m.begin(), m.end()), s(k), u(static_cast<std::size_t>(rows) * k),
      vt(static_cast<std::size_t>(k) * cols), superb(k);
  const lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'S', 'S', rows, cols, a.data(), cols,
                                         s.data(), u.data(), k, vt.data(), cols, superb.data());
  EXPECT_EQ(info, 0);
  std::vector<double> q(static_cast<std::size_t>(rows) * cols, 0.0);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j)
      for (int p = 0; p < k; ++p) q[i * cols + j] += u[i * k + p] * vt[p * cols + j];
  return q;
}

// X^T X (cols x cols) if tall, else X X^T (rows x rows): the small Gram matrix, in double.
std::vector<double> small_gram(const std::vector<float>& x, int rows, int cols) {
  const bool tall = rows > cols;
  const int s = std::min(rows, cols), inner = tall ? rows : cols;
  auto at = [&](int i, int p) -> double {  // row i of the "small side" view
    return tall ? x[static_cast<std::size_t>(p) * cols + i]
                : x[static_cast<std::size_t>(i) * cols + p];
  };
  std::vector<double> g(static_cast<std::size_t>(s) * s, 0.0);
  for (int i = 0; i < s; ++i)
    for (int j = 0; j < s; ++j)
      for (int p = 0; p < inner; ++p) g[i * s + j] += at(i, p) * at(j, p);
  return g;
}

double frobenius(const std::vector<float>& m) {
  double sum = 0.0;
  for (float v : m) sum += static_cast<double>(v) * v;
  return std::sqrt(sum);
}

// The Newton-Schulz prediction: sigma_i(G) / (scale ||G||_F + eps) pushed through every
// iteration's p(x) = a x + b x^3 + c x^5; |.| because a singular value is the modulus.
std::vector<double> predicted_singular_values(const std::vector<float>& g, int rows, int cols,
                                              const std::vector<NsCoefficients>& schedule,
                                              double norm_scale, double norm_eps) {
  std::vector<double> s = singular_values(g, rows, cols);
  const double norm = norm_scale * frobenius(g) + norm_eps;
  for (double& x : s) {
    x /= norm;
    for (const NsCoefficients& k : schedule) {
      x = k.a * x + k.b * x * x * x + k.c * x * x * x * x * x;
    }
    x = std::abs(x);
  }
  std::sort(s.rbegin(), s.rend());
  return s;
}

void expect_singular_values_follow(MsignMethod method, int rows, int cols, int steps,
                                   const std::vector<NsCoefficients>& schedule, double norm_scale,
                                   double norm_eps, unsigned seed) {
  const auto g = random_matrix(rows, cols, seed);
  const auto expected = predicted_singular_values(g, rows, cols, schedule, norm_scale, norm_eps);
  const auto actual = singular_values(run_msign(method, g, rows, cols, steps), rows, cols);
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], 1e-4) << rows << "x" << cols << ", sigma " << i;
  }
}

// ---- coefficient schedules and names --------------------------------------------------------

TEST(Msign, Ns5ScheduleRepeatsTheMuonQuintic) {
  const auto s = ns5_coefficients(3);
  ASSERT_EQ(s.size(), 3u);
  for (const auto& k : s) {
    EXPECT_EQ(k.a, 3.4445);
    EXPECT_EQ(k.b, -4.7750);
    EXPECT_EQ(k.c, 2.0315);
  }
}

TEST(Msign, PolarExpressScheduleRepeatsItsLastQuinticBeyondFive) {
  const auto s = polar_express_coefficients(7);
  ASSERT_EQ(s.size(), 7u);
  EXPECT_EQ(s[0].a, 8.156554524902461);
  EXPECT_EQ(s[1].b, -2.808917465908714);
  EXPECT_EQ(s[3].c, 0.46449024233003106);
  for (int i = 4; i < 7; ++i) {
    EXPECT_EQ(s[i].a, 2.3465413258596377);
    EXPECT_EQ(s[i].b, -1.7097828382687081);
    EXPECT_EQ(s[i].c, 0.42323551169305323);
  }
}

// ---- Newton-Schulz --------------------------------------------------------------------------

TEST(Msign, Ns5SingularValuesFollowPolynomialWide) {
  expect_singular_values_follow(MsignMethod::NewtonSchulz5, 24, 40, 5, ns5_coefficients(5), 1.0,
                                1e-7, 21);
}

TEST(Msign, Ns5SingularValuesFollowPolynomialTall) {
  expect_singular_values_follow(MsignMethod::NewtonSchulz5, 40, 24, 5, ns5_coefficients(5), 1.0,
                                1e-7, 22);
}

TEST(Msign, Ns5WithAnEvenStepCountAlsoEndsInTheOutput) {
  // Buffers are swapped each iteration; 4 steps exercises the other parity of the swap.
  expect_singular_values_follow(MsignMethod::NewtonSchulz5, 24, 40, 4, ns5_coefficients(4), 1.0,
                                1e-7, 23);
}

TEST(Msign, Ns5WithZeroStepsOnlyNormalises) {
  // X0 = G / (||G||_F + 1e-7): every singular value divided by ||G||_F.
  expect_singular_values_follow(MsignMethod::NewtonSchulz5, 24, 40, 0, {}, 1.0, 1e-7, 24);
}

TEST(Msign, PolarExpressSingularValuesFollowItsScheduleWide) {
  expect_singular_values_follow(MsignMethod::PolarExpress, 24, 40, 5,
                                polar_express_coefficients(5), 1.02, 1e-6, 25);
}

TEST(Msign, PolarExpressSingularValuesFollowItsScheduleTall) {
  expect_singular_values_follow(MsignMethod::PolarExpress, 40, 24, 6,
                                polar_express_coefficients(6), 1.02, 1e-6, 26);
}

TEST(Msign, Ns5KeepsTheSingularVectorsOfTheSvdPolarFactor) {
  // ns5(G) = U f(S) V^T and Q = U V^T, so ns5 Q^T = U f(S) U^T (wide) and Q^T ns5 = V f(S) V^T
  // (tall) are symmetric with eigenvalues f(sigma). The quintic does not converge to 1: it
  // leaves them in roughly [0.7, 1.2], so [0.6, 1.25] is the loose sense of "close to Q".
  for (auto [rows, cols] : {std::pair{24, 40}, std::pair{40, 24}}) {
    const auto g = random_matrix(rows, cols, 27);
    const auto x = run_msign(MsignMethod::NewtonSchulz5, g, rows, cols, 5);
    const auto q = polar_factor(g, rows, cols);
    const bool tall = rows > cols;
    const int s = std::min(rows, cols), inner = std::max(rows, cols);
    std::vector<double> h(static_cast<std::size_t>(s) * s, 0.0);
    for (int i = 0; i < s; ++i)
      for (int j = 0; j < s; ++j)
        for (int p = 0; p < inner; ++p)
          h[i * s + j] += tall ? q[p * cols + i] * x[p * cols + j]
                               : x[i * cols + p] * q[j * cols + p];
    for (int i = 0; i < s; ++i)
      for (int j = 0; j < i; ++j) EXPECT_NEAR(h[i * s + j], h[j * s + i], 1e-4) << i << "," << j;
    std::vector<double> eig(s);
    ASSERT_EQ(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', s, h.data(), s, eig.data()), 0);
    EXPECT_GE(eig.front(), 0.6) << rows << "x" << cols;
    EXPECT_LE(eig.back(), 1.25) << rows << "x" << cols;
  }
}

// ---- SVD ------------------------------------------------------------------------------------

double max_abs_deviation_from_identity(const std::vector<double>& gram, int s) {
  double worst = 0.0;
  for (int i = 0; i < s; ++i)
    for (int j = 0; j < s; ++j) worst = std::max(worst, std::abs(gram[i * s + j] - (i == j)));
  return worst;
}

TEST(Msign, SvdOfATallMatrixHasOrthonormalColumns) {
  // 30 x 17: Q^T Q = I (17 x 17).
  const auto q = run_msign(MsignMethod::Svd, random_matrix(30, 17, 31), 30, 17, 0);
  EXPECT_LT(max_abs_deviation_from_identity(small_gram(q, 30, 17), 17), 1e-5);
}

TEST(Msign, SvdOfAWideMatrixHasOrthonormalRows) {
  // 17 x 30: Q Q^T = I (17 x 17).
  const auto q = run_msign(MsignMethod::Svd, random_matrix(17, 30, 32), 17, 30, 0);
  EXPECT_LT(max_abs_deviation_from_identity(small_gram(q, 17, 30), 17), 1e-5);
}

TEST(Msign, SvdEqualsUVTransposeFromLapack) {
  for (auto [rows, cols] : {std::pair{30, 17}, std::pair{17, 30}}) {
    const auto g = random_matrix(rows, cols, 33);
    const auto q = run_msign(MsignMethod::Svd, g, rows, cols, 0);
    const auto expected = polar_factor(g, rows, cols);
    for (std::size_t i = 0; i < q.size(); ++i) {
      ASSERT_NEAR(q[i], expected[i], 1e-5) << rows << "x" << cols << ", element " << i;
    }
  }
}

TEST(Msign, SvdOfARankOneMatrixIsTheNormalisedOuterProduct) {
  // G = u v^T has one singular value |u| |v|; msign(G) = u v^T / (|u| |v|), with the other
  // (zero) singular values mapped to 0 rather than to arbitrary unit directions.
  const int rows = 5, cols = 7;
  const auto u = random_matrix(rows, 1, 34), v = random_matrix(1, cols, 35);
  std::vector<float> g(rows * cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) g[i * cols + j] = u[i] * v[j];
  const double norm = frobenius(u) * frobenius(v);
  const auto q = run_msign(MsignMethod::Svd, g, rows, cols, 0);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j)
      EXPECT_NEAR(q[i * cols + j], u[i] * v[j] / norm, 1e-6) << i << "," << j;
}

TEST(Msign, SvdRejectsNaNWithTheLapackInfoCode) {
  auto g = random_matrix(4, 3, 36);
  g[5] = std::nanf("");
  // LAPACKE's NaN check reports the matrix argument as illegal: a negative info.
  try {
    run_msign(MsignMethod::Svd, g, 4, 3, 0);
    FAIL() << "msign_svd accepted a NaN";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("info = -"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace skillrun
