// The spectra path (train/spectra.h: the Gram on the backend, eigenvalues on the host) on every
// backend present against the CPU backend, on matrices of known singular values, wide and tall.
// It has no kernels of its own (gemm, copy, axpby, download), so the emulated CUDA runtime has
// nothing more to run; GPU cases skip without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backends_under_test.h"
#include "train/spectra.h"

#include "support/known_spectrum.h"

namespace skillrun::conformance {
namespace {

class SpectraOnBackends : public ::testing::TestWithParam<std::string> {};

std::vector<double> spectrum_on(Backend& backend, const std::vector<float>& x, int rows, int cols) {
  Buffer<float> X(backend, x.size()), gram(backend, static_cast<std::size_t>(std::min(rows, cols)) * std::min(rows, cols));
  X.upload(x);
  return singular_values(backend, X.data(), rows, cols, gram.data());
}

TEST_P(SpectraOnBackends, SingularValuesAndSummariesMatchTheCpu) {
  const BackendUnderTest* under_test = nullptr;
  for (const auto& b : backends_under_test())
    if (b.name == GetParam()) under_test = &b;
  ASSERT_NE(under_test, nullptr);
  if (const std::string why = under_test->unavailable(); !why.empty()) GTEST_SKIP() << why;
  std::unique_ptr<Backend> backend = under_test->make();
  CpuBackend cpu;
  std::vector<double> sigma;
  for (int i = 0; i < 40; ++i) sigma.push_back(std::pow(0.9, i));  // 1 down to 0.016
  for (const auto& [rows, cols] : {std::pair{40, 96}, std::pair{96, 40}}) {
    const std::vector<float> x = skillrun_test::with_singular_values(rows, cols, sigma, 11);
    const std::vector<double> want = spectrum_on(cpu, x, rows, cols), got = spectrum_on(*backend, x, rows, cols);
    ASSERT_EQ(got.size(), want.size());
    // The Gram's error (gemm_tolerance of sigma_max^2) moves sigma_i by at most that over 2 sigma_i.
    const double tol = 10 * under_test->gemm_tolerance;
    for (std::size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(got[i], want[i], tol / (2 * want[i]) + 1e-6) << rows << "x" << cols << " sigma_" << i;
    const SpectrumStats a = spectrum_stats(want, rows, cols), b = spectrum_stats(got, rows, cols);
    EXPECT_NEAR(b.stable_rank, a.stable_rank, 20 * tol * a.stable_rank);
    EXPECT_NEAR(b.effective_rank, a.effective_rank, 20 * tol * a.effective_rank);
    EXPECT_NEAR(b.spectral_entropy, a.spectral_entropy, 20 * tol);
    EXPECT_NEAR(want[0], 1.0, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, SpectraOnBackends, ::testing::ValuesIn(backend_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace skillrun::conformance
