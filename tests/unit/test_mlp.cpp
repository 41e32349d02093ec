// MLP gradients against central finite differences of an independent double-precision
// forward pass, and the PyTorch-style initialisation bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "model/mlp.h"

namespace skillrun {
namespace {

// Mean cross-entropy (nats) of the MLP with parameters `params` (weight, bias per layer,
// weights row-major fan_out x fan_in), computed in double with plain loops.
double reference_loss(const std::vector<std::vector<double>>& params, const std::vector<int>& dims,
                      const std::vector<double>& x, const std::vector<int32_t>& labels) {
  const int rows = static_cast<int>(labels.size());
  const int depth = static_cast<int>(dims.size()) - 1;
  double total = 0;
  for (int r = 0; r < rows; ++r) {
    std::vector<double> a(x.begin() + r * dims[0], x.begin() + (r + 1) * dims[0]);
    for (int l = 0; l < depth; ++l) {
      std::vector<double> z(dims[l + 1]);
      for (int o = 0; o < dims[l + 1]; ++o) {
        z[o] = params[2 * l + 1][o];
        for (int i = 0; i < dims[l]; ++i) z[o] += params[2 * l][o * dims[l] + i] * a[i];
        if (l + 1 < depth) z[o] = std::max(z[o], 0.0);
      }
      a = z;
    }
    double mx = a[0];
    for (double v : a) mx = std::max(mx, v);
    double lse = 0;
    for (double v : a) lse += std::exp(v - mx);
    total += mx + std::log(lse) - a[labels[r]];
  }
  return total / rows;
}

TEST(Mlp, GradientsMatchCentralFiniteDifferencesInDouble) {
  CpuBackend backend;
  // depth 3: input 6 -> 5 -> 5 -> 3 classes, so the test crosses two ReLUs.
  const int rows = 7;
  Mlp model(backend, 6, 5, 3, 3, rows);
  model.initialize(2024);

  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> x(rows * 6);
  for (float& v : x) v = normal(rng);
  std::vector<int32_t> labels = {0, 2, 1, 1, 0, 2, 2};

  Buffer<float> xd(backend, x.size()), loss(backend, rows), correct(backend, rows), dlogits(backend, rows * 3);
  Buffer<int32_t> yd(backend, rows);
  xd.upload(x);
  yd.upload(labels);
  const float* logits = model.forward(xd.data(), rows);
  backend.cross_entropy(logits, yd.data(), rows, 3, loss.data(), correct.data(), dlogits.data(), 1.0f / rows);
  model.backward(xd.data(), dlogits.data(), rows);

  std::vector<std::vector<double>> params;
  std::vector<int> dims = {6};
  for (const Parameter& p : model.parameters()) {
    const auto v = p.value.download();
    params.emplace_back(v.begin(), v.end());
    if (p.is_matrix) dims.push_back(p.rows);
  }
  const std::vector<double> xs(x.begin(), x.end());
  const double h = 1e-6;
  for (std::size_t pi = 0; pi < params.size(); ++pi) {
    const auto grad = model.parameters()[pi].grad.download();
    double err2 = 0, ref2 = 0;
    for (std::size_t e = 0; e < params[pi].size(); ++e) {
      const double saved = params[pi][e];
      params[pi][e] = saved + h;
      const double up = reference_loss(params, dims, xs, labels);
      params[pi][e] = saved - h;
      const double down = reference_loss(params, dims, xs, labels);
      params[pi][e] = saved;
      const double fd = (up - down) / (2 * h);
      err2 += (grad[e] - fd) * (grad[e] - fd);
      ref2 += fd * fd;
    }
    ASSERT_GT(ref2, 1e-12) << model.parameters()[pi].name << ": gradient is zero, test would be vacuous";
    EXPECT_LT(std::sqrt(err2 / ref2), 1e-4) << model.parameters()[pi].name;
  }
}

TEST(Mlp, InitialisationIsPytorchUniformAndSeeded) {
  CpuBackend backend;
  Mlp a(backend, 105, 250, 2, 2, 1), b(backend, 105, 250, 2, 2, 1);
  a.initialize(3);
  b.initialize(3);
  const auto w = a.parameters()[0].value.download();
  const double bound = 1.0 / std::sqrt(105.0);
  double mean = 0, sq = 0;
  for (float v : w) {
    ASSERT_LE(std::abs(v), bound);
    mean += v;
    sq += v * v;
  }
  mean /= w.size();
  // U(-b, b) has variance b^2 / 3.
  EXPECT_NEAR(mean, 0.0, 0.01 * bound);
  EXPECT_NEAR(sq / w.size(), bound * bound / 3, 0.02 * bound * bound);
  EXPECT_EQ(w, b.parameters()[0].value.download());
  b.initialize(4);
  EXPECT_NE(w, b.parameters()[0].value.download());
  // The output head's bound uses its own fan_in (width 250).
  for (float v : a.parameters()[2].value.download()) ASSERT_LE(std::abs(v), 1.0 / std::sqrt(250.0));
}

TEST(Mlp, ParameterRolesFollowTheLayers) {
  CpuBackend backend;
  Mlp m(backend, 10, 8, 3, 2, 1);
  const auto& p = m.parameters();
  ASSERT_EQ(p.size(), 6u);
  EXPECT_TRUE(p[0].is_hidden && p[0].is_matrix);
  EXPECT_FALSE(p[1].is_matrix);
  EXPECT_TRUE(p[2].is_hidden);
  EXPECT_TRUE(p[4].is_matrix && !p[4].is_hidden);  // output head
  EXPECT_EQ(m.parameter_count(), 10u * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2);
}

}  // namespace
}  // namespace skillrun

namespace skillrun {
namespace {

// parameters_finite: true after initialisation; false once any one element of any tensor of
// that run is NaN or Inf (the last element of the last tensor too); other runs unaffected.
TEST(Mlp, ParametersFiniteFindsOneNonFiniteElementOfItsRun) {
  CpuBackend backend;
  Mlp model(backend, 6, 5, 3, 3, 4, /*runs=*/2);
  model.initialize(0, 7);
  model.initialize(1, 8);
  EXPECT_TRUE(model.parameters_finite(0));
  EXPECT_TRUE(model.parameters_finite(1));
  for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
    for (std::size_t t : {std::size_t{0}, model.parameters(1).size() - 1}) {
      Parameter& p = model.parameters(1)[t];
      std::vector<float> v = p.value.download();
      const float keep = v.back();
      v.back() = bad;
      p.value.upload(v);
      EXPECT_FALSE(model.parameters_finite(1)) << p.name << " = " << bad;
      EXPECT_TRUE(model.parameters_finite(0)) << "run 0 is not run 1";
      v.back() = keep;
      p.value.upload(v);
      EXPECT_TRUE(model.parameters_finite(1));
    }
  }
}

}  // namespace
}  // namespace skillrun
