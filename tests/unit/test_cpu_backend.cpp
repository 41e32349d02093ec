// Specification of the CPU backend, op by op: gemm against a naive double loop, the MLP pieces
// and reductions, cross-entropy on hand-computed rows, per-subtask sums (task_sums) by hand and
// against a double loop, the sparse-parity generator against the
// shared per-sample code, and one hand-computed step of every optimizer update rule.
// Expected numbers are worked out in the comments; random inputs come from a local mt19937.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support/on_backend.h"
#include "support/parity_case.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "backend/sparse_parity_gen.h"

namespace skillrun {
namespace {

// Uniform in [-1, 1): signed, non-zero almost surely, and different in every element.
std::vector<float> random_vector(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

using skillrun::testing::on;

void expect_all_near(const std::vector<float>& actual, const std::vector<double>& expected,
                     double tol) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tol) << "element " << i;
  }
}

// ---- gemm ---------------------------------------------------------------------------------

// op(A) (m x k) from storage with leading dimension ld: element (i, p) of op(A).
double op_at(const std::vector<float>& a, Trans t, int ld, int i, int p) {
  return t == Trans::No ? a[static_cast<std::size_t>(i) * ld + p]
                        : a[static_cast<std::size_t>(p) * ld + i];
}

// Runs backend gemm on random A, B, C (with the given leading dimensions) and checks every
// element of C, padding included, against alpha op(A) op(B) + beta C in double.
void check_gemm(Trans ta, Trans tb, int m, int n, int k, float alpha, float beta, int lda, int ldb,
                int ldc) {
  CpuBackend backend;
  const int a_rows = ta == Trans::No ? m : k;
  const int b_rows = tb == Trans::No ? k : n;
  const auto a = random_vector(static_cast<std::size_t>(a_rows) * lda, 1);
  const auto b = random_vector(static_cast<std::size_t>(b_rows) * ldb, 2);
  const auto c0 = random_vector(static_cast<std::size_t>(m) * ldc, 3);
  std::vector<double> expected(c0.begin(), c0.end());  // padding columns must survive as is
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double dot = 0.0;
      for (int p = 0; p < k; ++p) dot += op_at(a, ta, lda, i, p) * op_at(b, tb, ldb, p, j);
      expected[static_cast<std::size_t>(i) * ldc + j] = alpha * dot + beta * c0[i * ldc + j];
    }
  }
  auto A = on(backend, a);
  auto B = on(backend, b);
  auto C = on(backend, c0);
  backend.gemm(ta, tb, m, n, k, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  const auto c = C.download();
  for (std::size_t i = 0; i < c.size(); ++i) {
    EXPECT_NEAR(c[i], expected[i], 1e-5 * std::max(1.0, std::abs(expected[i]))) << "element " << i;
  }
}

// Shapes 7 x 5 x 11 (all different, none a multiple of a SIMD width) so a swapped m/n/k fails.
TEST(CpuBackend, GemmNoTransposeMatchesNaive) {
  check_gemm(Trans::No, Trans::No, 7, 5, 11, 1.0f, 0.0f, 11, 5, 5);
}
TEST(CpuBackend, GemmTransposedAMatchesNaive) {
  check_gemm(Trans::Yes, Trans::No, 7, 5, 11, 1.0f, 0.0f, 7, 5, 5);
}
TEST(CpuBackend, GemmTransposedBMatchesNaive) {
  check_gemm(Trans::No, Trans::Yes, 7, 5, 11, 1.0f, 0.0f, 11, 11, 5);
}
TEST(CpuBackend, GemmBothTransposedMatchesNaive) {
  check_gemm(Trans::Yes, Trans::Yes, 7, 5, 11, 1.0f, 0.0f, 7, 11, 5);
}
TEST(CpuBackend, GemmAlphaAndNonZeroBetaAccumulateIntoC) {
  check_gemm(Trans::No, Trans::Yes, 7, 5, 11, 0.5f, -1.5f, 11, 11, 5);
}
TEST(CpuBackend, GemmHonoursLeadingDimensionsLargerThanCols) {
  // Every operand padded: the padding must be neither read into C nor written.
  check_gemm(Trans::No, Trans::No, 7, 5, 11, 1.0f, 0.5f, 14, 9, 8);
  check_gemm(Trans::Yes, Trans::Yes, 7, 5, 11, 1.0f, 0.5f, 10, 13, 6);
}

TEST(CpuBackend, GemmSplitAcrossThreadsMatchesNaive) {
  // 200 x 70 x 30 = 420000 multiply-adds: large enough to be split across threads, by rows of
  // C (tall C) or by columns (wide C), block edges not landing on the operand edges; every
  // transpose combination, padded operands, beta != 0.
  for (Trans ta : {Trans::No, Trans::Yes}) {
    for (Trans tb : {Trans::No, Trans::Yes}) {
      for (auto [m, n] : {std::pair{200, 70}, std::pair{70, 200}}) {
        const int k = 30;
        const int lda = (ta == Trans::No ? k : m) + 3, ldb = (tb == Trans::No ? n : k) + 5;
        check_gemm(ta, tb, m, n, k, 0.75f, 0.5f, lda, ldb, n + 2);
      }
    }
  }
}

// A pack of runs: each product of the batch must be exactly the gemm of its own slices, so a
// packed run computes the same bits as the run alone.
TEST(CpuBackend, GemmStridedBatchedEqualsOneGemmPerProductBitForBit) {
  CpuBackend backend;
  const int m = 40, n = 70, k = 30, batch = 3;
  const int64_t stride_a = int64_t{m} * k + 5, stride_c = int64_t{m} * n + 2;
  const auto A = random_vector(static_cast<std::size_t>(stride_a * batch), 41);
  const auto B = random_vector(static_cast<std::size_t>(n) * k, 42);  // shared: stride 0
  const auto C0 = random_vector(static_cast<std::size_t>(stride_c * batch), 43);
  auto C_batched = C0, C_single = C0;
  backend.gemm_strided_batched(Trans::No, Trans::Yes, m, n, k, 0.75f, A.data(), k, stride_a, B.data(), k, 0, 0.5f,
                               C_batched.data(), n, stride_c, batch);
  for (int r = 0; r < batch; ++r)
    backend.gemm(Trans::No, Trans::Yes, m, n, k, 0.75f, A.data() + r * stride_a, k, B.data(), k, 0.5f,
                 C_single.data() + r * stride_c, n);
  EXPECT_EQ(C_batched, C_single);
  EXPECT_NE(C_batched, C0);
}

TEST(CpuBackend, GemmStridedBatchedRefusesOverlappingOutputs) {
  CpuBackend backend;
  std::vector<float> x(64, 1.0f), c(64, 0.0f);
  // C (2 x 3, ldc 3) spans 6 elements: a C stride of 5 would let product 1 overwrite product 0.
  EXPECT_THROW(backend.gemm_strided_batched(Trans::No, Trans::No, 2, 3, 2, 1.0f, x.data(), 2, 4, x.data(), 3, 0, 0.0f,
                                            c.data(), 3, 5, 2),
               std::invalid_argument);
  EXPECT_THROW(backend.gemm_strided_batched(Trans::No, Trans::No, 2, 3, 2, 1.0f, x.data(), 2, -4, x.data(), 3, 0, 0.0f,
                                            c.data(), 3, 6, 2),
               std::invalid_argument);
  EXPECT_NO_THROW(backend.gemm_strided_batched(Trans::No, Trans::No, 2, 3, 2, 1.0f, x.data(), 2, 4, x.data(), 3, 0,
                                               0.0f, c.data(), 3, 6, 2));
  EXPECT_EQ(c[0], 2.0f);  // (1 1) . (1 1)
  EXPECT_EQ(c[11], 2.0f);
}

TEST(CpuBackend, GemmBetaZeroOverwritesNaNInC) {
  CpuBackend backend;
  // [1 2; 3 4] [5; 6] = [17; 39], whatever C held before.
  auto A = on(backend, std::vector<float>{1, 2, 3, 4});
  auto B = on(backend, std::vector<float>{5, 6});
  auto C = on(backend, std::vector<float>(2, std::numeric_limits<float>::quiet_NaN()));
  backend.gemm(Trans::No, Trans::No, 2, 1, 2, 1.0f, A.data(), 2, B.data(), 1, 0.0f, C.data(), 1);
  EXPECT_EQ(C.download(), (std::vector<float>{17, 39}));
}

TEST(CpuBackend, GemmRejectsLeadingDimensionSmallerThanCols) {
  CpuBackend backend;
  Buffer<float> A(backend, 12), B(backend, 12), C(backend, 12);
  // A is 3 x 4 (NoTrans, m = 3, k = 4): lda = 3 < 4 cannot be right.
  EXPECT_THROW(backend.gemm(Trans::No, Trans::No, 3, 3, 4, 1.0f, A.data(), 3, B.data(), 3, 0.0f,
                            C.data(), 3),
               std::invalid_argument);
}

// ---- memory -------------------------------------------------------------------------------

TEST(CpuBackend, NameNamesOpenBlasAndThreadCount) {
  CpuBackend backend;
  const std::string name = backend.name();
  EXPECT_EQ(name.rfind("cpu (OpenBLAS ", 0), 0u) << name;
  EXPECT_NE(name.find("thread"), std::string::npos) << name;
  EXPECT_TRUE(backend.is_cpu());
}

TEST(CpuBackend, AllocateReturns64ByteAlignedMemory) {
  CpuBackend backend;
  for (std::size_t bytes : {1u, 63u, 65u, 1000u}) {
    void* p = backend.allocate(bytes);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u) << bytes << " bytes";
    backend.deallocate(p);
  }
}

TEST(CpuBackend, AllocateFailureThrowsRuntimeErrorNamingTheByteCount) {
  CpuBackend backend;
  const std::size_t bytes = std::size_t{1} << 62;  // 4 EiB: more than any address space
  try {
    backend.allocate(bytes);
    FAIL() << "allocating 4 EiB succeeded";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(bytes)), std::string::npos) << e.what();
  }
}

TEST(CpuBackend, UploadCopyDownloadRoundTripKeepsEveryByte) {
  CpuBackend backend;
  const auto host = random_vector(1000, 4);
  Buffer<float> first(backend, host.size()), second(backend, host.size());
  backend.upload(first.data(), host.data(), host.size() * sizeof(float));
  backend.copy(second.data(), first.data(), host.size() * sizeof(float));
  std::vector<float> back(host.size());
  backend.download(back.data(), second.data(), back.size() * sizeof(float));
  EXPECT_EQ(back, host);
}

// ---- elementwise and reductions -----------------------------------------------------------

TEST(CpuBackend, FillSetsEveryElementOfALongVector) {
  CpuBackend backend;
  Buffer<float> x(backend, 100003);  // past the parallel threshold, odd length
  backend.fill(x.data(), x.size(), 2.5f);
  const auto h = x.download();
  EXPECT_EQ(std::count(h.begin(), h.end(), 2.5f), 100003);
}

TEST(CpuBackend, AxpbyComputesAlphaXPlusBetaY) {
  CpuBackend backend;
  // 2 (1, -2, 3) + 0.5 (4, 6, -8) = (4, -1, 2)
  auto y = on(backend, std::vector<float>{4, 6, -8});
  auto x = on(backend, std::vector<float>{1, -2, 3});
  backend.axpby(y.data(), x.data(), 3, 2.0f, 0.5f);
  EXPECT_EQ(y.download(), (std::vector<float>{4, -1, 2}));
}

TEST(CpuBackend, AxpbyWithBetaZeroDoesNotReadY) {
  CpuBackend backend;
  // -3 (1, -2, 3) = (-3, 6, -9): the NaN in y must not leak through 0 * NaN.
  auto y = on(backend, std::vector<float>(3, std::numeric_limits<float>::quiet_NaN()));
  auto x = on(backend, std::vector<float>{1, -2, 3});
  backend.axpby(y.data(), x.data(), 3, -3.0f, 0.0f);
  EXPECT_EQ(y.download(), (std::vector<float>{-3, 6, -9}));
}

TEST(CpuBackend, SumSquaresByHand) {
  CpuBackend backend;
  // 1 + 4 + 9 + 0.25 = 14.25
  auto x = on(backend, std::vector<float>{1, -2, 3, 0.5f});
  EXPECT_DOUBLE_EQ(backend.sum_squares(x.data(), 4), 14.25);
}

TEST(CpuBackend, SumSquaresOfALongVectorMatchesDoubleLoop) {
  CpuBackend backend;
  const auto h = random_vector(1000003, 5);
  double expected = 0.0;
  for (float v : h) expected += static_cast<double>(v) * v;  // ~ n / 3 = 333334
  auto x = on(backend, h);
  EXPECT_NEAR(backend.sum_squares(x.data(), h.size()), expected, 1e-9 * expected);
}

// ---- MLP pieces ---------------------------------------------------------------------------

TEST(CpuBackend, BiasActivationWithReluAddsBiasThenClampsAtZero) {
  CpuBackend backend;
  // rows (1, -2, 3), (-4, 5, -6) + bias (0.5, 1, -1) = (1.5, -1, 2), (-3.5, 6, -7) -> relu
  auto H = on(backend, std::vector<float>{1, -2, 3, -4, 5, -6});
  auto bias = on(backend, std::vector<float>{0.5f, 1, -1});
  backend.bias_activation(H.data(), bias.data(), 2, 3, true);
  EXPECT_EQ(H.download(), (std::vector<float>{1.5f, 0, 2, 0, 6, 0}));
}

TEST(CpuBackend, BiasActivationWithoutReluKeepsNegatives) {
  CpuBackend backend;
  auto H = on(backend, std::vector<float>{1, -2, 3, -4, 5, -6});
  auto bias = on(backend, std::vector<float>{0.5f, 1, -1});
  backend.bias_activation(H.data(), bias.data(), 2, 3, false);
  EXPECT_EQ(H.download(), (std::vector<float>{1.5f, -1, 2, -3.5f, 6, -7}));
}

TEST(CpuBackend, BiasActivationOnATrainingSizedBatchMatchesLoop) {
  CpuBackend backend;
  const int rows = 1000, cols = 250;  // the parallel path
  const auto h = random_vector(static_cast<std::size_t>(rows) * cols, 6);
  const auto b = random_vector(cols, 7);
  std::vector<double> expected(h.size());
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j)
      expected[i * cols + j] = std::max(0.0f, h[i * cols + j] + b[j]);
  auto H = on(backend, h);
  auto bias = on(backend, b);
  backend.bias_activation(H.data(), bias.data(), rows, cols, true);
  expect_all_near(H.download(), expected, 0.0);
}

TEST(CpuBackend, ReluBackwardZeroesGradientWhereActivationIsNotPositive) {
  CpuBackend backend;
  // H = (2, 0, 0.5, -1): only H > 0 passes the gradient; H == 0 (a clamped unit) blocks it.
  auto dH = on(backend, std::vector<float>{0.1f, 0.2f, -0.3f, 0.4f});
  auto H = on(backend, std::vector<float>{2, 0, 0.5f, -1});
  backend.relu_backward(dH.data(), H.data(), 4);
  EXPECT_EQ(dH.download(), (std::vector<float>{0.1f, 0, -0.3f, 0}));
}

TEST(CpuBackend, ColumnSumsByHand) {
  CpuBackend backend;
  // [1 2 3; 4 5 6; -7 0.5 1] -> (1 + 4 - 7, 2 + 5 + 0.5, 3 + 6 + 1) = (-2, 7.5, 10)
  auto A = on(backend, std::vector<float>{1, 2, 3, 4, 5, 6, -7, 0.5f, 1});
  Buffer<float> out(backend, 3);
  backend.column_sums(A.data(), 3, 3, out.data());
  EXPECT_EQ(out.download(), (std::vector<float>{-2, 7.5f, 10}));
}

TEST(CpuBackend, ColumnSumsOfATrainingSizedBatchMatchDoubleLoop) {
  CpuBackend backend;
  const int rows = 10000, cols = 250;  // several column tiles, the last one partial
  const auto a = random_vector(static_cast<std::size_t>(rows) * cols, 8);
  std::vector<double> expected(cols, 0.0);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) expected[j] += a[static_cast<std::size_t>(i) * cols + j];
  auto A = on(backend, a);
  Buffer<float> out(backend, cols);
  backend.column_sums(A.data(), rows, cols, out.data());
  expect_all_near(out.download(), expected, 1e-4);  // sums ~ sqrt(10000 / 3) = 58: float ulp 4e-6
}

// ---- cross-entropy ------------------------------------------------------------------------

struct CrossEntropyResult {
  std::vector<float> loss, correct, dlogits;
};

CrossEntropyResult run_cross_entropy(const std::vector<float>& logits,
                                     const std::vector<int32_t>& labels, int classes,
                                     float grad_scale) {
  CpuBackend backend;
  const int rows = static_cast<int>(labels.size());
  auto L = on(backend, logits);
  auto y = on(backend, labels);
  Buffer<float> loss(backend, rows), correct(backend, rows), d(backend, logits.size());
  backend.cross_entropy(L.data(), y.data(), rows, classes, loss.data(), correct.data(), d.data(),
                        grad_scale);
  return {loss.download(), correct.download(), d.download()};
}

TEST(CrossEntropy, TwoClassLossAndGradientByHand) {
  // logits (2, 0), label 0: softmax = (e^2, 1) / (e^2 + 1) = (0.880797, 0.119203);
  // loss = -ln 0.880797 = ln(1 + e^-2) = 0.126928 nats; grad = (0.880797 - 1, 0.119203).
  const auto r = run_cross_entropy({2, 0}, {0}, 2, 1.0f);
  EXPECT_NEAR(r.loss[0], 0.126928, 1e-6);
  EXPECT_EQ(r.correct[0], 1.0f);
  EXPECT_NEAR(r.dlogits[0], -0.119203, 1e-6);
  EXPECT_NEAR(r.dlogits[1], 0.119203, 1e-6);
}

TEST(CrossEntropy, ThreeClassWrongAnswerByHand) {
  // logits (1, 3, 0), label 0: lse = 3 + ln(e^-2 + 1 + e^-3) = 3 + ln 1.185122 = 3.169846;
  // loss = 3.169846 - 1 = 2.169846; argmax is class 1, so wrong.
  const auto r = run_cross_entropy({1, 3, 0}, {0}, 3, 1.0f);
  EXPECT_NEAR(r.loss[0], 2.169846, 1e-5);
  EXPECT_EQ(r.correct[0], 0.0f);
}

TEST(CrossEntropy, TieWithLabelCountsAsWrong) {
  // logits (1.5, 1.5), label 0: loss ln 2 = 0.693147, and a tie is not a correct answer.
  const auto r = run_cross_entropy({1.5f, 1.5f}, {0}, 2, 1.0f);
  EXPECT_NEAR(r.loss[0], 0.693147, 1e-6);
  EXPECT_EQ(r.correct[0], 0.0f);
}

TEST(CrossEntropy, LargeLogitsStayFinite) {
  // Row 0: (1000, -1000), label 1: loss = 2000 + ln(1 + e^-2000) = 2000, grad (1, -1).
  // Row 1: (-1000, 1000), label 1: loss = ln(1 + e^-2000) = 0 in float, grad (0, 0).
  const auto r = run_cross_entropy({1000, -1000, -1000, 1000}, {1, 1}, 2, 1.0f);
  EXPECT_FLOAT_EQ(r.loss[0], 2000.0f);
  EXPECT_EQ(r.correct[0], 0.0f);
  EXPECT_NEAR(r.loss[1], 0.0f, 1e-6);
  EXPECT_EQ(r.correct[1], 1.0f);
  for (float d : r.dlogits) EXPECT_TRUE(std::isfinite(d));
  EXPECT_FLOAT_EQ(r.dlogits[0], 1.0f);
  EXPECT_FLOAT_EQ(r.dlogits[1], -1.0f);
}

TEST(CrossEntropy, GradScaleMultipliesTheGradientOnly) {
  // (2, 0), label 0 with grad_scale 0.25 (a mean over 4 rows): grad = 0.25 (-0.119203, 0.119203)
  // = (-0.029801, 0.029801); the loss stays 0.126928.
  const auto r = run_cross_entropy({2, 0}, {0}, 2, 0.25f);
  EXPECT_NEAR(r.loss[0], 0.126928, 1e-6);
  EXPECT_NEAR(r.dlogits[0], -0.029801, 1e-6);
  EXPECT_NEAR(r.dlogits[1], 0.029801, 1e-6);
}

TEST(CrossEntropy, NullGradientPointerComputesLossAlone) {
  CpuBackend backend;
  auto L = on(backend, std::vector<float>{2, 0});
  auto y = on(backend, std::vector<int32_t>{1});
  Buffer<float> loss(backend, 1), correct(backend, 1);
  // label 1 of (2, 0): loss = ln(1 + e^2) = 2.126928
  backend.cross_entropy(L.data(), y.data(), 1, 2, loss.data(), correct.data(), nullptr, 1.0f);
  EXPECT_NEAR(loss.download()[0], 2.126928, 1e-6);
  EXPECT_EQ(correct.download()[0], 0.0f);
}

TEST(CrossEntropy, ManyRowsMatchDoubleReference) {
  const int rows = 20000, classes = 3;  // the parallel path
  auto logits = random_vector(static_cast<std::size_t>(rows) * classes, 9);
  for (float& l : logits) l *= 5.0f;
  std::vector<int32_t> labels(rows);
  for (int i = 0; i < rows; ++i) labels[i] = (i * 7) % classes;
  const auto r = run_cross_entropy(logits, labels, classes, 1.0f);
  for (int i = 0; i < rows; i += 997) {
    const float* l = logits.data() + i * classes;
    double lse = 0.0;
    for (int j = 0; j < classes; ++j) lse += std::exp(static_cast<double>(l[j]));
    EXPECT_NEAR(r.loss[i], std::log(lse) - l[labels[i]], 1e-5) << "row " << i;
    for (int j = 0; j < classes; ++j) {
      const double p = std::exp(static_cast<double>(l[j])) / lse;
      EXPECT_NEAR(r.dlogits[i * classes + j], p - (j == labels[i]), 1e-6) << "row " << i;
    }
  }
}

// ---- per-subtask sums ---------------------------------------------------------------------

// task_sums on the CPU over host vectors, added onto `start` (2 * n_tasks values).
std::vector<double> run_task_sums(const std::vector<float>& loss, const std::vector<float>& correct,
                                  const std::vector<int32_t>& tasks, int n_tasks, const std::vector<double>& start) {
  CpuBackend backend;
  auto l = on(backend, loss);
  auto c = on(backend, correct);
  auto t = on(backend, tasks);
  auto sums = on(backend, start);
  backend.task_sums(l.data(), c.data(), t.data(), static_cast<int>(tasks.size()), n_tasks, sums.data());
  return sums.download();
}

TEST(TaskSums, AddsPerSubtaskLossAndCorrectSumsByHand) {
  // Rows (task, loss, correct): (2, 0.5, 1) (0, 1.25, 0) (2, 2, 1) (1, 0.25, 1) (0, 3, 0).
  // Loss sums: task 0: 1.25 + 3 = 4.25, task 1: 0.25, task 2: 0.5 + 2 = 2.5; correct sums 0, 1, 2.
  // Added onto (10, 20, 30 | 1, 2, 3): (14.25, 20.25, 32.5 | 1, 3, 5), every value exact in binary.
  const auto sums = run_task_sums({0.5f, 1.25f, 2.0f, 0.25f, 3.0f}, {1, 0, 1, 1, 0}, {2, 0, 2, 1, 0}, 3,
                                  {10, 20, 30, 1, 2, 3});
  EXPECT_EQ(sums, (std::vector<double>{14.25, 20.25, 32.5, 1, 3, 5}));
}

TEST(TaskSums, AbsentSubtaskAndZeroRowsLeaveTheirSumsAsTheyWere) {
  // Task 3 has no row: its sums keep their starting values. rows == 0 changes nothing.
  const auto sums = run_task_sums({0.75f, 1.5f}, {1, 1}, {1, 1}, 4, {0.5, 0.5, 0.5, 0.5, 7, 7, 7, 7});
  EXPECT_EQ(sums, (std::vector<double>{0.5, 2.75, 0.5, 0.5, 7, 9, 7, 7}));
  EXPECT_EQ(run_task_sums({}, {}, {}, 2, {1, 2, 3, 4}), (std::vector<double>{1, 2, 3, 4}));
}

TEST(TaskSums, ManyChunksMatchADoubleLoopWhateverTheThreadCount) {
  // 70001 rows: five chunks of 16384 rows summed by different threads, tasks in random order.
  const int rows = 70001, n_tasks = 7;
  std::mt19937 rng(31);
  std::vector<float> loss(rows), correct(rows);
  std::vector<int32_t> tasks(rows);
  std::vector<double> expected(2 * n_tasks, 0.0);
  for (int i = 0; i < rows; ++i) {
    tasks[i] = static_cast<int32_t>(rng() % n_tasks);
    loss[i] = std::uniform_real_distribution<float>(0.0f, 3.0f)(rng);
    correct[i] = static_cast<float>(rng() % 2);
    expected[tasks[i]] += loss[i];
    expected[n_tasks + tasks[i]] += correct[i];
  }
  const std::vector<double> start(2 * n_tasks, 0.0);
  const auto sums = run_task_sums(loss, correct, tasks, n_tasks, start);
  for (int j = 0; j < 2 * n_tasks; ++j) {
    EXPECT_GT(expected[j], 1000.0) << j;  // ~10000 rows per task: no empty sum
    EXPECT_NEAR(sums[j], expected[j], 1e-12 * expected[j]) << "sum " << j;
  }
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one_thread = run_task_sums(loss, correct, tasks, n_tasks, start);
  omp_set_num_threads(saved);
  EXPECT_EQ(one_thread, sums) << "the thread count changed the bits";
}

TEST(TaskSums, TaskIdOutsideTheRangeThrowsOutOfRangeAndLeavesSumsUntouched) {
  CpuBackend backend;
  auto loss = on(backend, std::vector<float>{1.0f, 2.0f});
  auto correct = on(backend, std::vector<float>{1.0f, 0.0f});
  const std::vector<double> start{4, 5, 6, 7, 8, 9};
  for (auto [n_tasks, bad] : {std::pair{3, 3}, std::pair{3, -1}, std::pair{0, 0}}) {
    auto tasks = on(backend, std::vector<int32_t>{0, bad});
    auto sums = on(backend, start);
    try {
      backend.task_sums(loss.data(), correct.data(), tasks.data(), 2, n_tasks, sums.data());
      ADD_FAILURE() << "no exception for task id " << bad << " with n_tasks " << n_tasks;
    } catch (const std::out_of_range& e) {
      EXPECT_NE(std::string(e.what()).find("task id lies outside [0, " + std::to_string(n_tasks) + ")"),
                std::string::npos)
          << e.what();
    }
    EXPECT_EQ(sums.download(), start) << "sums changed by a call that threw";
  }
}

// ---- sparse parity ------------------------------------------------------------------------

struct ParityFixture {
  static constexpr int n_tasks = 4, n_bits = 100, k = 3;  // 100 bits reach Philox block 1
  std::vector<int32_t> subsets;
  std::vector<uint32_t> thresholds{0x80000000u, 0xC0000000u, 0xF0000000u};  // p = .5 .25 .19 .06
  ParityFixture() {
    std::mt19937 rng(10);
    std::vector<int32_t> bits(n_bits);
    for (int i = 0; i < n_bits; ++i) bits[i] = i;
    for (int t = 0; t < n_tasks; ++t) {
      std::shuffle(bits.begin(), bits.end(), rng);
      subsets.insert(subsets.end(), bits.begin(), bits.begin() + k);
    }
  }
  ParityDraw draw(int32_t fixed_task) const {
    return testing::parity_draw(0x1234'5678'9ABCull, fixed_task, 300, n_tasks, n_bits, k);
  }
};

struct ParityBatch {
  std::vector<float> x;
  std::vector<int32_t> labels, tasks;
};

ParityBatch run_sparse_parity(const ParityFixture& f, const ParityDraw& draw, int count) {
  CpuBackend backend;
  auto subsets = on(backend, f.subsets);
  auto thresholds = on(backend, f.thresholds);
  Buffer<float> x(backend, static_cast<std::size_t>(count) * (f.n_tasks + f.n_bits));
  Buffer<int32_t> labels(backend, count), tasks(backend, count);
  backend.sparse_parity(draw, ParityTables{subsets.data(), thresholds.data()}, count, x.data(),
                        labels.data(), tasks.data());
  return {x.download(), labels.download(), tasks.download()};
}

TEST(SparseParity, OpAgreesWithParitySampleElementForElement) {
  const ParityFixture f;
  const ParityDraw draw = f.draw(-1);
  const int count = 2000, row = f.n_tasks + f.n_bits;
  const ParityBatch got = run_sparse_parity(f, draw, count);
  const ParityTables host_tables{f.subsets.data(), f.thresholds.data()};
  std::vector<float> x(row);
  for (int i = 0; i < count; ++i) {
    int32_t label = -1;
    const int32_t task = parity_sample(draw, host_tables, draw.first_sample + i, x.data(), &label);
    ASSERT_EQ(got.tasks[i], task) << "sample " << i;
    ASSERT_EQ(got.labels[i], label) << "sample " << i;
    ASSERT_TRUE(std::equal(x.begin(), x.end(), got.x.begin() + i * row)) << "sample " << i;
  }
  // Not a degenerate draw: every task and both labels occur.
  EXPECT_EQ(std::set<int32_t>(got.tasks.begin(), got.tasks.end()).size(), 4u);
  EXPECT_EQ(std::set<int32_t>(got.labels.begin(), got.labels.end()).size(), 2u);
}

TEST(SparseParity, LabelIsXorOfTheTaskSubsetBitsReadFromX) {
  const ParityFixture f;
  const int count = 1000, row = f.n_tasks + f.n_bits;
  for (int32_t fixed : {-1, 2}) {
    const ParityBatch got = run_sparse_parity(f, f.draw(fixed), count);
    for (int i = 0; i < count; ++i) {
      const float* x = got.x.data() + i * row;
      const int32_t task = got.tasks[i];
      if (fixed >= 0) {
        ASSERT_EQ(task, fixed);
      }
      for (int t = 0; t < f.n_tasks; ++t) ASSERT_EQ(x[t], t == task ? 1.0f : 0.0f);  // one-hot u
      int parity = 0;
      for (int j = 0; j < f.k; ++j) {
        parity ^= static_cast<int>(x[f.n_tasks + f.subsets[task * f.k + j]]);
      }
      ASSERT_EQ(got.labels[i], parity) << "sample " << i;
    }
  }
}

// ---- optimizer updates: one step by hand ----------------------------------------------------
// Shared inputs: w = (1, -2, 0.5), g = (0.1, 0.2, -0.3).

const std::vector<float> kW{1.0f, -2.0f, 0.5f};
const std::vector<float> kG{0.1f, 0.2f, -0.3f};

TEST(Optimizer, SgdPlainStepByHand) {
  CpuBackend backend;
  auto w = on(backend, kW);
  auto g = on(backend, kG);
  // w - 0.1 g = (0.99, -2.02, 0.53); no momentum buffer needed.
  backend.sgd_update(w.data(), g.data(), nullptr, 3, 0.1f, 0.0f, false, 0.0f);
  expect_all_near(w.download(), {0.99, -2.02, 0.53}, 1e-6);
}

TEST(Optimizer, SgdWeightDecayAddsToTheGradient) {
  CpuBackend backend;
  auto w = on(backend, kW);
  auto g = on(backend, kG);
  // g' = g + 0.5 w = (0.6, -0.8, -0.05); w - 0.1 g' = (0.94, -1.92, 0.505)
  backend.sgd_update(w.data(), g.data(), nullptr, 3, 0.1f, 0.0f, false, 0.5f);
  expect_all_near(w.download(), {0.94, -1.92, 0.505}, 1e-6);
}

TEST(Optimizer, SgdMomentumStepByHand) {
  CpuBackend backend;
  auto w = on(backend, kW);
  auto g = on(backend, kG);
  auto m = on(backend, std::vector<float>{0.5f, -0.5f, 1.0f});
  // m = 0.9 (0.5, -0.5, 1) + g = (0.55, -0.25, 0.6); w - 0.1 m = (0.945, -1.975, 0.44)
  backend.sgd_update(w.data(), g.data(), m.data(), 3, 0.1f, 0.9f, false, 0.0f);
  expect_all_near(m.download(), {0.55, -0.25, 0.6}, 1e-6);
  expect_all_near(w.download(), {0.945, -1.975, 0.44}, 1e-6);
}

TEST(Optimizer, SgdNesterovWithWeightDecayStepByHand) {
  CpuBackend backend;
  auto w = on(backend, kW);
  auto g = on(backend, kG);
  auto m = on(backend, std::vector<float>{0.5f, -0.5f, 1.0f});
  // g' = g + 0.01 w = (0.11, 0.18, -0.295); m = 0.9 m + g' = (0.56, -0.27, 0.605);
  // d = g' + 0.9 m = (0.614, -0.063, 0.2495); w - 0.1 d = (0.9386, -1.9937, 0.47505)
  backend.sgd_update(w.data(), g.data(), m.data(), 3, 0.1f, 0.9f, true, 0.01f);
  expect_all_near(m.download(), {0.56, -0.27, 0.605}, 1e-6);
  expect_all_near(w.download(), {0.9386, -1.9937, 0.47505}, 1e-6);
}

TEST(Optimizer, NmdStepByHand) {
  CpuBackend backend;
  auto w = on(backend, kW);
  auto g = on(backend, std::vector<float>{0.1f, -0.2f, 0.3f});
  auto m = on(backend, std::vector<float>{0.2f, -0.4f, 0.2f});
  // m = 0.5 m + g = (0.2, -0.4, 0.4), ||m|| = sqrt(0.04 + 0.16 + 0.16) = 0.6,
  // m / ||m|| = (1/3, -2/3, 2/3); w (1 - 0.3 * 0.1) = (0.97, -1.94, 0.485);
  // minus 0.3 (1/3, -2/3, 2/3) = (0.1, -0.2, 0.2)  ->  (0.87, -1.74, 0.285)
  backend.nmd_update(w.data(), g.data(), m.data(), 3, 0.3f, 0.5f, 0.1f);
  expect_all_near(m.download(), {0.2, -0.4, 0.4}, 1e-6);
  expect_all_near(w.download(), {0.87, -1.74, 0.285}, 1e-6);
}

TEST(Optimizer, NmdTakesNoStepWhenMomentumVanishes) {
  CpuBackend backend;
  auto w = on(backend, kW);
  auto g = on(backend, std::vector<float>{0.1f, -0.2f, 0.3f});
  auto m = on(backend, std::vector<float>{-0.2f, 0.4f, -0.6f});
  // m = 0.5 m + g = 0 exactly (halving is exact in binary): no direction, so w stays (1, -2, 0.5),
  // weight decay included, rather than becoming NaN.
  backend.nmd_update(w.data(), g.data(), m.data(), 3, 0.3f, 0.5f, 0.1f);
  EXPECT_EQ(w.download(), kW);
}

// Adam tests use beta1 = 0.5, beta2 = 0.75, eps = 0.1 so that bias correction and the placement
// of eps (outside the sqrt) change the result visibly.
struct AdamCase {
  std::vector<float> m0, v0;
  float lr, weight_decay;
  bool decoupled;
  int64_t t;
};

std::vector<float> run_adam(const AdamCase& c, std::vector<float>* m_out = nullptr) {
  CpuBackend backend;
  auto w = on(backend, kW);
  auto g = on(backend, kG);
  auto m = on(backend, c.m0);
  auto v = on(backend, c.v0);
  backend.adam_update(w.data(), g.data(), m.data(), v.data(), 3, c.lr, 0.5f, 0.75f, 0.1f,
                      c.weight_decay, c.decoupled, c.t);
  if (m_out) *m_out = m.download();
  return w.download();
}

TEST(Optimizer, AdamFirstStepByHand) {
  // L2: g' = g + 0.2 w = (0.3, -0.2, -0.2); m = 0.5 g' = (0.15, -0.1, -0.1);
  // v = 0.25 g'^2; m_hat = m / 0.5 = g', sqrt(v_hat) = sqrt(v / 0.25) = |g'|;
  // step = m_hat / (|g'| + 0.1) = (0.3/0.4, -0.2/0.3, -0.2/0.3) = (0.75, -2/3, -2/3);
  // w - 0.01 step = (0.9925, -1.993333, 0.506667)
  std::vector<float> m;
  const auto w = run_adam({{0, 0, 0}, {0, 0, 0}, 0.01f, 0.2f, false, 1}, &m);
  expect_all_near(m, {0.15, -0.1, -0.1}, 1e-6);
  expect_all_near(w, {0.9925, -1.9933333, 0.5066667}, 1e-6);
}

TEST(Optimizer, AdamSecondStepByHand) {
  // t = 2: bias corrections 1 - 0.5^2 = 0.75 and 1 - 0.75^2 = 0.4375. g' = (0.3, -0.2, -0.2).
  // m = 0.5 (0.2, -0.1, 0.05) + 0.5 g' = (0.25, -0.15, -0.075); m_hat = m / 0.75
  //   = (0.333333, -0.2, -0.1);
  // v = 0.75 (0.04, 0.01, 0.02) + 0.25 g'^2 = (0.0525, 0.0175, 0.025);
  //   sqrt(v / 0.4375) = (0.346410, 0.2, 0.239046);
  // step = m_hat / (sqrt(v_hat) + 0.1) = (0.746697, -0.666667, -0.294945);
  // w - 0.01 step = (0.992533, -1.993333, 0.502949)
  std::vector<float> m;
  const auto w = run_adam({{0.2f, -0.1f, 0.05f}, {0.04f, 0.01f, 0.02f}, 0.01f, 0.2f, false, 2}, &m);
  expect_all_near(m, {0.25, -0.15, -0.075}, 1e-6);
  expect_all_near(w, {0.9925330, -1.9933333, 0.5029495}, 1e-6);
}

TEST(Optimizer, AdamwFirstStepByHand) {
  // Decoupled: w (1 - 0.1 * 0.5) = (0.95, -1.9, 0.475) first, then the plain Adam step on g:
  // m_hat = g, sqrt(v_hat) = |g|, step = g / (|g| + 0.1) = (0.5, 0.666667, -0.75);
  // w - 0.1 step = (0.9, -1.966667, 0.55)
  const auto w = run_adam({{0, 0, 0}, {0, 0, 0}, 0.1f, 0.5f, true, 1});
  expect_all_near(w, {0.9, -1.9666667, 0.55}, 1e-6);
}

TEST(Optimizer, AdamwSecondStepByHand) {
  // m = 0.5 (0.2, -0.1, 0.05) + 0.5 g = (0.15, 0.05, -0.125); m_hat = m / 0.75
  //   = (0.2, 0.066667, -0.166667);
  // v = 0.75 (0.04, 0.01, 0.02) + 0.25 g^2 = (0.0325, 0.0175, 0.0375);
  //   sqrt(v / 0.4375) = (0.272554, 0.2, 0.292770);
  // step = (0.536835, 0.222222, -0.424337); w (0.95) - 0.1 step = (0.896317, -1.922222, 0.517434)
  const auto w = run_adam({{0.2f, -0.1f, 0.05f}, {0.04f, 0.01f, 0.02f}, 0.1f, 0.5f, true, 2});
  expect_all_near(w, {0.8963165, -1.9222222, 0.5174337}, 1e-6);
}

TEST(Optimizer, SignGdWithoutMomentumStepsBySignAndSignOfZeroIsZero) {
  CpuBackend backend;
  auto w = on(backend, std::vector<float>{1, -2, 0.5f, 3});
  auto g = on(backend, std::vector<float>{0.1f, -0.2f, 0.0f, 0.3f});
  // w (1 - 0.1 * 0.5) = (0.95, -1.9, 0.475, 2.85); sign(g) = (1, -1, 0, 1);
  // w - 0.1 sign(g) = (0.85, -1.8, 0.475, 2.75): the third weight only decays.
  backend.signgd_update(w.data(), g.data(), nullptr, 4, 0.1f, 0.0f, 0.5f);
  expect_all_near(w.download(), {0.85, -1.8, 0.475, 2.75}, 1e-6);
}

TEST(Optimizer, SignGdFollowsTheSignOfTheMomentum) {
  CpuBackend backend;
  auto w = on(backend, std::vector<float>{1, -2, 0.5f, 3});
  auto g = on(backend, std::vector<float>{0.1f, -0.2f, 0.0f, 0.3f});
  auto m = on(backend, std::vector<float>{0.4f, 0.6f, -0.2f, -0.8f});
  // m = 0.5 m + g = (0.3, 0.1, -0.1, -0.1): signs (+, +, -, -), two of them against g;
  // w - 0.1 sign(m) = (0.9, -2.1, 0.6, 3.1)
  backend.signgd_update(w.data(), g.data(), m.data(), 4, 0.1f, 0.5f, 0.0f);
  expect_all_near(m.download(), {0.3, 0.1, -0.1, -0.1}, 1e-6);
  expect_all_near(w.download(), {0.9, -2.1, 0.6, 3.1}, 1e-6);
}

TEST(Optimizer, MomentumAccumulateByHand) {
  CpuBackend backend;
  auto m = on(backend, std::vector<float>{0.5f, -0.5f, 1.0f});
  auto g = on(backend, kG);
  Buffer<float> out(backend, 3);
  // m = 0.9 m + g = (0.55, -0.25, 0.6); out = m
  backend.momentum_accumulate(m.data(), g.data(), out.data(), 3, 0.9f, false);
  expect_all_near(m.download(), {0.55, -0.25, 0.6}, 1e-6);
  expect_all_near(out.download(), {0.55, -0.25, 0.6}, 1e-6);
}

TEST(Optimizer, MomentumAccumulateNesterovByHand) {
  CpuBackend backend;
  auto m = on(backend, std::vector<float>{0.5f, -0.5f, 1.0f});
  auto g = on(backend, kG);
  Buffer<float> out(backend, 3);
  // m = (0.55, -0.25, 0.6); out = g + 0.9 m = (0.1 + 0.495, 0.2 - 0.225, -0.3 + 0.54)
  //   = (0.595, -0.025, 0.24)
  backend.momentum_accumulate(m.data(), g.data(), out.data(), 3, 0.9f, true);
  expect_all_near(m.download(), {0.55, -0.25, 0.6}, 1e-6);
  expect_all_near(out.download(), {0.595, -0.025, 0.24}, 1e-6);
}

TEST(Optimizer, AdamOnALongVectorMatchesTheScalarFormula) {
  CpuBackend backend;
  const std::size_t n = 100003;  // the parallel, vectorised path with a remainder
  const auto w0 = random_vector(n, 11), g0 = random_vector(n, 12), m0 = random_vector(n, 13);
  auto v0 = random_vector(n, 14);
  for (float& v : v0) v = v * v;
  auto w = on(backend, w0);
  auto g = on(backend, g0);
  auto m = on(backend, m0);
  auto v = on(backend, v0);
  backend.adam_update(w.data(), g.data(), m.data(), v.data(), n, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f,
                      true, 3);
  const double bc1 = 1 - std::pow(0.9, 3), bc2 = 1 - std::pow(0.999, 3);
  std::vector<double> expected(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double mi = 0.9 * m0[i] + 0.1 * g0[i];
    const double vi = 0.999 * v0[i] + 0.001 * g0[i] * g0[i];
    expected[i] = w0[i] * (1 - 0.01 * 0.1) - 0.01 * (mi / bc1) / (std::sqrt(vi / bc2) + 1e-8);
  }
  expect_all_near(w.download(), expected, 1e-5);
}

}  // namespace
}  // namespace skillrun
