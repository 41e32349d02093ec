// Optimizer-level behaviour: which rule each parameter gets, and Muon's full step (momentum,
// msign, sqrt(m/n) scale) worked by hand on matrices whose polar factor is known exactly.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "optim/optimizer.h"
#include "optim/pack_optimizer.h"

namespace skillrun {
namespace {

Parameter make_param(Backend& backend, std::string name, int rows, int cols, bool matrix, bool hidden,
                     std::vector<float> value) {
  Parameter p;
  p.name = std::move(name);
  p.rows = rows;
  p.cols = cols;
  p.is_matrix = matrix;
  p.is_hidden = hidden;
  p.fan_in = cols;
  p.value = Buffer<float>(backend, p.size());
  p.grad = Buffer<float>(backend, p.size());
  p.value.upload(value);
  return p;
}

OptimizerConfig muon_config(MsignMethod msign) {
  OptimizerConfig c;
  c.type = OptimizerType::Muon;
  c.lr = 0.1;
  c.momentum = 0.95;
  c.msign = msign;
  c.other = std::make_shared<OptimizerConfig>();
  c.other->type = OptimizerType::Adam;
  c.other->lr = 0.001;
  return c;
}

TEST(Muon, TwoStepsByHandWithExactPolarFactor) {
  CpuBackend backend;
  std::vector<Parameter> params;
  params.push_back(make_param(backend, "w", 2, 3, true, true, {1, 2, 3, 4, 5, 6}));
  PackOptimizer opt(backend, params, muon_config(MsignMethod::Svd));
  // Step 1: G1 = [[3,0,0],[0,4,0]] -> M = G1, msign(M) = [[1,0,0],[0,1,0]];
  // scale sqrt(m/n) = sqrt(2/3) = 0.8164966, so W[0][0] = 1 - 0.1 * 0.8164966 = 0.9183503
  // and W[1][1] = 5 - 0.0816497 = 4.9183503.
  params[0].grad.upload(std::vector<float>{3, 0, 0, 0, 4, 0});
  opt.step();
  auto w = params[0].value.download();
  EXPECT_NEAR(w[0], 0.9183503, 1e-5);
  EXPECT_NEAR(w[4], 4.9183503, 1e-5);
  EXPECT_NEAR(w[1], 2.0, 1e-6);
  EXPECT_NEAR(w[5], 6.0, 1e-6);
  // Step 2: G2 = [[-2,0,0],[0,-1,0]] alone would flip both signs, but the momentum
  // M = 0.95 G1 + G2 = [[0.85,0,0],[0,2.8,0]] keeps them: msign(M) = [[1,0,0],[0,1,0]] again.
  params[0].grad.upload(std::vector<float>{-2, 0, 0, 0, -1, 0});
  opt.step();
  w = params[0].value.download();
  EXPECT_NEAR(w[0], 0.8367006, 1e-5);
  EXPECT_NEAR(w[4], 4.8367006, 1e-5);
}

TEST(Muon, HiddenMatricesOnlyByDefaultOthersGetAdam) {
  CpuBackend backend;
  std::vector<Parameter> params;
  params.push_back(make_param(backend, "hidden", 2, 3, true, true, {0.5f, -0.5f, 0.25f, 1, 2, 3}));
  params.push_back(make_param(backend, "bias", 1, 2, false, false, {0.5f, -0.5f}));
  params.push_back(make_param(backend, "head", 1, 2, true, false, {1.0f, 2.0f}));
  PackOptimizer opt(backend, params, muon_config(MsignMethod::NewtonSchulz5));
  const auto lines = opt.optimizer(0).describe();
  EXPECT_NE(lines[0].find("muon"), std::string::npos);
  EXPECT_NE(lines[1].find("adam"), std::string::npos);
  EXPECT_NE(lines[2].find("adam"), std::string::npos);
  // First Adam step moves by lr * g/|g| = 0.001 against the gradient's sign (eps negligible).
  params[1].grad.upload(std::vector<float>{2.0f, -0.1f});
  params[2].grad.upload(std::vector<float>{-3.0f, 0.5f});
  params[0].grad.upload(std::vector<float>{1, 0, 0, 0, 1, 0});
  opt.step();
  const auto b = params[1].value.download(), h = params[2].value.download();
  EXPECT_NEAR(b[0], 0.499, 1e-6);
  EXPECT_NEAR(b[1], -0.499, 1e-6);
  EXPECT_NEAR(h[0], 1.001, 1e-6);
  EXPECT_NEAR(h[1], 1.999, 1e-6);
}

TEST(Muon, AllWeightsPutsTheHeadUnderMuon) {
  CpuBackend backend;
  std::vector<Parameter> params;
  params.push_back(make_param(backend, "head", 1, 2, true, false, {1.0f, 2.0f}));
  auto c = muon_config(MsignMethod::Svd);
  c.muon_params = MuonParams::AllWeights;
  PackOptimizer opt(backend, params, c);
  EXPECT_NE(opt.optimizer(0).describe()[0].find("muon"), std::string::npos);
  // A 1x2 gradient (3, 4) has polar factor (0.6, 0.8); scale sqrt(1/2) = 0.7071068.
  params[0].grad.upload(std::vector<float>{3, 4});
  opt.step();
  const auto h = params[0].value.download();
  EXPECT_NEAR(h[0], 1.0 - 0.1 * 0.7071068 * 0.6, 1e-5);
  EXPECT_NEAR(h[1], 2.0 - 0.1 * 0.7071068 * 0.8, 1e-5);
}

TEST(Muon, ScaleConventions) {
  // W in R^{m x n}, m = 250 rows (fan_out), n = 105 cols (fan_in).
  EXPECT_NEAR(muon_scale(MuonScale::SqrtRatio, 250, 105), std::sqrt(250.0 / 105.0), 1e-12);
  EXPECT_NEAR(muon_scale(MuonScale::Keller, 250, 105), std::sqrt(250.0 / 105.0), 1e-12);
  EXPECT_NEAR(muon_scale(MuonScale::Keller, 105, 250), 1.0, 1e-12);
  EXPECT_NEAR(muon_scale(MuonScale::Moonshot, 105, 250), 0.2 * std::sqrt(250.0), 1e-12);
  EXPECT_EQ(muon_scale(MuonScale::None, 7, 3), 1.0);
}

TEST(Nmd, StepLengthIsLrWhateverTheGradientScale) {
  CpuBackend backend;
  for (float g_scale : {1e-3f, 1.0f, 1e3f}) {
    std::vector<Parameter> params;
    params.push_back(make_param(backend, "w", 1, 2, true, true, {1.0f, 1.0f}));
    OptimizerConfig c;
    c.type = OptimizerType::Nmd;
    c.lr = 0.01;
    c.momentum = 0.9;
    PackOptimizer opt(backend, params, c);
    // g = s (3, 4): M / ||M|| = (0.6, 0.8) for any s, so W = (1 - 0.006, 1 - 0.008).
    params[0].grad.upload(std::vector<float>{3 * g_scale, 4 * g_scale});
    opt.step();
    const auto w = params[0].value.download();
    EXPECT_NEAR(w[0], 0.994, 1e-6) << g_scale;
    EXPECT_NEAR(w[1], 0.992, 1e-6) << g_scale;
  }
}

}  // namespace
}  // namespace skillrun
