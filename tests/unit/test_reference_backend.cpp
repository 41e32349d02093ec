// The tests-only reference backend (tests/support/reference_backend.h) on cases worked out by
// hand: small matrices with known products, known polar factors, softmax of ln 3, a two-step
// Adam, ... (never zeros alone). The conformance suite trusts it as the CPU backend's judge, so
// it is checked here against arithmetic, not against another backend.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "support/on_backend.h"
#include "backend/backend.h"
#include "backend/sparse_parity_gen.h"
#include "core/error.h"
#include "support/parity_case.h"
#include "support/reference_backend.h"

namespace skillrun::testing {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();


// Every element within `tolerance` relative (absolute below 1); NaN expected means NaN got.
template <class T>
void expect_near_all(const std::vector<T>& got, const std::vector<double>& expected, double tolerance,
                     const char* what) {
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << ": element " << i << " was written";
    } else {
      EXPECT_NEAR(static_cast<double>(got[i]), expected[i], tolerance * std::max(1.0, std::abs(expected[i])))
          << what << ": element " << i;
    }
  }
}

// ---- gemm -------------------------------------------------------------------------------------

// A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10],[11,12]]: A B = [[58,64],[139,154]]. Each operand is
// stored as itself or as its transpose (then passed with Trans::Yes), with a NaN column of
// padding that must never be read; C has a NaN padding column that must never be written.
template <class T>
void gemm_known_product() {
  ReferenceBackend ref;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<T> a = {1, 2, 3, T(nan), 4, 5, 6, T(nan)};                    // 2x3, lda 4
  const std::vector<T> at = {1, 4, T(nan), 2, 5, T(nan), 3, 6, T(nan)};            // 3x2, lda 3
  const std::vector<T> b = {7, 8, T(nan), 9, 10, T(nan), 11, 12, T(nan)};          // 3x2, ldb 3
  const std::vector<T> bt = {7, 9, 11, T(nan), 8, 10, 12, T(nan)};                 // 2x3, ldb 4
  for (Trans ta : {Trans::No, Trans::Yes})
    for (Trans tb : {Trans::No, Trans::Yes})
      for (T beta : {T(0.5), T(0)}) {
        auto A = on(ref, ta == Trans::No ? a : at), B = on(ref, tb == Trans::No ? b : bt);
        auto C = on(ref, beta == T(0) ? std::vector<T>{T(nan), T(nan), T(nan), T(nan), T(nan), T(nan)}
                                      : std::vector<T>{1, -1, T(nan), 2, -2, T(nan)});
        ref.gemm<T>(ta, tb, 2, 2, 3, T(2), A.data(), ta == Trans::No ? 4 : 3, B.data(), tb == Trans::No ? 3 : 4, beta,
                    C.data(), 3);
        const double c0[] = {1, -1, 2, -2};
        std::vector<double> expected = {116, 128, nan, 278, 308, nan};
        if (beta != T(0))
          for (int e = 0; e < 4; ++e) expected[static_cast<std::size_t>(e / 2 * 3 + e % 2)] += 0.5 * c0[e];
        expect_near_all(C.download(), expected, 0.0, "gemm");
      }
}

TEST(ReferenceBackend, GemmKnownProductInEveryTransposeFormFloatAndDouble) {
  gemm_known_product<float>();
  gemm_known_product<double>();
}

TEST(ReferenceBackend, GemmBatchSharesAStrideZeroOperandAndRejectsOverlappingOutputs) {
  ReferenceBackend ref;
  // A_0 = I, A_1 = 2 I (stride 4), B = [[1,2],[3,4]] shared (stride 0); C at stride 5: one gap.
  auto A = on(ref, std::vector<float>{1, 0, 0, 1, 2, 0, 0, 2});
  auto B = on(ref, std::vector<float>{1, 2, 3, 4});
  auto C = on(ref, std::vector<float>(10, kNaN));
  ref.gemm_strided_batched(Trans::No, Trans::No, 2, 2, 2, 1.0f, A.data(), 2, 4, B.data(), 2, 0, 0.0f, C.data(), 2, 5,
                           2);
  expect_near_all(C.download(), {1, 2, 3, 4, NAN, 2, 4, 6, 8, NAN}, 0.0, "batched gemm");
  EXPECT_THROW(ref.gemm_strided_batched(Trans::No, Trans::No, 2, 2, 2, 1.0f, A.data(), 2, 4, B.data(), 2, 0, 0.0f,
                                        C.data(), 2, 3, 2),
               std::invalid_argument);
}

// ---- elementwise and reductions ---------------------------------------------------------------

TEST(ReferenceBackend, FillAxpbyAndSumSquares) {
  ReferenceBackend ref;
  auto x = on(ref, std::vector<float>{4, 5, 6}), y = on(ref, std::vector<float>{1, 2, 3});
  ref.axpby(y.data(), x.data(), 3, 2.0f, -1.0f);  // 2x - y
  expect_near_all(y.download(), {7, 8, 9}, 0.0, "axpby");
  auto nan_y = on(ref, std::vector<float>(3, kNaN));
  ref.axpby(nan_y.data(), x.data(), 3, 2.0f, 0.0f);  // beta 0: y not read
  expect_near_all(nan_y.download(), {8, 10, 12}, 0.0, "axpby beta 0");
  EXPECT_EQ(ref.sum_squares(x.data(), 3), 77.0);
  auto d = on(ref, std::vector<double>{1, 2, 3, 4});
  EXPECT_EQ(ref.sum_squares(d.data(), 4), 30.0);
  ref.fill(d.data(), 3, -2.5);
  expect_near_all(d.download(), {-2.5, -2.5, -2.5, 4}, 0.0, "fill");
}

// ---- MLP pieces -------------------------------------------------------------------------------

TEST(ReferenceBackend, BiasActivationReluBackwardAndColumnSumsOverRuns) {
  ReferenceBackend ref;
  // Two runs of H (2x2) at stride 5 and their biases at stride 3.
  auto H = on(ref, std::vector<float>{1, -2, -3, 4, kNaN, 0.5f, 0.25f, -1, 2, kNaN});
  auto b = on(ref, std::vector<float>{0.5f, 0.5f, kNaN, -1, 1});
  ref.bias_activation_runs(H.data(), 5, b.data(), 3, 2, 2, true, 2);
  expect_near_all(H.download(), {1.5, 0, 0, 4.5, NAN, 0, 1.25, 0, 3, NAN}, 0.0, "bias + relu");
  auto H2 = on(ref, std::vector<float>{1, -2, -3, 4});
  ref.bias_activation(H2.data(), b.data(), 2, 2, false);
  expect_near_all(H2.download(), {1.5, -1.5, -2.5, 4.5}, 0.0, "bias");
  auto H3 = on(ref, std::vector<float>{kNaN, -2});  // ReLU keeps a NaN NaN
  ref.bias_activation(H3.data(), b.data(), 1, 2, true);
  expect_near_all(H3.download(), {NAN, 0}, 0.0, "relu of NaN");

  auto dH = on(ref, std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
  auto post = on(ref, std::vector<float>{1, 0, 0.5f, 2});  // shared by both runs (stride 0)
  ref.relu_backward_runs(dH.data(), 4, post.data(), 0, 4, 2);
  expect_near_all(dH.download(), {1, 0, 3, 4, 5, 0, 7, 8}, 0.0, "relu backward");

  auto A = on(ref, std::vector<float>{1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6});
  auto out = on(ref, std::vector<float>(5, kNaN));
  ref.column_sums_runs(A.data(), 6, 3, 2, out.data(), 3, 2);
  expect_near_all(out.download(), {9, 12, NAN, -9, -12}, 0.0, "column sums");
}

TEST(ReferenceBackend, CrossEntropyOnHandComputedSoftmax) {
  ReferenceBackend ref;
  const float ln3 = std::log(3.0f);
  // Row 0: [0, ln 3], label 1: softmax (1/4, 3/4), right. Row 1: [ln 3, 0], label 1: wrong.
  // Row 2: [1, 1], label 0: a tie, wrong.
  auto logits = on(ref, std::vector<float>{0, ln3, ln3, 0, 1, 1});
  auto labels = on(ref, std::vector<int32_t>{1, 1, 0});
  auto loss = on(ref, std::vector<float>(3, kNaN)), correct = on(ref, std::vector<float>(3, kNaN));
  auto d = on(ref, std::vector<float>(6, kNaN));
  ref.cross_entropy(logits.data(), labels.data(), 3, 2, loss.data(), correct.data(), d.data(), 0.5f);
  const double e = std::exp(static_cast<double>(ln3));  // 3 up to the rounding of ln 3
  const double p = e / (1 + e);                          // 3/4
  expect_near_all(loss.download(), {std::log(1 + e) - ln3, std::log(1 + e), std::log(2.0)}, 2e-7, "loss");
  expect_near_all(correct.download(), {1, 0, 0}, 0.0, "correct");
  expect_near_all(d.download(), {0.5 * (1 - p), -0.5 * (1 - p), 0.5 * p, -0.5 * p, -0.25, 0.25}, 2e-7, "dlogits");
  EXPECT_NEAR(p, 0.75, 1e-7);

  auto bad = on(ref, std::vector<int32_t>{1, 2, 0});
  EXPECT_THROW(ref.cross_entropy(logits.data(), bad.data(), 3, 2, loss.data(), correct.data(), nullptr, 1.0f),
               std::out_of_range);
}

TEST(ReferenceBackend, TaskSumsAddOntoTheSumsAndCheckTaskIdsFirst) {
  ReferenceBackend ref;
  auto loss = on(ref, std::vector<float>{0.5f, 1, 2}), correct = on(ref, std::vector<float>{1, 0, 1});
  auto tasks = on(ref, std::vector<int32_t>{1, 0, 1});
  auto sums = on(ref, std::vector<double>{10, 20, 30, 40});
  ref.task_sums(loss.data(), correct.data(), tasks.data(), 3, 2, sums.data());
  expect_near_all(sums.download(), {11, 22.5, 30, 42}, 0.0, "task sums");
  auto bad = on(ref, std::vector<int32_t>{1, 2, 0});
  EXPECT_THROW(ref.task_sums(loss.data(), correct.data(), bad.data(), 3, 2, sums.data()), std::out_of_range);
  expect_near_all(sums.download(), {11, 22.5, 30, 42}, 0.0, "task sums after a bad id");
}

// The reference decodes the documented layout itself; the rows must be the shared generator's
// (parity_sample), one-hot in the task, and labelled by the XOR of the task's subset.
TEST(ReferenceBackend, SparseParityDecodesTheDocumentedLayout) {
  ReferenceBackend ref;
  const ParityCase pc;
  const int count = 257, row = ParityCase::kTasks + ParityCase::kBits;
  for (int32_t fixed_task : {-1, 2}) {
    const ParityDraw draw = ParityCase::draw(fixed_task);
    auto subsets = on(ref, pc.subsets);
    auto thresholds = on(ref, pc.thresholds);
    auto x = on(ref, std::vector<float>(static_cast<std::size_t>(count) * row, kNaN));
    auto labels = on(ref, std::vector<int32_t>(count, -7)), tasks = on(ref, std::vector<int32_t>(count, -7));
    ref.sparse_parity(draw, ParityTables{subsets.data(), thresholds.data()}, count, x.data(), labels.data(),
                      tasks.data());
    const auto xs = x.download();
    const auto ls = labels.download(), ts = tasks.download();
    std::vector<int> seen(ParityCase::kTasks, 0);
    for (int j = 0; j < count; ++j) {
      std::vector<float> want(static_cast<std::size_t>(row));
      int32_t want_label = -1;
      const int32_t want_task = parity_sample(draw, ParityTables{pc.subsets.data(), pc.thresholds.data()},
                                              draw.first_sample + static_cast<uint32_t>(j), want.data(), &want_label);
      const float* got = xs.data() + static_cast<std::size_t>(j) * row;
      ASSERT_EQ(std::vector<float>(got, got + row), want) << "row " << j << " (fixed_task " << fixed_task << ")";
      ASSERT_EQ(ls[j], want_label) << "row " << j;
      ASSERT_EQ(ts[j], want_task) << "row " << j;
      ASSERT_GE(ts[j], 0);
      ASSERT_LT(ts[j], ParityCase::kTasks);
      ++seen[ts[j]];
      int32_t parity = 0;
      for (int t = 0; t < ParityCase::kTasks; ++t) EXPECT_EQ(got[t], t == ts[j] ? 1.0f : 0.0f);
      for (int s = 0; s < ParityCase::kSubsetSize; ++s)
        parity ^= static_cast<int32_t>(got[ParityCase::kTasks + pc.subsets[ts[j] * ParityCase::kSubsetSize + s]]);
      EXPECT_EQ(ls[j], parity) << "row " << j;
    }
    if (fixed_task < 0) {
      for (int t = 0; t < ParityCase::kTasks; ++t) EXPECT_GT(seen[t], 0) << "task " << t << " never drawn";
    }
  }
}

// ---- optimizer updates, by hand ---------------------------------------------------------------
// w = [1, -2], g = [0.5, 0.25] unless said otherwise; lr 0.1 (fp32 0.1 is 0.1 within 1.5e-9).

TEST(ReferenceBackend, SgdPlainMomentumAndNesterovByHand) {
  ReferenceBackend ref;
  const auto run = [&](bool with_m, float mu, bool nesterov, std::vector<double> w_expected,
                       std::vector<double> m_expected) {
    auto w = on(ref, std::vector<float>{1, -2}), g = on(ref, std::vector<float>{0.5f, 0.25f});
    auto m = on(ref, std::vector<float>{0.2f, -0.1f});
    ref.sgd_update(w.data(), g.data(), with_m ? m.data() : nullptr, 2, 0.1f, mu, nesterov, 0.01f);
    expect_near_all(w.download(), w_expected, 1e-6, "sgd w");
    expect_near_all(m.download(), m_expected, 1e-6, "sgd m");
  };
  // g' = g + 0.01 w = [0.51, 0.23].
  run(false, 0.0f, false, {0.949, -2.023}, {0.2, -0.1});
  // m = 0.9 m + g' = [0.69, 0.14]; w -= 0.1 m.
  run(true, 0.9f, false, {0.931, -2.014}, {0.69, 0.14});
  // d = g' + 0.9 m = [1.131, 0.356].
  run(true, 0.9f, true, {0.8869, -2.0356}, {0.69, 0.14});
}

TEST(ReferenceBackend, NmdByHandAndNoStepWhenTheMomentumIsZero) {
  ReferenceBackend ref;
  // m = 0.9 * [0, 0] + [3, 4], ||m|| = 5: w = w (1 - 0.1 * 0.5) - 0.1 [0.6, 0.8].
  auto w = on(ref, std::vector<float>{1, -2}), g = on(ref, std::vector<float>{3, 4});
  auto m = on(ref, std::vector<float>{0, 0});
  ref.nmd_update(w.data(), g.data(), m.data(), 2, 0.1f, 0.9f, 0.5f);
  expect_near_all(w.download(), {0.89, -1.98}, 1e-6, "nmd w");
  expect_near_all(m.download(), {3, 4}, 0.0, "nmd m");
  // m = 0.5 [2, -4] + [-1, 2] = 0: no step at all, weight decay included.
  auto w0 = on(ref, std::vector<float>{1, -2}), g0 = on(ref, std::vector<float>{-1, 2});
  auto m0 = on(ref, std::vector<float>{2, -4});
  ref.nmd_update(w0.data(), g0.data(), m0.data(), 2, 0.1f, 0.5f, 0.5f);
  expect_near_all(w0.download(), {1, -2}, 0.0, "nmd w with ||m|| = 0");
  expect_near_all(m0.download(), {0, 0}, 0.0, "nmd m with ||m|| = 0");
}

// Adam with beta1 = beta2 = 0.5, eps = 0.5, lr = 0.1, w0 = 1, g = 2 then 1:
//  t = 1: m = 1, v = 2; m^ = 1 / 0.5 = 2, v^ = 2 / 0.5 = 4; w = 1 - 0.1 * 2 / (2 + 0.5) = 0.92.
//  t = 2: m = 0.5 + 0.5 = 1, v = 1 + 0.5 = 1.5; m^ = 1 / 0.75, v^ = 1.5 / 0.75 = 2;
//         w = 0.92 - 0.1 (4/3) / (sqrt(2) + 0.5).
template <class T>
void adam_two_steps(double tolerance) {
  ReferenceBackend ref;
  auto w = on(ref, std::vector<T>{1}), g1 = on(ref, std::vector<T>{2}), g2 = on(ref, std::vector<T>{1});
  auto m = on(ref, std::vector<T>{0}), v = on(ref, std::vector<T>{0});
  ref.adam_update<T>(w.data(), g1.data(), m.data(), v.data(), 1, T(0.1), T(0.5), T(0.5), T(0.5), T(0), false, 1);
  expect_near_all(w.download(), {0.92}, tolerance, "adam t=1 w");
  expect_near_all(m.download(), {1}, 0.0, "adam t=1 m");
  expect_near_all(v.download(), {2}, 0.0, "adam t=1 v");
  ref.adam_update<T>(w.data(), g2.data(), m.data(), v.data(), 1, T(0.1), T(0.5), T(0.5), T(0.5), T(0), true, 2);
  expect_near_all(w.download(), {0.92 - 0.1 * (4.0 / 3.0) / (std::sqrt(2.0) + 0.5)}, tolerance, "adam t=2 w");
  expect_near_all(m.download(), {1}, 0.0, "adam t=2 m");
  expect_near_all(v.download(), {1.5}, 0.0, "adam t=2 v");
}

TEST(ReferenceBackend, AdamTwoStepsByHandFloatAndDouble) {
  adam_two_steps<float>(1e-6);
  adam_two_steps<double>(1e-14);
}

// Weight decay 0.5, one step from m = v = 0 (then the step is lr * sign(g') * |g'| / (|g'| + eps)):
//  L2: g' = 2 + 0.5 = 2.5, w = 1 - 0.1 * 2.5 / (2.5 + 0.5);  decoupled: w = 0.95 - 0.1 * 2 / 2.5.
TEST(ReferenceBackend, AdamWeightDecayL2VersusDecoupledByHand) {
  ReferenceBackend ref;
  for (bool decoupled : {false, true}) {
    auto w = on(ref, std::vector<double>{1}), g = on(ref, std::vector<double>{2});
    auto m = on(ref, std::vector<double>{0}), v = on(ref, std::vector<double>{0});
    ref.adam_update(w.data(), g.data(), m.data(), v.data(), 1, 0.1, 0.5, 0.5, 0.5, 0.5, decoupled, 1);
    expect_near_all(w.download(), {decoupled ? 0.95 - 0.1 * 2 / 2.5 : 1 - 0.1 * 2.5 / 3.0}, 1e-15, "adam wd");
    expect_near_all(m.download(), {decoupled ? 1.0 : 1.25}, 1e-15, "adam wd m");
  }
}

TEST(ReferenceBackend, SignGdWithAndWithoutMomentumAndSignOfZero) {
  ReferenceBackend ref;
  // mu 0, no state: w = w (1 - 0.1 * 0.5) - 0.1 sign(g), sign(0) = 0.
  auto w = on(ref, std::vector<float>{1, -2, 3}), g = on(ref, std::vector<float>{0.5f, 0, -0.25f});
  ref.signgd_update<float>(w.data(), g.data(), nullptr, 3, 0.1f, 0.0f, 0.5f);
  expect_near_all(w.download(), {0.85, -1.9, 2.95}, 1e-6, "signgd mu 0");
  // mu 0.5: m = 0.5 [-1, 0, 1] + [0.5, 0, -0.25] = [0, 0, 0.25]: only the last moves.
  auto w2 = on(ref, std::vector<float>{1, -2, 3}), m = on(ref, std::vector<float>{-1, 0, 1});
  ref.signgd_update(w2.data(), g.data(), m.data(), 3, 0.1f, 0.5f, 0.0f);
  expect_near_all(w2.download(), {1, -2, 2.9}, 1e-6, "signgd mu 0.5");
  expect_near_all(m.download(), {0, 0, 0.25}, 0.0, "signgd m");
}

TEST(ReferenceBackend, MuonMomentumInPlaceAndMuonStepByHand) {
  ReferenceBackend ref;
  for (bool nesterov : {false, true}) {
    // m = 0.5 [1, 2] + [0.5, -1] = [1, 0]; out = m, or g + 0.5 m = [1, -1]; out written over g.
    auto m = on(ref, std::vector<float>{1, 2}), g = on(ref, std::vector<float>{0.5f, -1});
    ref.momentum_accumulate(m.data(), g.data(), g.data(), 2, 0.5f, nesterov);
    expect_near_all(m.download(), {1, 0}, 0.0, "momentum m");
    expect_near_all(g.download(), nesterov ? std::vector<double>{1, -1} : std::vector<double>{1, 0}, 0.0, "out");
  }
  // w = 0.5 w - 0.25 d.
  auto w = on(ref, std::vector<float>{1, 2}), d = on(ref, std::vector<float>{4, -2});
  RunUpdate u;
  u.step_beta = 0.5f;
  u.step_alpha = -0.25f;
  UpdateArgs a(UpdateKind::MuonStep, w.data(), static_cast<const float*>(nullptr), 0, 2, RunTable{{&u, 1}});
  a.scratch = d.data();
  ref.update(a);
  expect_near_all(w.download(), {-0.5, 1.5}, 0.0, "muon step");
}

// A run table of two entries over a 3-run arena: entry 0 is run 2 with state slice 0, entry 1
// run 0 with slice 1, each with its own lr; run 1, the padding and the gaps stay as they were,
// and Muon's momentum writes entry i's output at i * scratch_stride.
TEST(ReferenceBackend, RunTableEntriesUpdateTheirOwnRunSliceAndScratch) {
  ReferenceBackend ref;
  std::vector<RunUpdate> table(2);
  table[0].run = 2;
  table[0].slice = 0;
  table[0].lr = 1.0f;
  table[0].momentum = 0.5f;
  table[1].run = 0;
  table[1].slice = 1;
  table[1].lr = 0.5f;
  table[1].momentum = 0.25f;
  // Params: n = 2 at stride 3; state at stride 4.
  auto w = on(ref, std::vector<float>{1, 2, kNaN, 3, 4, kNaN, 5, 6});
  auto g = on(ref, std::vector<float>{1, 1, kNaN, 1, 1, kNaN, 2, 2});
  auto m = on(ref, std::vector<float>{2, 4, kNaN, kNaN, 4, 8});
  UpdateArgs sgd(UpdateKind::Sgd, w.data(), static_cast<const float*>(g.data()), 3, 2, RunTable{table});
  sgd.m = m.data();
  sgd.m_stride = 4;
  ref.update(sgd);
  // Entry 0 (run 2, slice 0): m = 0.5 [2, 4] + [2, 2] = [3, 4]; w = [5, 6] - m.
  // Entry 1 (run 0, slice 1): m = 0.25 [4, 8] + [1, 1] = [2, 3]; w = [1, 2] - 0.5 m.
  expect_near_all(w.download(), {0, 0.5, NAN, 3, 4, NAN, 2, 2}, 0.0, "sgd over a run table: w");
  expect_near_all(m.download(), {3, 4, NAN, NAN, 2, 3}, 0.0, "sgd over a run table: m");

  auto out = on(ref, std::vector<float>(5, kNaN));
  UpdateArgs mom(UpdateKind::Momentum, static_cast<float*>(nullptr), static_cast<const float*>(g.data()), 3, 2,
                 RunTable{table});
  mom.m = m.data();
  mom.m_stride = 4;
  mom.scratch = out.data();
  mom.scratch_stride = 3;
  ref.update(mom);
  // Entry 0: m = 0.5 [3, 4] + [2, 2] = [3.5, 4]; entry 1: m = 0.25 [2, 3] + [1, 1] = [1.5, 1.75].
  expect_near_all(out.download(), {3.5, 4, NAN, 1.5, 1.75}, 0.0, "momentum over a run table: out");
}

// ---- msign --------------------------------------------------------------------------------------
// R = [[0.6, -0.8], [0.8, 0.6]] (a rotation), G = R [[3, 0, 0], [0, 4, 0]]: singular values 3
// and 4, ||G||_F = 5, polar factor R [[1, 0, 0], [0, 1, 0]]. Its transpose checks the tall side.

std::vector<double> rotated(double s1, double s2) {  // R [[s1, 0, 0], [0, s2, 0]], row-major 2x3
  return {0.6 * s1, -0.8 * s2, 0, 0.8 * s1, 0.6 * s2, 0};
}
std::vector<double> transposed_2x3(const std::vector<double>& x) { return {x[0], x[3], x[1], x[4], x[2], x[5]}; }
template <class T>
std::vector<T> as(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

TEST(ReferenceBackend, NewtonSchulzOnAKnownSpectrumWideAndTall) {
  ReferenceBackend ref;
  const std::vector<double> G = rotated(3, 4);
  // X0 = G / (2 * 5 + 1): singular values 3/11 and 4/11; one ns5 step maps s to
  // a s + b s^3 + c s^5, and an empty schedule leaves X0.
  const NsCoefficients ns5{3.4445, -4.7750, 2.0315};
  const auto f = [&](double s) { return ns5.a * s + ns5.b * s * s * s + ns5.c * s * s * s * s * s; };
  for (int steps : {0, 1, 2}) {
    double s1 = 3.0 / 11, s2 = 4.0 / 11;
    for (int i = 0; i < steps; ++i) s1 = f(s1), s2 = f(s2);
    const std::vector<NsCoefficients> schedule(static_cast<std::size_t>(steps), ns5);
    for (bool tall : {false, true}) {
      auto in = on(ref, as<double>(tall ? transposed_2x3(G) : G));
      auto out = on(ref, std::vector<double>(6, NAN));
      ref.msign_newton_schulz<double>(in.data(), out.data(), tall ? 3 : 2, tall ? 2 : 3, schedule, 2.0, 1.0);
      const std::vector<double> want = rotated(s1, s2);
      expect_near_all(out.download(), tall ? transposed_2x3(want) : want, 1e-14, "newton-schulz");
    }
  }
  // Two runs at a stride of 7 in fp32, the second G doubled (same X0 up to the eps term: use 0).
  std::vector<float> two = as<float>(G);
  two.push_back(kNaN);
  for (double e : G) two.push_back(static_cast<float>(2 * e));
  auto in = on(ref, two);
  auto out = on(ref, std::vector<float>(13, kNaN));
  const std::vector<NsCoefficients> one{ns5};
  ref.msign_newton_schulz_runs(in.data(), out.data(), 7, 2, 3, one, 1.0, 0.0, 2);
  std::vector<double> want = rotated(f(0.6), f(0.8));
  want.push_back(NAN);
  const std::vector<double> again = rotated(f(0.6), f(0.8));
  want.insert(want.end(), again.begin(), again.end());
  expect_near_all(out.download(), want, 1e-6, "newton-schulz over two runs");
}

template <class T>
void svd_case(const std::vector<double>& G, int rows, int cols, const std::vector<double>& polar, double tolerance,
              const char* what) {
  ReferenceBackend ref;
  auto in = on(ref, as<T>(G));
  auto out = on(ref, std::vector<T>(G.size(), T(NAN)));
  ref.msign_svd<T>(in.data(), out.data(), rows, cols);
  expect_near_all(out.download(), polar, tolerance, what);
}

template <class T>
void svd_known_polar_factors(double tolerance) {
  const std::vector<double> G = rotated(3, 4), Q = rotated(1, 1);
  svd_case<T>(G, 2, 3, Q, tolerance, "wide R diag(3, 4)");
  svd_case<T>(transposed_2x3(G), 3, 2, transposed_2x3(Q), tolerance, "tall R diag(3, 4)");
  svd_case<T>({2, 1, 1, 2}, 2, 2, {1, 0, 0, 1}, tolerance, "symmetric positive definite: I");
  svd_case<T>({0, 2, -3, 0}, 2, 2, {0, 1, -1, 0}, tolerance, "a rotation times diag(3, 2)");
  // Rank 1: u v^T with u = v = [1, 2]: msign = u v^T / (|u| |v|) = G / 5.
  svd_case<T>({1, 2, 2, 4}, 2, 2, {0.2, 0.4, 0.4, 0.8}, tolerance, "rank 1");
  svd_case<T>({0, 0, 0, 0, 0, 0}, 2, 3, {0, 0, 0, 0, 0, 0}, 0.0, "zero: msign(0) = 0");
}

TEST(ReferenceBackend, SvdKnownPolarFactorsFloatAndDouble) {
  svd_known_polar_factors<float>(1e-6);
  svd_known_polar_factors<double>(1e-14);
}

// A random 9x5 G: Q = msign(G) has orthonormal columns and Q^T G = V S V^T is symmetric with
// positive eigenvalues (the polar decomposition G = Q P), whatever the shape's orientation.
TEST(ReferenceBackend, SvdGivesThePolarDecompositionOfARandomMatrix) {
  ReferenceBackend ref;
  const int m = 9, n = 5;
  std::mt19937 rng(5);
  std::normal_distribution<double> dist;
  std::vector<double> G(static_cast<std::size_t>(m) * n);
  for (double& e : G) e = dist(rng);
  for (bool tall : {true, false}) {
    std::vector<double> in = G;
    if (!tall)
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) in[static_cast<std::size_t>(j) * m + i] = G[static_cast<std::size_t>(i) * n + j];
    auto b = on(ref, in);
    auto out = on(ref, std::vector<double>(in.size(), NAN));
    ref.msign_svd<double>(b.data(), out.data(), tall ? m : n, tall ? n : m);
    std::vector<double> Q = out.download();
    if (!tall) {  // back to 9x5
      std::vector<double> t(Q.size());
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) t[static_cast<std::size_t>(i) * n + j] = Q[static_cast<std::size_t>(j) * m + i];
      Q = t;
    }
    const auto entry = [&](const std::vector<double>& x, int i, int j) { return x[static_cast<std::size_t>(i) * n + j]; };
    for (int p = 0; p < n; ++p)
      for (int q = 0; q < n; ++q) {
        double qq = 0, qg = 0, gq = 0;
        for (int i = 0; i < m; ++i) {
          qq += entry(Q, i, p) * entry(Q, i, q);
          qg += entry(Q, i, p) * entry(G, i, q);
          gq += entry(Q, i, q) * entry(G, i, p);
        }
        EXPECT_NEAR(qq, p == q ? 1.0 : 0.0, 1e-13) << "Q^T Q (" << p << ", " << q << ")";
        EXPECT_NEAR(qg, gq, 1e-12) << "Q^T G not symmetric at (" << p << ", " << q << ")";
        if (p == q) {
          EXPECT_GT(qg, 0.0) << "Q^T G has a non-positive diagonal";
        }
      }
  }
  auto nan_in = on(ref, std::vector<float>{1, NAN, 0, 1}), nan_out = on(ref, std::vector<float>(4));
  EXPECT_THROW(ref.msign_svd<float>(nan_in.data(), nan_out.data(), 2, 2), RuntimeError);
}

// ---- the layer ops: Backend's defaults over the reference's own ops ------------------------------

TEST(ReferenceBackend, LinearLayerDefaultsComposeTheReferenceOps) {
  ReferenceBackend ref;
  // x = [1, 2], W = [[1, 0], [0, -1]], b = [0.5, 0.5]: out = relu([1.5, -1.5]) = [1.5, 0].
  auto x = on(ref, std::vector<float>{1, 2});
  auto params = on(ref, std::vector<float>{1, 0, 0, -1, 0.5f, 0.5f});  // W then b
  auto out = on(ref, std::vector<float>(2, kNaN));
  ref.linear_forward_runs(x.data(), 0, params.data(), params.data() + 4, 0, out.data(), 0, 1, 2, 2, true, nullptr, 0,
                          1);
  expect_near_all(out.download(), {1.5, 0}, 0.0, "linear forward");
  // dZ = [1, 2]: dW = dZ^T x = [[1, 2], [2, 4]], db = [1, 2].
  auto dZ = on(ref, std::vector<float>{1, 2});
  auto grads = on(ref, std::vector<float>(6, kNaN));
  ref.linear_weight_grad_runs(dZ.data(), 0, x.data(), 0, grads.data(), grads.data() + 4, 0, 1, 2, 2, 1);
  expect_near_all(grads.download(), {1, 2, 2, 4, 1, 2}, 0.0, "linear weight grad");
  // Into the ReLU layer below with H = [1, 0]: dX = (dZ W) [H > 0] = [1, -2] [1, 0] = [1, 0].
  auto H = on(ref, std::vector<float>{1, 0});
  auto dX = on(ref, std::vector<float>(2, kNaN)), db_in = on(ref, std::vector<float>(2, kNaN));
  ref.linear_input_grad_relu_runs(dZ.data(), 0, params.data(), 0, H.data(), 0, nullptr, 0, dX.data(), 0, db_in.data(),
                                  1, 2, 2, 1);
  expect_near_all(dX.download(), {1, 0}, 0.0, "linear input grad");
  expect_near_all(db_in.download(), {1, 0}, 0.0, "linear input grad: bias");
}

TEST(ReferenceBackend, HasNoStepGraphs) {
  ReferenceBackend ref;
  EXPECT_FALSE(ref.supports_step_graph());
  EXPECT_THROW(ref.begin_step_capture(0), RuntimeError);
}

}  // namespace
}  // namespace skillrun::testing
