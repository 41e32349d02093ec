// The fp64 overloads of the backend ops (precision fp64, icl_linreg) on the CPU backend, each
// against a plain double loop written here from the op's documented semantics, on random
// non-zero data; and the registry's fp64 rules.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "optim/msign.h"
#include "optim/optimizer.h"

namespace skillrun {
namespace {

std::vector<double> random_vector(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

Buffer<double> on(Backend& backend, const std::vector<double>& host) {
  Buffer<double> b(backend, host.size());
  b.upload(host);
  return b;
}

double max_abs(const std::vector<double>& x, const std::vector<double>& y) {
  double worst = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

TEST(Fp64Ops, GemmInEveryTransposeForm) {
  CpuBackend backend;
  const int m = 70, n = 9, k = 130;  // m > 64: more than one row block
  for (Trans ta : {Trans::No, Trans::Yes})
    for (Trans tb : {Trans::No, Trans::Yes}) {
      const auto a = random_vector(static_cast<std::size_t>(m) * k, 1), b = random_vector(static_cast<std::size_t>(k) * n, 2);
      const auto c0 = random_vector(static_cast<std::size_t>(m) * n, 3);
      const int lda = ta == Trans::No ? k : m, ldb = tb == Trans::No ? n : k;
      auto A = on(backend, a), B = on(backend, b), C = on(backend, c0);
      backend.gemm(ta, tb, m, n, k, 1.5, A.data(), lda, B.data(), ldb, -0.5, C.data(), n);
      std::vector<double> ref(c0.size());
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          long double acc = 0;
          for (int p = 0; p < k; ++p) {
            const double aip = ta == Trans::No ? a[static_cast<std::size_t>(i) * lda + p] : a[static_cast<std::size_t>(p) * lda + i];
            const double bpj = tb == Trans::No ? b[static_cast<std::size_t>(p) * ldb + j] : b[static_cast<std::size_t>(j) * ldb + p];
            acc += static_cast<long double>(aip) * bpj;
          }
          ref[static_cast<std::size_t>(i) * n + j] = static_cast<double>(1.5L * acc - 0.5L * c0[static_cast<std::size_t>(i) * n + j]);
        }
      EXPECT_LT(max_abs(C.download(), ref), 1e-12);
    }
}

TEST(Fp64Ops, ElementwiseAndReduction) {
  CpuBackend backend;
  const std::size_t n = 40000;  // above the parallel threshold
  const auto x = random_vector(n, 4), y0 = random_vector(n, 5);
  auto X = on(backend, x), Y = on(backend, y0);
  backend.axpby(Y.data(), X.data(), n, 0.25, -2.0);
  std::vector<double> ref(n);
  for (std::size_t i = 0; i < n; ++i) ref[i] = 0.25 * x[i] - 2.0 * y0[i];
  EXPECT_LT(max_abs(Y.download(), ref), 1e-15);
  long double ss = 0;
  for (double v : x) ss += static_cast<long double>(v) * v;
  EXPECT_NEAR(backend.sum_squares(X.data(), n), static_cast<double>(ss), 1e-11 * static_cast<double>(ss));
  backend.fill(Y.data(), n, 3.25);
  EXPECT_EQ(Y.download(), std::vector<double>(n, 3.25));
}

TEST(Fp64Ops, OptimizerUpdatesFollowTheirFormulas) {
  CpuBackend backend;
  const std::size_t n = 257;
  const auto w0 = random_vector(n, 6), g = random_vector(n, 7), m0 = random_vector(n, 8);
  auto v0 = random_vector(n, 9);
  for (double& v : v0) v = v * v;  // a second moment is non-negative
  const double lr = 0.03, mu = 0.9, wd = 0.01;
  {  // SGD, momentum, not Nesterov
    auto W = on(backend, w0), G = on(backend, g), M = on(backend, m0);
    backend.sgd_update(W.data(), G.data(), M.data(), n, lr, mu, false, wd);
    std::vector<double> w = w0, m = m0;
    for (std::size_t i = 0; i < n; ++i) {
      m[i] = mu * m[i] + g[i] + wd * w[i];
      w[i] -= lr * m[i];
    }
    EXPECT_LT(max_abs(W.download(), w), 1e-15);
    EXPECT_LT(max_abs(M.download(), m), 1e-15);
  }
  {  // NMD
    auto W = on(backend, w0), G = on(backend, g), M = on(backend, m0);
    backend.nmd_update(W.data(), G.data(), M.data(), n, lr, mu, wd);
    std::vector<double> w = w0, m = m0;
    double ss = 0;
    for (std::size_t i = 0; i < n; ++i) {
      m[i] = mu * m[i] + g[i];
      ss += m[i] * m[i];
    }
    for (std::size_t i = 0; i < n; ++i) w[i] = w[i] * (1 - lr * wd) - lr / std::sqrt(ss) * m[i];
    EXPECT_LT(max_abs(W.download(), w), 1e-14);
  }
  {  // AdamW at t = 3
    auto W = on(backend, w0), G = on(backend, g), M = on(backend, m0), V = on(backend, v0);
    backend.adam_update(W.data(), G.data(), M.data(), V.data(), n, lr, 0.9, 0.999, 1e-8, wd, true, 3);
    std::vector<double> w = w0;
    for (std::size_t i = 0; i < n; ++i) {
      const double m = 0.9 * m0[i] + 0.1 * g[i], v = 0.999 * v0[i] + 0.001 * g[i] * g[i];
      const double mhat = m / (1 - std::pow(0.9, 3)), vhat = v / (1 - std::pow(0.999, 3));
      w[i] = w[i] * (1 - lr * wd) - lr * mhat / (std::sqrt(vhat) + 1e-8);
    }
    EXPECT_LT(max_abs(W.download(), w), 1e-13);
  }
  {  // SignGD with momentum, and Muon's Nesterov momentum
    auto W = on(backend, w0), G = on(backend, g), M = on(backend, m0), Out = on(backend, w0);
    backend.signgd_update(W.data(), G.data(), M.data(), n, lr, mu, wd);
    std::vector<double> w = w0;
    for (std::size_t i = 0; i < n; ++i) {
      const double m = mu * m0[i] + g[i];
      w[i] = w[i] * (1 - lr * wd) - lr * ((m > 0) - (m < 0));
    }
    EXPECT_LT(max_abs(W.download(), w), 1e-15);
    auto M2 = on(backend, m0);
    backend.momentum_accumulate(M2.data(), G.data(), Out.data(), n, mu, true);
    std::vector<double> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = g[i] + mu * (mu * m0[i] + g[i]);
    EXPECT_LT(max_abs(Out.download(), out), 1e-15);
  }
}

TEST(Fp64Ops, PlainSgdAndSignGdWithoutMomentum) {
  CpuBackend backend;
  const std::size_t n = 100;
  const auto w0 = random_vector(n, 16), g = random_vector(n, 17);
  auto W = on(backend, w0), G = on(backend, g);
  backend.sgd_update(W.data(), G.data(), nullptr, n, 0.1, 0.0, false, 0.0);  // gd: no momentum buffer
  std::vector<double> w = w0;
  for (std::size_t i = 0; i < n; ++i) w[i] -= 0.1 * g[i];
  EXPECT_LT(max_abs(W.download(), w), 1e-16);
  auto W2 = on(backend, w0), M = on(backend, random_vector(n, 18));
  backend.signgd_update(W2.data(), G.data(), M.data(), n, 0.1, 0.0, 0.0);
  for (std::size_t i = 0; i < n; ++i) w[i] = w0[i] - 0.1 * ((g[i] > 0) - (g[i] < 0));
  EXPECT_EQ(W2.download(), w);
  EXPECT_EQ(M.download(), g) << "m = g, kept for checkpoints";
}

// The lr scale of a schedule reaches every rule: a step with (lr, scale 0.25) is a step with
// (lr / 4, scale 1), bit for bit.
TEST(Fp64Ops, LrScaleReachesEveryUpdateRule) {
  const int rows = 6, cols = 5;
  const std::size_t n = rows * cols;
  const auto w0 = random_vector(n, 20), g = random_vector(n, 21);
  for (OptimizerType type : {OptimizerType::Sgd, OptimizerType::Nmd, OptimizerType::Adam, OptimizerType::AdamW,
                             OptimizerType::SignGd, OptimizerType::Muon}) {
    OptimizerConfig scaled;
    scaled.type = type;
    scaled.lr = 0.4;
    scaled.momentum = 0.5;
    scaled.msign = MsignMethod::Svd;
    OptimizerConfig plain = scaled;
    plain.lr = 0.1;
    CpuBackend backend;
    auto Wa = on(backend, w0), Wb = on(backend, w0), G = on(backend, g);
    // Each rule's state and Muon's scratch, per side.
    std::vector<Buffer<double>> state;
    for (int i = 0; i < 8; ++i) {
      state.emplace_back(backend, n);
      backend.fill(state.back().data(), n, 0.0);
    }
    // Rule `c` at lr scale `scale` on w, with state and scratch from state[first...].
    const auto step = [&](const OptimizerConfig& c, double scale, Buffer<double>& w, int first, int t) {
      const RunUpdateOf<double> u = run_update<double>(c, scale, 0, 0, rows, cols);
      update_tensor(backend, c, UpdateArgs(UpdateKind::Sgd, w.data(), G.data(), n, u)
                                    .state(state[first].data(), 0, state[first + 1].data()),
                    MuonScratch<double>{state[first + 2].data(), state[first + 3].data(), 0, rows, cols}, t);
    };
    for (int t = 1; t <= 3; ++t) {
      step(scaled, 0.25, Wa, 0, t);
      step(plain, 1.0, Wb, 4, t);
    }
    const auto wa = Wa.download();
    EXPECT_EQ(wa, Wb.download()) << name(type);
    EXPECT_GT(max_abs(wa, w0), 1e-3) << name(type) << ": the rule did not move w";
  }
}

TEST(Fp64Ops, MsignInDoubleIsOrthogonalAndAgreesWithFloat) {
  CpuBackend backend;
  const int rows = 12, cols = 30;
  const auto gd = random_vector(static_cast<std::size_t>(rows) * cols, 10);
  auto G = on(backend, gd);
  Buffer<double> exact(backend, gd.size()), ns(backend, gd.size());
  msign(backend, MsignMethod::Svd, G.data(), exact.data(), rows, cols, 0);
  msign(backend, MsignMethod::PolarExpress, G.data(), ns.data(), rows, cols, 8);
  const auto u = exact.download();
  // U V^T of a wide full-rank matrix has orthonormal rows.
  double worst = 0;
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < rows; ++j) {
      double dot = 0;
      for (int c = 0; c < cols; ++c) dot += u[static_cast<std::size_t>(i) * cols + c] * u[static_cast<std::size_t>(j) * cols + c];
      worst = std::max(worst, std::abs(dot - (i == j ? 1.0 : 0.0)));
    }
  EXPECT_LT(worst, 1e-13);
  EXPECT_LT(max_abs(ns.download(), u), 0.05);  // 8 Polar Express steps approximate msign well
  // The float path on the same data agrees to float accuracy.
  std::vector<float> gf(gd.begin(), gd.end());
  Buffer<float> Gf(backend, gf.size()), outf(backend, gf.size());
  Gf.upload(gf);
  msign(backend, MsignMethod::Svd, Gf.data(), outf.data(), rows, cols, 0);
  const auto f = outf.download();
  EXPECT_LT(max_abs(std::vector<double>(f.begin(), f.end()), u), 1e-5);
}

TEST(Fp64Registry, CpuRunsFp64AndCudaRefusesIt) {
  const auto cpu = make_backend(DeviceChoice::Cpu, Precision::Fp64);
  std::vector<double> x = {1.5, -2.0};
  EXPECT_NO_THROW(cpu->fill(x.data(), x.size(), 0.25));
  EXPECT_EQ(x, (std::vector<double>{0.25, 0.25}));
  EXPECT_THROW(make_backend(DeviceChoice::Cuda, Precision::Fp64), UsageError);
  EXPECT_TRUE(make_backend(DeviceChoice::Auto, Precision::Fp64)->is_cpu());
}

}  // namespace
}  // namespace skillrun
