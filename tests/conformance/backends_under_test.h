// The backends the conformance suite runs on, each with its tolerances against the CPU backend.
// Adding a backend to the suite is adding one entry to backends_under_test(). A backend that
// is not present on this machine (no GPU, built without CUDA) stays in the list and its cases
// skip with the reason, so the test names are the same on every machine.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace skillrun::conformance {

struct BackendUnderTest {
  std::string name;                                    // gtest parameter name: cpu, cuda, cuda_tf32, ...
  std::function<std::unique_ptr<Backend>()> make;
  std::function<std::string()> unavailable;            // empty string: present
  double gemm_tolerance;   // normalised error of a matrix product vs the CPU (fp32 1e-5, tf32 1e-3, bf16 1e-2)
  double msign_tolerance;  // normalised error of Newton-Schulz msign vs the CPU (see the test file)
};

// fp32 elementwise, reduction and optimizer ops: every backend computes them in fp32.
constexpr double kFp32Tolerance = 1e-5;

inline std::string cuda_unavailable() {
#ifdef SKILLRUN_HAVE_CUDA
  return cuda_backend_available() ? std::string() : std::string("no CUDA device");
#else
  return "no CUDA device (this build has no CUDA backend)";
#endif
}

inline const std::vector<BackendUnderTest>& backends_under_test() {
  static const std::vector<BackendUnderTest> all = {
      {"cpu", [] { return make_backend(DeviceChoice::Cpu); }, [] { return std::string(); }, 1e-5, 5e-4},
      {"cuda", [] { return make_backend(DeviceChoice::Cuda, Precision::Fp32); }, cuda_unavailable, 1e-5, 5e-4},
      {"cuda_tf32", [] { return make_backend(DeviceChoice::Cuda, Precision::Tf32); }, cuda_unavailable, 1e-3, 3e-2},
      {"cuda_bf16", [] { return make_backend(DeviceChoice::Cuda, Precision::Bf16); }, cuda_unavailable, 1e-2, 1.5e-1},
  };
  return all;
}

inline std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const auto& b : backends_under_test()) names.push_back(b.name);
  return names;
}

}  // namespace skillrun::conformance
