// The backends the conformance suite runs on, each with its tolerances against the CPU backend.
// Adding a backend to the suite is adding one entry to backends_under_test(). A backend that
// is not present on this machine (no GPU, built without CUDA) stays in the list and its cases
// skip with the reason, so the test names are the same on every machine.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "support/reference_backend.h"
#ifdef SKILLRUN_HAVE_CUDA
#include "backend/cuda/cuda_factory.h"  // plain C++: cuda_unavailable_reason()
#endif

namespace skillrun::conformance {

// fp32 elementwise, reduction and optimizer ops: every backend computes them in fp32, so two
// backends differ by their own roundings in their own order.
constexpr double kFp32Tolerance = 1e-5;

struct BackendUnderTest {
  std::string name;                                    // gtest parameter name: cpu, cuda, cuda_tf32, ...
  std::function<std::unique_ptr<Backend>()> make;
  std::function<std::string()> unavailable;            // empty string: present
  double gemm_tolerance;   // normalised error of a matrix product vs the CPU (fp32 1e-5, tf32 2e-3, bf16 2e-2)
  double msign_tolerance;  // normalised error of Newton-Schulz msign vs the CPU (see the test file)
  // Relative rounding of a product's operands beyond fp32's (tf32 2^-10, bf16 2^-7, as if
  // truncated): enters the bound on a fused bias gradient (test_linear_layers.cpp).
  double operand_rounding = 0.0;
  // Normalised error of the fp32 elementwise, reduction, cross-entropy, optimizer and SVD ops vs
  // the CPU (test_backend_ops.cpp).
  double fp32_tolerance = kFp32Tolerance;
};

// Why the CUDA cases skip, with the device scan's own reason (no driver, no device, compute
// capability below the build's), so that a skip on a GPU machine is diagnosable from the log.
inline std::string cuda_unavailable() {
#ifdef SKILLRUN_HAVE_CUDA
  if (cuda_backend_available()) return std::string();
  const std::string reason = cuda_unavailable_reason();
  return "no CUDA device" + (reason.empty() ? std::string() : " usable: " + reason);
#else
  return "no CUDA device (this build has no CUDA backend)";
#endif
}

// The CUDA backend with SKILLRUN_CUBLASLT=off: the MLP's layers unfused (gemm + kernels), the
// fallback of the cuBLASLt epilogues that the "cuda" entry uses by default (docs/CUDA.md).
inline std::unique_ptr<Backend> make_cuda_without_cublaslt() {
  const char* previous = std::getenv("SKILLRUN_CUBLASLT");
  const std::optional<std::string> saved = previous != nullptr ? std::optional<std::string>(previous) : std::nullopt;
  ::setenv("SKILLRUN_CUBLASLT", "off", 1);
  const auto restore = [&] {
    if (saved) {
      ::setenv("SKILLRUN_CUBLASLT", saved->c_str(), 1);
    } else {
      ::unsetenv("SKILLRUN_CUBLASLT");
    }
  };
  try {
    std::unique_ptr<Backend> backend = make_backend(DeviceChoice::Cuda, Precision::Fp32);
    restore();
    return backend;
  } catch (...) {
    restore();
    throw;
  }
}

inline const std::vector<BackendUnderTest>& backends_under_test() {
  static const std::vector<BackendUnderTest> all = {
      {"cpu", [] { return make_backend(DeviceChoice::Cpu); }, [] { return std::string(); }, 1e-5, 5e-4},
      // The tests-only reference (support/reference_backend.h: plain loops in double from the
      // documented maths, no BLAS, rounded once on store): every case compares it with the CPU
      // backend, so a wrong CPU op fails on a machine without a GPU too. Bounds on the CPU's
      // fp32 results against (nearly) exact ones, measured maxima in brackets:
      //  - products 1e-5: a k-term fp32 dot product is off by at most ~k 2^-24 of sum |a_i b_i|,
      //    ~sqrt(k) 2^-24 of the result for random signs: 3e-7 at k = 23, ~1e-6 for the layer
      //    cases' k up to 301 [9.6e-8 gemm cases];
      //  - the other fp32 ops 1e-6: each output is a handful of fp32 roundings of exact values
      //    (<= ~4 2^-24 = 2.4e-7 relative), the updates after up to 3 steps a few more; the CPU's
      //    SVD runs in double and rounds once [8.3e-8; Adam over a run table 1.2e-6 while its v
      //    was drawn negative, 7.6e-9 since];
      //  - Newton-Schulz 5e-4: fp32 against exact is the argument of test_backend_ops.cpp (1e-7
      //    rounding amplified by up to prod(a_i) over 5 iterations) [3.0e-6].
      {"reference", [] { return std::unique_ptr<Backend>(new testing::ReferenceBackend); },
       [] { return std::string(); }, 1e-5, 5e-4, 0.0, 1e-6},
      {"cuda", [] { return make_backend(DeviceChoice::Cuda, Precision::Fp32); }, cuda_unavailable, 1e-5, 5e-4},
      // tf32/bf16 gemm bounds: a host emulation of the gemm case (operands rounded to 10/7 mantissa
      // bits, exact accumulation) gives 2.7e-4 / 2.2e-3 with round-to-nearest and 7.1e-4 / 5.6e-3
      // if the tensor cores truncate instead; 2e-3 / 2e-2 keep a ~3x margin over the latter and
      // still catch any layout or operand bug (those give O(1) errors). fp32 stays at 1e-5, which
      // also catches TF32 leaking into fp32 mode (~3e-4). Msign: emulated worst case over the three
      // shapes 1.1e-2 (tf32, polar_express, truncation) and 7.3e-2 (bf16): bounds 3e-2 / 1.5e-1.
      {"cuda_tf32", [] { return make_backend(DeviceChoice::Cuda, Precision::Tf32); }, cuda_unavailable, 2e-3, 3e-2,
       1.0 / 1024},
      {"cuda_bf16", [] { return make_backend(DeviceChoice::Cuda, Precision::Bf16); }, cuda_unavailable, 2e-2, 1.5e-1,
       1.0 / 128},
      {"cuda_unfused", make_cuda_without_cublaslt, cuda_unavailable, 1e-5, 5e-4},
  };
  return all;
}

inline std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const auto& b : backends_under_test()) names.push_back(b.name);
  return names;
}

// ||got - ref|| / ||ref|| where ref is not NaN; NaN in ref must be NaN in got (never written),
// and got must be finite everywhere else. Returns the error (for the bound checks' messages).
inline double expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& ref,
                           double tolerance) {
  EXPECT_EQ(got.size(), ref.size()) << what;
  if (got.size() != ref.size()) return 0.0;
  std::size_t one_sided = 0;
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i]) || !std::isfinite(got[i])) {
      if (!(std::isnan(ref[i]) && std::isnan(got[i]))) ++one_sided;
      continue;
    }
    const double d = static_cast<double>(got[i]) - ref[i];
    diff += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  EXPECT_EQ(one_sided, 0u) << what << ": elements NaN/Inf on one side only (written outside the output, or left "
                                      "unwritten?)";
  const double error = norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  EXPECT_LE(error, tolerance) << what << ": normalised error";
  return error;
}

// The fixture of a conformance case: the backend under test (GetParam() names its entry; the
// case skips with the reason where it is absent) and the CPU backend to compare it with.
class BackendCase : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    for (const BackendUnderTest& b : backends_under_test())
      if (b.name == GetParam()) under_test_ = &b;
    ASSERT_NE(under_test_, nullptr);
    const std::string why = under_test_->unavailable();
    if (!why.empty()) GTEST_SKIP() << why;
    backend_ = under_test_->make();
  }

  const BackendUnderTest* under_test_ = nullptr;
  CpuBackend cpu_;
  std::unique_ptr<Backend> backend_;
};

}  // namespace skillrun::conformance
