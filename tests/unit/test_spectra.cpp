// Spectral diagnostics (train/spectra.h) on matrices with known singular values; the
// norm-matched control (msign: norm_matched) against ns5 and svd on the same momentum; coupled
// weight decay (optimizer.weight_decay_mode) in the one update path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "optim/msign.h"
#include "optim/optimizer.h"
#include "train/spectra.h"

#include "support/known_spectrum.h"

namespace skillrun {
namespace {

using skillrun_test::with_singular_values;

TEST(SpectrumStats, KnownSingularValuesGiveTheDefinitions) {
  const std::vector<double> sigma = {4, 2, 1, 1};
  const SpectrumStats s = spectrum_stats(sigma, 4, 10);
  EXPECT_DOUBLE_EQ(s.sigma_max, 4);
  EXPECT_DOUBLE_EQ(s.stable_rank, (16.0 + 4 + 1 + 1) / 16.0);
  // q = sigma / sum sigma = (1/2, 1/4, 1/8, 1/8): H = 1/2 ln 2 + 1/4 ln 4 + 2/8 ln 8 = 1.75 ln 2.
  EXPECT_NEAR(s.effective_rank, std::exp(1.75 * std::log(2.0)), 1e-12);
  EXPECT_NEAR(s.spectral_entropy, 1.75 * std::log(2.0) / std::log(4.0), 1e-12);
}

TEST(SpectrumStats, FlatSpectrumHasFullRanksAndEntropyOneAndRankOneHasOne) {
  const std::vector<double> flat(7, 0.3);
  const SpectrumStats f = spectrum_stats(flat, 7, 9);
  EXPECT_NEAR(f.stable_rank, 7, 1e-12);
  EXPECT_NEAR(f.effective_rank, 7, 1e-12);
  EXPECT_NEAR(f.spectral_entropy, 1, 1e-12);
  const std::vector<double> one = {5, 0, 0};
  const SpectrumStats o = spectrum_stats(one, 3, 3);
  EXPECT_DOUBLE_EQ(o.stable_rank, 1);
  EXPECT_DOUBLE_EQ(o.effective_rank, 1);
  EXPECT_DOUBLE_EQ(o.spectral_entropy, 0);
  const SpectrumStats z = spectrum_stats(std::vector<double>{0, 0}, 2, 2);
  EXPECT_EQ(z.sigma_max, 0);
  EXPECT_EQ(z.stable_rank, 0);
}

// The backend path (Gram on the small side, eigenvalues on the host) recovers known singular
// values of wide and tall matrices.
TEST(SingularValues, RecoverKnownSpectraOfWideAndTallMatrices) {
  CpuBackend backend;
  const std::vector<double> sigma = {3.0, 2.0, 1.5, 0.5, 0.25};
  for (const auto& [rows, cols] : {std::pair{5, 12}, std::pair{12, 5}}) {
    const std::vector<float> x = with_singular_values(rows, cols, sigma, 7);
    Buffer<float> X(backend, x.size()), gram(backend, 25);
    X.upload(x);
    const std::vector<double> got = singular_values(backend, X.data(), rows, cols, gram.data());
    ASSERT_EQ(got.size(), sigma.size());
    for (std::size_t i = 0; i < sigma.size(); ++i) EXPECT_NEAR(got[i], sigma[i], 1e-5) << rows << "x" << cols << " " << i;
  }
}

// Its update has the Frobenius norm of the msign update of the same M (svd exactly; ns5, which
// leaves singular values in about [0.7, 1.2], within 20%), and M's singular vectors and ratios:
// it is M times one positive number.
TEST(NormMatched, HasMuonsFrobeniusNormAndTheMomentumsSpectrum) {
  CpuBackend backend;
  for (const auto& [rows, cols] : {std::pair{24, 40}, std::pair{40, 24}}) {
    const std::vector<double> sigma = {9, 5, 3, 2, 1, 0.5, 0.2, 0.1};
    std::vector<double> full(24, 0.05);
    std::copy(sigma.begin(), sigma.end(), full.begin());
    const std::vector<float> m = with_singular_values(rows, cols, full, 3);
    Buffer<float> M(backend, m.size()), nm(backend, m.size()), svd(backend, m.size()), ns5(backend, m.size());
    M.upload(m);
    msign(backend, MsignMethod::NormMatched, M.data(), nm.data(), rows, cols, 5);
    msign(backend, MsignMethod::Svd, M.data(), svd.data(), rows, cols, 0);
    msign(backend, MsignMethod::NewtonSchulz5, M.data(), ns5.data(), rows, cols, 5);
    const auto norm = [&](const Buffer<float>& b) { return std::sqrt(backend.sum_squares(b.data(), b.size())); };
    EXPECT_NEAR(norm(nm), norm(svd), 1e-4 * norm(svd));
    EXPECT_NEAR(norm(nm), std::sqrt(24.0), 1e-4);
    EXPECT_NEAR(norm(nm) / norm(ns5), 1.0, 0.2);
    const std::vector<float> out = nm.download();
    const double ratio = std::sqrt(24.0) / std::sqrt(backend.sum_squares(M.data(), M.size()));
    for (std::size_t i = 0; i < m.size(); ++i) ASSERT_NEAR(out[i], m[i] * ratio, 1e-5) << i;
    // The singular values of the update: M's, scaled (flat for svd).
    Buffer<float> gram(backend, 24 * 24);
    const auto s_nm = singular_values(backend, nm.data(), rows, cols, gram.data());
    const auto s_svd = singular_values(backend, svd.data(), rows, cols, gram.data());
    for (std::size_t i = 0; i < sigma.size(); ++i) EXPECT_NEAR(s_nm[i], full[i] * ratio, 1e-3);
    EXPECT_GT(spectrum_stats(s_svd, rows, cols).stable_rank, 20.0);
    EXPECT_LT(spectrum_stats(s_nm, rows, cols).stable_rank, 2.0);
  }
}

// The probe's update rows are W - W_before: a known change of one weight (rank 2, singular values
// 3 and 1) between before_step and lines shows as that spectrum; the weights' rows as the
// weights'; the other matrix, untouched, as a zero update.
TEST(SpectraProbe, TheUpdateRowIsTheChangeSinceTheLastStep) {
  CpuBackend backend;
  Mlp model(backend, 12, 8, 2, 2, 4, 2);  // two runs: the probe must read run 1's slice
  model.initialize(1, 7);
  SpectraProbe probe(backend, model, 1, 10);
  probe.before_step();
  Parameter& w = model.parameters(1)[0];  // layers.0.weight, 8 x 12
  ASSERT_EQ(w.name, "layers.0.weight");
  const std::vector<float> change = with_singular_values(8, 12, {3.0, 1.0}, 5);
  Buffer<float> delta(backend, change.size());
  delta.upload(change);
  backend.axpby(w.value.data(), delta.data(), change.size(), 1.0f, 1.0f);
  const std::string lines = probe.lines(1, 10);
  std::vector<std::string> rows;
  for (std::size_t at = 0, end; (end = lines.find('\n', at)) != std::string::npos; at = end + 1)
    rows.push_back(lines.substr(at, end - at));
  ASSERT_EQ(rows.size(), 4u) << lines;  // weight and update of layers.0 and layers.1
  EXPECT_TRUE(rows[0].starts_with("10,layers.0.weight,weight,8,12,"));
  ASSERT_TRUE(rows[1].starts_with("10,layers.0.weight,update,8,12,")) << rows[1];
  // sigma_max 3, stable rank (9 + 1) / 9, then the singular values 3 1 0 ...
  const std::string fields = rows[1].substr(std::string("10,layers.0.weight,update,8,12,").size());
  EXPECT_NEAR(std::stod(fields.substr(0, fields.find(','))), 3.0, 1e-4);
  const std::size_t sr = fields.find(',') + 1;
  EXPECT_NEAR(std::stod(fields.substr(sr)), 10.0 / 9.0, 1e-4);
  EXPECT_TRUE(rows[3].starts_with("10,layers.1.weight,update,2,8,0,0,0,0,0 0")) << rows[3];
}

OptimizerConfig with_decay(OptimizerType type, double wd, WeightDecayMode mode) {
  OptimizerConfig c;
  c.type = type;
  c.lr = 0.1;
  c.momentum = type == OptimizerType::SignGd ? 0.0 : 0.9;
  c.weight_decay = wd;
  c.weight_decay_mode = mode;
  return c;
}

// One update of a 6x4 tensor by `c` from fixed w, g, m; returns w after it.
std::vector<float> one_update(const OptimizerConfig& c, std::vector<float> g_host) {
  CpuBackend backend;
  const int rows = 6, cols = 4;
  const std::size_t n = rows * cols;
  std::vector<float> w_host(n), m_host(n);
  for (std::size_t i = 0; i < n; ++i) {
    w_host[i] = 0.5f - 0.04f * static_cast<float>(i);
    m_host[i] = 0.01f * static_cast<float>(i % 5);
  }
  Buffer<float> w(backend, n), g(backend, n), m(backend, n), dir(backend, n), orth(backend, n);
  w.upload(w_host);
  g.upload(g_host);
  m.upload(m_host);
  const RunUpdate u = run_update<float>(c, 1.0, 0, 0, rows, cols);
  update_tensor(backend, c, UpdateArgs(UpdateKind::Sgd, w.data(), g.data(), n, u).state(m.data()),
                MuonScratch<float>{dir.data(), orth.data(), 0, rows, cols}, 1);
  return w.download();
}

std::vector<float> gradient() {
  std::vector<float> g(24);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = std::sin(1.0f + static_cast<float>(i));
  return g;
}

// Coupled decay is the decoupled-free rule on g + wd w; it differs from decoupled for wd > 0,
// and is decoupled's bits at wd = 0.
TEST(CoupledDecay, IsTheRuleOnTheDecayedGradientAndEqualsDecoupledAtZero) {
  for (OptimizerType type : {OptimizerType::Nmd, OptimizerType::SignGd, OptimizerType::Muon}) {
    const auto coupled = one_update(with_decay(type, 0.5, WeightDecayMode::Coupled), gradient());
    const auto decoupled = one_update(with_decay(type, 0.5, WeightDecayMode::Decoupled), gradient());
    EXPECT_NE(coupled, decoupled) << name(type);
    // The same as no decay on g' = g + wd w (w as one_update sets it).
    std::vector<float> g = gradient();
    for (std::size_t i = 0; i < g.size(); ++i) g[i] += 0.5f * (0.5f - 0.04f * static_cast<float>(i));
    const auto reference = one_update(with_decay(type, 0.0, WeightDecayMode::Decoupled), g);
    for (std::size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(coupled[i], reference[i], 1e-6) << name(type) << " " << i;
    EXPECT_EQ(one_update(with_decay(type, 0.0, WeightDecayMode::Coupled), gradient()),
              one_update(with_decay(type, 0.0, WeightDecayMode::Decoupled), gradient()))
        << name(type);
  }
}

}  // namespace
}  // namespace skillrun
