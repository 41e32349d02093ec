// The icl_linreg iteration in fp32 on every backend present against the CPU backend in fp64:
// the same 30 iterations of GD, Muon (ns5) and SpecGD (svd) give the same iterate up to fp32
// rounding. On the CPU this checks the float path against the double one; on a GPU it checks the
// CUDA backend's gemm/update/msign under the icl loop. GPU cases skip without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "backend/cpu/cpu_backend.h"
#include "backends_under_test.h"
#include "config/experiment.h"
#include "train/icl_trainer.h"

namespace skillrun::conformance {
namespace {

class IclOnBackends : public ::testing::TestWithParam<std::string> {};

const BackendUnderTest& find(const std::string& name) {
  for (const auto& b : backends_under_test())
    if (b.name == name) return b;
  throw std::invalid_argument(name);
}

ExperimentConfig config(const std::string& optimizer, double lr) {
  nlohmann::json j = {
      {"seed", 5},
      {"task", {{"type", "icl_linreg"}, {"d", 24}, {"sigma_x", {{"kappa", 10}}}, {"sigma_w", {{"kappa", 10}}}}},
      {"optimizer", {{"type", optimizer}, {"lr", lr}}},
  };
  return parse_experiment(j);
}

TEST_P(IclOnBackends, Fp32IterationsTrackTheFp64Reference) {
  const BackendUnderTest& under_test = find(GetParam());
  if (const std::string why = under_test.unavailable(); !why.empty()) GTEST_SKIP() << why;
  spdlog::set_level(spdlog::level::warn);
  // Per-iteration agreement bounds: GD contracts errors (1e-4 relative covers fp32 rounding and
  // the reduced-precision gemms' 2e-2 worst case shrinks it further per step); the sign-like
  // updates keep the relative error of their direction, so Muon/SpecGD get the backend's msign
  // tolerance times the number of iterations as a bound on the iterate's normalised error.
  struct Case {
    std::string optimizer;
    double lr;
    double bound;
  };
  const bool fp32 = under_test.gemm_tolerance <= 1e-5;
  const std::vector<Case> cases = {
      {"gd", 1.0, fp32 ? 1e-4 : 5e-2},
      {"muon", 0.05, fp32 ? 1e-3 : 30 * under_test.msign_tolerance},
      {"specgd", 0.05, fp32 ? 1e-3 : 30 * under_test.msign_tolerance},
  };
  for (const Case& k : cases) {
    const ExperimentConfig c = config(k.optimizer, k.lr);
    CpuBackend reference_backend;
    IclTrainer<double> reference(reference_backend, c);
    const auto backend = under_test.make();
    IclTrainer<float> trainer(*backend, c);
    for (int t = 0; t < 30; ++t) {
      reference.step(t);
      trainer.step(t);
    }
    const HostMatrix want = reference.iterate(), got = trainer.iterate();
    double diff = 0.0, norm = 0.0;
    for (std::size_t i = 0; i < want.a.size(); ++i) {
      diff += (got.a[i] - want.a[i]) * (got.a[i] - want.a[i]);
      norm += want.a[i] * want.a[i];
    }
    ASSERT_GT(norm, 1.0) << "the iterate moved away from Q_0 = 0";
    EXPECT_LE(std::sqrt(diff / norm), k.bound) << k.optimizer;
    char error[32];
    std::snprintf(error, sizeof error, "%.3g", std::sqrt(diff / norm));
    RecordProperty(k.optimizer + "_normalised_error", error);
    EXPECT_NEAR(trainer.loss(), reference.loss(), k.bound * reference.loss() * 10 + 1e-6) << k.optimizer;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, IclOnBackends, ::testing::ValuesIn(backend_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace skillrun::conformance
