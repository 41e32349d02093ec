// Backend conformance, ggml's test-backend-ops idea: every op-level case runs on every backend
// under test (backends_under_test.h) and is compared with the CPU backend on the same inputs.
//  - Data generation: bit-identical. fp32 ops: normalised error ||a - b|| / ||b|| <= the
//    backend's fp32 tolerance (1e-5; 1e-6 for the reference). Matrix products: the backend's
//    gemm tolerance (tf32 2e-3, bf16 2e-2).
//  - Every output and in-place buffer is poisoned with NaN before the run, so an element a
//    backend forgets to write shows up as NaN on one side only; where the CPU result is NaN by
//    contract (gemm's padding between rows) the other backend must leave NaN there too.
//  - Inputs are random in [-1, 1) (never all zero). The CPU entry compares the CPU with itself:
//    it checks the harness and that the CPU backend is deterministic. The reference entry (plain
//    loops in double, tests/support/reference_backend.h) holds the CPU to the documented maths,
//    with or without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "support/on_backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backends_under_test.h"
#include "support/parity_case.h"
#include "support/test_data.h"
#include "support/update_args.h"
#include "core/error.h"
#include "optim/msign.h"
#include "backend/sparse_parity_gen.h"
#include "support/ns_tiled_reference.h"

namespace skillrun::conformance {
namespace {

using HostVec = std::vector<float>;
constexpr float kPoison = std::numeric_limits<float>::quiet_NaN();

HostVec random_vector(std::size_t n, unsigned seed, float scale = 1.0f) {
  return testing::uniform_floats(n, seed, -scale, scale);
}

HostVec poisoned(std::size_t n) { return HostVec(n, kPoison); }

std::size_t count_nan(const HostVec& v) {
  return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [](float x) { return std::isnan(x); }));
}


using skillrun::testing::on;

// Runs `op` on `backend` over copies of `buffers` (inputs, poisoned outputs and in-place state
// alike) and returns every buffer as it is afterwards.
std::vector<HostVec> run_on(Backend& backend, const std::vector<HostVec>& buffers,
                            const std::function<void(Backend&, std::vector<float*>&)>& op) {
  std::vector<Buffer<float>> device;
  std::vector<float*> pointers;
  for (const HostVec& h : buffers) {
    device.push_back(on(backend, h));
    pointers.push_back(device.back().data());
  }
  op(backend, pointers);
  backend.synchronize();
  std::vector<HostVec> out;
  for (const Buffer<float>& d : device) out.push_back(d.download());
  return out;
}

class BackendOps : public BackendCase {
 protected:
  // Runs the case on the CPU and on the backend under test and compares every buffer.
  void compare(const std::string& what, const std::vector<HostVec>& buffers,
               const std::function<void(Backend&, std::vector<float*>&)>& op, double tolerance,
               const std::vector<std::size_t>& must_write = {}) {
    const auto ref = run_on(cpu_, buffers, op);
    const auto got = run_on(*backend_, buffers, op);
    for (std::size_t i : must_write)
      EXPECT_EQ(count_nan(ref[i]), 0u) << what << ": the CPU reference left output " << i << " unwritten";
    for (std::size_t i = 0; i < buffers.size(); ++i)
      expect_close(what + ", buffer " + std::to_string(i), got[i], ref[i], tolerance);
  }

  double gemm_tolerance() const { return under_test_->gemm_tolerance; }
  double fp32_tolerance() const { return under_test_->fp32_tolerance; }

};

// ---- gemm ---------------------------------------------------------------------------------

// C (m x n, ldc = n + 5) = alpha op(A) op(B) + beta C with A, B stored with 3 and 4 spare
// columns per row. The spare columns of C are NaN and must stay NaN (never written); with
// beta == 0 the whole of C starts as NaN and must not be read.
void gemm_case(Trans ta, Trans tb, float beta, double tolerance,
               const std::function<void(const std::string&, const std::vector<HostVec>&,
                                        const std::function<void(Backend&, std::vector<float*>&)>&, double)>& compare) {
  const int m = 37, n = 29, k = 23;
  const int a_rows = ta == Trans::No ? m : k, a_cols = ta == Trans::No ? k : m;
  const int b_rows = tb == Trans::No ? k : n, b_cols = tb == Trans::No ? n : k;
  const int lda = a_cols + 3, ldb = b_cols + 4, ldc = n + 5;
  HostVec A = random_vector(static_cast<std::size_t>(a_rows) * lda, 1);
  HostVec B = random_vector(static_cast<std::size_t>(b_rows) * ldb, 2);
  HostVec C = beta == 0.0f ? poisoned(static_cast<std::size_t>(m) * ldc) : random_vector(std::size_t(m) * ldc, 3);
  for (int i = 0; i < m; ++i)
    for (int j = n; j < ldc; ++j) C[static_cast<std::size_t>(i) * ldc + j] = kPoison;
  compare(
      std::string("gemm ta=") + (ta == Trans::Yes ? "T" : "N") + " tb=" + (tb == Trans::Yes ? "T" : "N") +
          " beta=" + std::to_string(beta),
      {A, B, C},
      [=](Backend& b, std::vector<float*>& p) {
        b.gemm(ta, tb, m, n, k, 0.75f, p[0], lda, p[1], ldb, beta, p[2], ldc);
      },
      tolerance);
}

TEST_P(BackendOps, GemmAllTransposesWithPaddingAndBeta) {
  auto cmp = [this](const std::string& w, const std::vector<HostVec>& b,
                    const std::function<void(Backend&, std::vector<float*>&)>& op,
                    double tol) { compare(w, b, op, tol); };
  for (Trans ta : {Trans::No, Trans::Yes})
    for (Trans tb : {Trans::No, Trans::Yes})
      for (float beta : {0.5f, 0.0f}) gemm_case(ta, tb, beta, gemm_tolerance(), cmp);
}

TEST_P(BackendOps, GemmEmptyInnerDimensionScalesC) {
  // k == 0: C = beta C; beta == 0 gives zeros without reading the NaN in C.
  const int m = 5, n = 7, ldc = 9;
  HostVec C = random_vector(std::size_t(m) * ldc, 4);
  compare(
      "gemm k=0 beta=2", {HostVec(1, 1.0f), HostVec(1, 1.0f), C},
      [&](Backend& b, std::vector<float*>& p) {
        b.gemm(Trans::No, Trans::No, m, n, 0, 1.0f, p[0], 1, p[1], n, 2.0f, p[2], ldc);
      },
      fp32_tolerance());
  compare(
      "gemm k=0 beta=0", {HostVec(1, 1.0f), HostVec(1, 1.0f), poisoned(std::size_t(m) * ldc)},
      [&](Backend& b, std::vector<float*>& p) {
        b.gemm(Trans::No, Trans::No, m, n, 0, 1.0f, p[0], 1, p[1], n, 0.0f, p[2], n);
      },
      fp32_tolerance());
}

// The run axis of a pack: 5 products of A_r (13 x 11) B_r^T (B_r stored 9 x 11), B shared
// (stride 0) or one per product, C padded (ldc 12) with a gap between products (stride 13 * 12 + 7) that
// stays NaN, beta 0 (C not read) or 0.5. Compared with the CPU, which runs one gemm per product.
TEST_P(BackendOps, GemmStridedBatchedOverRunsWithASharedOrPerRunOperand) {
  const int m = 13, n = 9, k = 11, batch = 5, lda = k + 2, ldb = k + 1, ldc = n + 3;
  const int64_t stride_a = int64_t{m} * lda + 3, stride_c = int64_t{m} * ldc + 7;
  for (const bool shared_b : {true, false}) {
    for (const float beta : {0.0f, 0.5f}) {
      const int64_t stride_b = shared_b ? 0 : int64_t{n} * ldb + 1;
      const HostVec A = random_vector(static_cast<std::size_t>(stride_a * batch), 31);
      const HostVec B = random_vector(static_cast<std::size_t>(shared_b ? int64_t{n} * ldb : stride_b * batch), 32);
      HostVec C = beta == 0.0f ? poisoned(static_cast<std::size_t>(stride_c * batch))
                               : random_vector(static_cast<std::size_t>(stride_c * batch), 33);
      for (int r = 0; r < batch; ++r)  // the padding and the gaps must never be written
        for (int64_t e = 0; e < stride_c; ++e)
          if (e >= int64_t{m} * ldc || e % ldc >= n) C[static_cast<std::size_t>(r * stride_c + e)] = kPoison;
      compare(
          std::string("gemm_strided_batched shared_b=") + (shared_b ? "1" : "0") + " beta=" + std::to_string(beta),
          {A, B, C},
          [=](Backend& b, std::vector<float*>& p) {
            b.gemm_strided_batched(Trans::No, Trans::Yes, m, n, k, 1.25f, p[0], lda, stride_a, p[1], ldb, stride_b,
                                   beta, p[2], ldc, stride_c, batch);
          },
          gemm_tolerance());
    }
  }
}

// ---- elementwise and reductions -----------------------------------------------------------

constexpr std::size_t kLarge = 300007;  // several thousand blocks; not a multiple of anything

TEST_P(BackendOps, Fill) {
  compare("fill", {poisoned(kLarge)}, [](Backend& b, std::vector<float*>& p) { b.fill(p[0], kLarge, -2.5f); }, 0.0,
          {0});
}

TEST_P(BackendOps, AxpbyWithAndWithoutReadingY) {
  compare("axpby beta=0.7", {random_vector(kLarge, 5), random_vector(kLarge, 6)},
          [](Backend& b, std::vector<float*>& p) { b.axpby(p[0], p[1], kLarge, -1.5f, 0.7f); }, fp32_tolerance(), {0});
  compare("axpby beta=0 (y is NaN, not read)", {poisoned(kLarge), random_vector(kLarge, 7)},
          [](Backend& b, std::vector<float*>& p) { b.axpby(p[0], p[1], kLarge, 3.0f, 0.0f); }, fp32_tolerance(), {0});
}

TEST_P(BackendOps, SumSquaresInDouble) {
  for (std::size_t n : {std::size_t{1}, std::size_t{255}, kLarge, std::size_t{1} << 22}) {
    const HostVec x = random_vector(n, 8);
    Buffer<float> on_cpu = on(cpu_, x), on_backend = on(*backend_, x);
    const double ref = cpu_.sum_squares(on_cpu.data(), n);
    const double got = backend_->sum_squares(on_backend.data(), n);
    // Both accumulate in double; only the summation order differs: ~n * 1e-16 relative.
    EXPECT_NEAR(got, ref, 1e-12 * ref) << "n = " << n;
  }
  EXPECT_EQ(backend_->sum_squares(static_cast<const float*>(nullptr), 0), 0.0);
}

TEST_P(BackendOps, BiasActivationWithAndWithoutRelu) {
  for (bool relu : {true, false}) {
    const int rows = 1001, cols = 250;
    compare(std::string("bias_activation relu=") + (relu ? "1" : "0"),
            {random_vector(std::size_t(rows) * cols, 9), random_vector(cols, 10)},
            [=](Backend& b, std::vector<float*>& p) { b.bias_activation(p[0], p[1], rows, cols, relu); },
            fp32_tolerance(), {0});
  }
}

TEST_P(BackendOps, ReluBackward) {
  compare("relu_backward", {random_vector(kLarge, 11), random_vector(kLarge, 12)},
          [](Backend& b, std::vector<float*>& p) { b.relu_backward(p[0], p[1], kLarge); }, fp32_tolerance(), {0});
}

TEST_P(BackendOps, ColumnSumsNarrowWideAndTiny) {
  // (10000, 2): the logits gradient, split over row chunks; (300, 2000): many column tiles;
  // (5, 70): a ragged last tile; (1, 33): one row.
  for (auto [rows, cols] : {std::pair{10000, 2}, std::pair{300, 2000}, std::pair{5, 70}, std::pair{1, 33}}) {
    compare("column_sums " + std::to_string(rows) + "x" + std::to_string(cols),
            {random_vector(std::size_t(rows) * cols, 13), poisoned(cols)},
            [=](Backend& b, std::vector<float*>& p) { b.column_sums(p[0], rows, cols, p[1]); }, fp32_tolerance(), {1});
  }
}

TEST_P(BackendOps, CrossEntropyLossCorrectAndGradient) {
  for (auto [rows, classes] : {std::pair{10000, 2}, std::pair{301, 5}}) {
    std::mt19937 rng(14);
    std::vector<int32_t> labels(static_cast<std::size_t>(rows));
    for (int32_t& l : labels) l = static_cast<int32_t>(rng() % static_cast<unsigned>(classes));
    HostVec logits = random_vector(std::size_t(rows) * classes, 15, 6.0f);
    // Ties count as wrong on every backend: rows 0 and 1 have all logits equal.
    for (int j = 0; j < classes; ++j) logits[j] = logits[static_cast<std::size_t>(classes) + j] = 0.25f;
    for (bool with_grad : {true, false}) {
      auto op = [&, rows = rows, classes = classes](Backend& b, std::vector<float*>& p) {
        Buffer<int32_t> l = on(b, labels);
        b.cross_entropy(p[0], l.data(), rows, classes, p[1], p[2], with_grad ? p[3] : nullptr, 1.0f / rows);
        b.synchronize();
      };
      const std::string what = "cross_entropy " + std::to_string(rows) + "x" + std::to_string(classes) +
                               (with_grad ? " with grad" : " no grad");
      const std::size_t n = static_cast<std::size_t>(rows);
      const auto ref = run_on(cpu_, {logits, poisoned(n), poisoned(n), poisoned(n * classes)}, op);
      const auto got = run_on(*backend_, {logits, poisoned(n), poisoned(n), poisoned(n * classes)}, op);
      EXPECT_EQ(count_nan(ref[1]), 0u);
      EXPECT_EQ(got[2], ref[2]) << what << ": correct flags differ";
      EXPECT_EQ(got[2][0], 0.0f) << what << ": a tie must count as wrong";
      expect_close(what + " loss", got[1], ref[1], fp32_tolerance());
      expect_close(what + " dlogits", got[3], ref[3], fp32_tolerance());
    }
  }
}

// ---- the run axis of a pack --------------------------------------------------------------
// Each *_runs op over 3 runs with their own data, laid out at strides with NaN gaps between the
// runs' slices (a run writing outside its slice, or reading a neighbour's, shows): on the same
// backend the result equals one call per run bit for bit (a run computes what it computes
// alone), and the whole agrees with the CPU backend within the fp32 tolerance.
namespace run_axis {
constexpr int kRuns = 3;

// Runs `many` (one *_runs call) and `each` (one call per run) on `backend` from the same buffers.
void expect_runs_equal_calls(Backend& backend, const std::string& what, const std::vector<HostVec>& buffers,
                             const std::function<void(Backend&, std::vector<float*>&)>& many,
                             const std::function<void(Backend&, std::vector<float*>&)>& each) {
  const auto a = run_on(backend, buffers, many);
  const auto b = run_on(backend, buffers, each);
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    for (std::size_t e = 0; e < a[i].size(); ++e) {
      const bool same = (std::isnan(a[i][e]) && std::isnan(b[i][e])) || a[i][e] == b[i][e];
      if (!same) {
        ADD_FAILURE() << what << ": buffer " << i << " element " << e << ": " << a[i][e] << " (one call for "
                      << kRuns << " runs) vs " << b[i][e] << " (one call per run)";
        break;
      }
    }
  }
}

// n values per run at `stride` (> n: the gap stays NaN), random per run.
HostVec strided(std::size_t n, std::size_t stride, unsigned seed, float scale = 1.0f) {
  HostVec v = poisoned(stride * (kRuns - 1) + n);
  for (int r = 0; r < kRuns; ++r) {
    const HostVec part = random_vector(n, seed + 101u * static_cast<unsigned>(r), scale);
    std::copy(part.begin(), part.end(), v.begin() + static_cast<std::ptrdiff_t>(r * stride));
  }
  return v;
}
}  // namespace run_axis

TEST_P(BackendOps, RunAxisOfBiasActivationAndReluBackward) {
  using namespace run_axis;
  const int rows = 300, cols = 70;
  const std::size_t n = std::size_t(rows) * cols, sh = n + 37, sb = cols + 5;
  for (bool relu : {true, false}) {
    const std::vector<HostVec> buffers = {strided(n, sh, 21), strided(cols, sb, 22)};
    const auto many = [=](Backend& b, std::vector<float*>& p) {
      b.bias_activation_runs(p[0], sh, p[1], sb, rows, cols, relu, kRuns);
    };
    const auto each = [=](Backend& b, std::vector<float*>& p) {
      for (int r = 0; r < kRuns; ++r) b.bias_activation(p[0] + r * sh, p[1] + r * sb, rows, cols, relu);
    };
    expect_runs_equal_calls(*backend_, std::string("bias_activation_runs relu=") + (relu ? "1" : "0"), buffers, many,
                            each);
    compare("bias_activation_runs vs the CPU", buffers, many, fp32_tolerance());
  }
  // relu_backward with H shared by the runs (stride 0) and dH per run.
  const std::vector<HostVec> buffers = {strided(n, sh, 23), random_vector(n, 24)};
  const auto many = [=](Backend& b, std::vector<float*>& p) { b.relu_backward_runs(p[0], sh, p[1], 0, n, kRuns); };
  const auto each = [=](Backend& b, std::vector<float*>& p) {
    for (int r = 0; r < kRuns; ++r) b.relu_backward(p[0] + r * sh, p[1], n);
  };
  expect_runs_equal_calls(*backend_, "relu_backward_runs", buffers, many, each);
  compare("relu_backward_runs vs the CPU", buffers, many, fp32_tolerance());
}

TEST_P(BackendOps, RunAxisOfColumnSums) {
  using namespace run_axis;
  // (10000, 2): row chunks with a workspace per run; (300, 250): a pack's hidden bias gradient.
  for (auto [rows, cols] : {std::pair{10000, 2}, std::pair{300, 250}}) {
    const std::size_t n = std::size_t(rows) * cols, sa = n + 64, so = std::size_t(cols) + 3;
    const std::vector<HostVec> buffers = {strided(n, sa, 25), poisoned(so * (kRuns - 1) + cols)};
    const auto many = [=](Backend& b, std::vector<float*>& p) {
      b.column_sums_runs(p[0], sa, rows, cols, p[1], so, kRuns);
    };
    const auto each = [=](Backend& b, std::vector<float*>& p) {
      for (int r = 0; r < kRuns; ++r) b.column_sums(p[0] + r * sa, rows, cols, p[1] + r * so);
    };
    const std::string what = "column_sums_runs " + std::to_string(rows) + "x" + std::to_string(cols);
    expect_runs_equal_calls(*backend_, what, buffers, many, each);
    compare(what + " vs the CPU", buffers, many, fp32_tolerance());
  }
}

TEST_P(BackendOps, RunAxisOfCrossEntropyWithSharedLabels) {
  using namespace run_axis;
  const int rows = 1000, classes = 2;
  const std::size_t nl = std::size_t(rows) * classes, sl = nl + 20, sr = std::size_t(rows) + 9, sd = nl + 11;
  std::mt19937 rng(26);
  std::vector<int32_t> labels(static_cast<std::size_t>(rows));
  for (int32_t& l : labels) l = static_cast<int32_t>(rng() % classes);
  const std::vector<HostVec> buffers = {strided(nl, sl, 27, 6.0f), poisoned(sr * (kRuns - 1) + rows),
                                        poisoned(sr * (kRuns - 1) + rows), poisoned(sd * (kRuns - 1) + nl)};
  for (bool with_grad : {true, false}) {
    const auto many = [&, with_grad](Backend& b, std::vector<float*>& p) {
      Buffer<int32_t> l = on(b, labels);
      b.cross_entropy_runs(p[0], sl, l.data(), rows, classes, p[1], p[2], sr, with_grad ? p[3] : nullptr, sd,
                           1.0f / rows, kRuns);
      b.synchronize();
    };
    const auto each = [&, with_grad](Backend& b, std::vector<float*>& p) {
      Buffer<int32_t> l = on(b, labels);
      for (int r = 0; r < kRuns; ++r)
        b.cross_entropy(p[0] + r * sl, l.data(), rows, classes, p[1] + r * sr, p[2] + r * sr,
                        with_grad ? p[3] + r * sd : nullptr, 1.0f / rows);
      b.synchronize();
    };
    const std::string what = std::string("cross_entropy_runs") + (with_grad ? " with grad" : " no grad");
    expect_runs_equal_calls(*backend_, what, buffers, many, each);
    compare(what + " vs the CPU", buffers, many, fp32_tolerance());
  }
}

TEST_P(BackendOps, CrossEntropyLargeLogitsStayFinite) {
  // Logits of +-1000: exp would overflow without the max shift. Loss and gradient must be finite
  // and agree; a row whose top two logits tie exactly counts as wrong on both.
  const int rows = 257, classes = 3;
  std::mt19937 rng(16);
  std::vector<int32_t> labels(static_cast<std::size_t>(rows));
  for (int32_t& l : labels) l = static_cast<int32_t>(rng() % static_cast<unsigned>(classes));
  HostVec logits = random_vector(std::size_t(rows) * classes, 17, 1000.0f);
  logits[0] = logits[1] = 1000.0f;  // row 0: a tie at the top, whatever the label
  logits[2] = -1000.0f;
  labels[0] = 1;
  auto op = [&](Backend& b, std::vector<float*>& p) {
    Buffer<int32_t> l = on(b, labels);
    b.cross_entropy(p[0], l.data(), rows, classes, p[1], p[2], p[3], 1.0f / rows);
    b.synchronize();
  };
  const std::size_t n = static_cast<std::size_t>(rows);
  const auto ref = run_on(cpu_, {logits, poisoned(n), poisoned(n), poisoned(n * classes)}, op);
  const auto got = run_on(*backend_, {logits, poisoned(n), poisoned(n), poisoned(n * classes)}, op);
  for (std::size_t i : {1u, 2u, 3u}) {
    EXPECT_TRUE(std::all_of(ref[i].begin(), ref[i].end(), [](float x) { return std::isfinite(x); })) << i;
  }
  EXPECT_EQ(got[2], ref[2]) << "large logits: correct flags differ";
  EXPECT_EQ(got[2][0], 0.0f) << "large logits: a tie must count as wrong";
  expect_close("cross_entropy large logits loss", got[1], ref[1], fp32_tolerance());
  expect_close("cross_entropy large logits dlogits", got[3], ref[3], fp32_tolerance());
}

TEST_P(BackendOps, CrossEntropyBadLabelThrows) {
  // The CPU throws at the call, the CUDA backend at the next synchronising call; both throw
  // std::out_of_range, once, and stay usable. classes == 0 makes every label bad.
  for (auto [classes, bad] : {std::pair{2, 2}, std::pair{2, -1}, std::pair{0, 0}}) {
    Buffer<float> logits = on(*backend_, HostVec(4, 0.5f)), loss(*backend_, 2), correct(*backend_, 2);
    Buffer<int32_t> labels = on(*backend_, std::vector<int32_t>{0, bad});
    EXPECT_THROW(
        {
          backend_->cross_entropy(logits.data(), labels.data(), 2, classes, loss.data(), correct.data(), nullptr,
                                  1.0f);
          backend_->synchronize();
        },
        std::out_of_range)
        << "classes " << classes << ", label " << bad;
    EXPECT_NO_THROW(backend_->synchronize()) << "reported once";
  }
}

// ---- per-subtask sums ---------------------------------------------------------------------
// Doubles in and out, so not through run_on/compare: each case adds onto non-zero starting sums
// in two calls (rows [0, split), then the rest, as the evaluator adds chunk by chunk), on the
// CPU and on the backend under test. Both are checked against a double host loop (1e-12
// relative: only the summation order differs), and the backend against a second run of itself
// (bit-identical: fixed grouping and order).

std::vector<double> task_sums_twice(Backend& b, const HostVec& loss, const HostVec& correct,
                                    const std::vector<int32_t>& tasks, int n_tasks, const std::vector<double>& start) {
  const int rows = static_cast<int>(tasks.size()), split = rows / 3;
  Buffer<float> l = on(b, loss), c = on(b, correct);
  Buffer<int32_t> t = on(b, tasks);
  Buffer<double> sums = on(b, start);
  b.task_sums(l.data(), c.data(), t.data(), split, n_tasks, sums.data());
  b.task_sums(l.data() + split, c.data() + split, t.data() + split, rows - split, n_tasks, sums.data());
  b.synchronize();
  return sums.download();
}

TEST_P(BackendOps, TaskSumsPerSubtaskInDouble) {
  // (50000, 5) task-major: an eval set; (10000, 50) random: a training batch of the 50-subtask
  // configs; (3001, 700) random: more subtasks than a block has threads, some without a row;
  // (1, 1): one row (and a first call with zero rows).
  for (auto [rows, n_tasks, task_major] : {std::tuple{50000, 5, true}, std::tuple{10000, 50, false},
                                           std::tuple{3001, 700, false}, std::tuple{1, 1, false}}) {
    std::mt19937 rng(80u + static_cast<unsigned>(n_tasks));
    std::vector<int32_t> tasks(static_cast<std::size_t>(rows));
    HostVec loss = random_vector(tasks.size(), 81, 2.0f), correct(tasks.size());
    std::vector<double> start(2 * static_cast<std::size_t>(n_tasks)), expected;
    for (std::size_t j = 0; j < start.size(); ++j) start[j] = 0.5 + static_cast<double>(j);
    expected = start;
    for (int i = 0; i < rows; ++i) {
      tasks[i] = task_major ? static_cast<int32_t>(static_cast<int64_t>(i) * n_tasks / rows)
                            : static_cast<int32_t>(rng() % static_cast<unsigned>(n_tasks));
      loss[i] = std::abs(loss[i]) + 0.01f;  // positive, as losses are: no cancellation in the sums
      correct[i] = static_cast<float>(rng() % 2);
      expected[tasks[i]] += loss[i];
      expected[n_tasks + tasks[i]] += correct[i];
    }
    const std::string what = "task_sums " + std::to_string(rows) + " rows, " + std::to_string(n_tasks) + " tasks";
    const auto ref = task_sums_twice(cpu_, loss, correct, tasks, n_tasks, start);
    const auto got = task_sums_twice(*backend_, loss, correct, tasks, n_tasks, start);
    ASSERT_EQ(got.size(), expected.size()) << what;
    for (std::size_t j = 0; j < expected.size(); ++j) {
      EXPECT_NEAR(ref[j], expected[j], 1e-12 * expected[j]) << what << ", cpu, sum " << j;
      EXPECT_NEAR(got[j], expected[j], 1e-12 * expected[j]) << what << ", sum " << j;
    }
    EXPECT_EQ(task_sums_twice(*backend_, loss, correct, tasks, n_tasks, start), got) << what << ": not reproducible";
  }
}

TEST_P(BackendOps, TaskSumsBadTaskIdThrows) {
  // As cross_entropy's bad label: std::out_of_range at the call on the CPU, at the next sync on
  // CUDA; once; the backend stays usable. n_tasks == 0 makes every id bad.
  for (auto [n_tasks, bad] : {std::pair{3, 3}, std::pair{3, -1}, std::pair{0, 0}}) {
    Buffer<float> loss = on(*backend_, HostVec{0.5f, 0.25f}), correct = on(*backend_, HostVec{1.0f, 0.0f});
    Buffer<int32_t> tasks = on(*backend_, std::vector<int32_t>{0, bad});
    Buffer<double> sums = on(*backend_, std::vector<double>{1, 2, 3, 4, 5, 6});
    try {
      backend_->task_sums(loss.data(), correct.data(), tasks.data(), 2, n_tasks, sums.data());
      backend_->synchronize();
      ADD_FAILURE() << "no exception for task id " << bad << " with n_tasks " << n_tasks;
    } catch (const std::out_of_range& e) {
      EXPECT_NE(std::string(e.what()).find("task id lies outside [0, "), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(backend_->synchronize()) << "reported once";
  }
}

TEST_P(BackendOps, CopyAndRoundTrip) {
  const HostVec x = random_vector(kLarge, 18);
  Buffer<float> a = on(*backend_, x), b(*backend_, kLarge);
  backend_->copy(b.data(), a.data(), kLarge * sizeof(float));
  backend_->copy(b.data(), b.data(), kLarge * sizeof(float));  // a self-copy is a no-op
  EXPECT_EQ(b.download(), x);
}

// ---- optimizer updates --------------------------------------------------------------------
// Three steps with a different gradient each; state compared after step 1 and after step 3.

constexpr std::size_t kParams = 70001;

void three_steps(const std::string& what, int buffers_after_gradients,
                 const std::function<void(Backend&, std::vector<float*>&, int step)>& update,
                 const std::function<void(const std::string&, const std::vector<HostVec>&,
                                          const std::function<void(Backend&, std::vector<float*>&)>&)>& compare) {
  // Buffers: w, g1, g2, g3, then the state (m, v), which starts at small non-zero values.
  std::vector<HostVec> buffers = {random_vector(kParams, 20), random_vector(kParams, 21), random_vector(kParams, 22),
                                  random_vector(kParams, 23)};
  for (int s = 0; s < buffers_after_gradients; ++s) {
    HostVec state = random_vector(kParams, 30 + static_cast<unsigned>(s), 0.01f);
    if (s == 1)
      for (float& v : state) v = v * v;  // v (Adam's second moment) is non-negative
    buffers.push_back(state);
  }
  for (int steps : {1, 3}) {
    compare(what + " t=" + std::to_string(steps), buffers, [=](Backend& b, std::vector<float*>& p) {
      for (int s = 1; s <= steps; ++s) update(b, p, s);
    });
  }
}

TEST_P(BackendOps, OptimizerUpdatesAtStepOneAndThree) {
  auto cmp = [this](const std::string& w, const std::vector<HostVec>& b,
                    const std::function<void(Backend&, std::vector<float*>&)>& op) {
    compare(w, b, op, fp32_tolerance(), {0});
  };
  // p[0] = w, p[s] = g_s, p[4] = m, p[5] = v.
  three_steps(
      "sgd plain", 0,
      [](Backend& b, std::vector<float*>& p, int s) {
        b.sgd_update(p[0], p[s], nullptr, kParams, 0.1f, 0.0f, false, 0.01f);
      },
      cmp);
  three_steps(
      "sgd momentum", 1,
      [](Backend& b, std::vector<float*>& p, int s) {
        b.sgd_update(p[0], p[s], p[4], kParams, 0.1f, 0.9f, false, 0.01f);
      },
      cmp);
  three_steps(
      "sgd nesterov", 1,
      [](Backend& b, std::vector<float*>& p, int s) {
        b.sgd_update(p[0], p[s], p[4], kParams, 0.1f, 0.9f, true, 0.0f);
      },
      cmp);
  three_steps(
      "nmd", 1,
      [](Backend& b, std::vector<float*>& p, int s) { b.nmd_update(p[0], p[s], p[4], kParams, 0.01f, 0.9f, 0.1f); },
      cmp);
  for (bool decoupled : {true, false}) {
    three_steps(
        std::string("adam decoupled=") + (decoupled ? "1" : "0"), 2,
        [=](Backend& b, std::vector<float*>& p, int s) {
          b.adam_update(p[0], p[s], p[4], p[5], kParams, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, decoupled, s);
        },
        cmp);
  }
  three_steps(
      "signgd momentum 0", 1,
      [](Backend& b, std::vector<float*>& p, int s) { b.signgd_update(p[0], p[s], p[4], kParams, 0.01f, 0.0f, 0.1f); },
      cmp);
  three_steps(
      "signgd momentum 0.9", 1,
      [](Backend& b, std::vector<float*>& p, int s) { b.signgd_update(p[0], p[s], p[4], kParams, 0.01f, 0.9f, 0.0f); },
      cmp);
}

TEST_P(BackendOps, OptimizerEdgeCases) {
  auto cmp = [this](const std::string& w, const std::vector<HostVec>& b,
                    const std::function<void(Backend&, std::vector<float*>&)>& op) {
    compare(w, b, op, fp32_tolerance(), {0});
  };
  // NMD with m = g = 0: ||m|| = 0, so no step at all (weight decay included): w unchanged.
  const HostVec w = random_vector(kParams, 24);
  cmp("nmd zero momentum", {w, HostVec(kParams, 0.0f), HostVec(kParams, 0.0f)},
      [](Backend& b, std::vector<float*>& p) { b.nmd_update(p[0], p[1], p[2], kParams, 0.01f, 0.9f, 0.1f); });
  const auto after = run_on(*backend_, {w, HostVec(kParams, 0.0f), HostVec(kParams, 0.0f)},
                            [](Backend& b, std::vector<float*>& p) {
                              b.nmd_update(p[0], p[1], p[2], kParams, 0.01f, 0.9f, 0.1f);
                            });
  EXPECT_EQ(after[0], w) << "nmd stepped with ||m|| = 0";
  // SignGD: sign(0) = 0, with and without momentum (g zero on every third element, m zero too).
  HostVec g = random_vector(kParams, 25);
  for (std::size_t i = 0; i < kParams; i += 3) g[i] = 0.0f;
  for (float momentum : {0.0f, 0.9f}) {
    cmp("signgd zeros momentum " + std::to_string(momentum), {w, g, HostVec(kParams, 0.0f)},
        [=](Backend& b, std::vector<float*>& p) { b.signgd_update(p[0], p[1], p[2], kParams, 0.01f, momentum, 0.0f); });
  }
  // SignGD with momentum 0 and no state buffer (m == nullptr).
  cmp("signgd momentum 0 without m", {w, g},
      [](Backend& b, std::vector<float*>& p) { b.signgd_update(p[0], p[1], nullptr, kParams, 0.01f, 0.0f, 0.1f); });
}

TEST_P(BackendOps, MomentumAccumulateSeparateAndInPlace) {
  for (bool nesterov : {false, true}) {
    const std::string what = std::string("momentum_accumulate nesterov=") + (nesterov ? "1" : "0");
    // p[0] = m, p[1] = g, p[2] = out (poisoned).
    compare(
        what, {random_vector(kParams, 40, 0.1f), random_vector(kParams, 41), poisoned(kParams)},
        [=](Backend& b, std::vector<float*>& p) { b.momentum_accumulate(p[0], p[1], p[2], kParams, 0.95f, nesterov); },
        fp32_tolerance(), {0, 2});
    // out aliases g, as Muon may call it.
    compare(
        what + " out=g", {random_vector(kParams, 42, 0.1f), random_vector(kParams, 43)},
        [=](Backend& b, std::vector<float*>& p) { b.momentum_accumulate(p[0], p[1], p[1], kParams, 0.95f, nesterov); },
        fp32_tolerance(), {0, 1});
  }
}

// ---- optimizer updates over the runs of a pack ----------------------------------------------
// A table of 3 entries over a 4-run arena (runs 2, 0, 3; state slices 1, 0, 2; scalars of their
// own): the *_runs op with its device table equals one one-run call per entry on the same
// backend, bit for bit (Adam: its bias corrections formed on the device, within the tolerance).
namespace run_updates {
constexpr std::size_t kN = 999, kParamStride = 1024, kStateStride = 1088, kScratchStride = 1000;
std::vector<RunUpdate> table() {
  std::vector<RunUpdate> t(3);
  const uint32_t runs[] = {2, 0, 3}, slices[] = {1, 0, 2};
  for (std::size_t i = 0; i < 3; ++i) {
    t[i].run = runs[i];
    t[i].slice = slices[i];
    t[i].lr = 0.01f * static_cast<float>(i + 1);
    t[i].momentum = 0.9f - 0.05f * static_cast<float>(i);
    t[i].beta2 = 0.999f - 0.004f * static_cast<float>(i);
    t[i].eps = 1e-8f;
    t[i].weight_decay = 0.05f * static_cast<float>(i);
    t[i].step_alpha = -0.02f * static_cast<float>(i + 1);
    t[i].step_beta = 1.0f - 0.001f * static_cast<float>(i);
  }
  return t;
}
// Buffers: 0 w (4 runs), 1 g (4 runs), 2 m (3 slices), 3 v (3 slices), 4 scratch out/d (3 entries).
// v is Adam's second moment, so non-negative (as three_steps draws it): drawn in [-0.01, 0.01)
// it went negative under the update for about 4 elements in 10, sqrt(v) was NaN on every
// backend, and NaN on both sides is not compared.
std::vector<HostVec> buffers() {
  HostVec v = random_vector(3 * kStateStride, 83, 0.1f);
  for (float& e : v) e = e * e;
  return {random_vector(4 * kParamStride, 80), random_vector(4 * kParamStride, 81),
          random_vector(3 * kStateStride, 82, 0.1f), v, random_vector(3 * kScratchStride, 84)};
}
}  // namespace run_updates

TEST_P(BackendOps, OptimizerUpdatesOverTheRunsOfAPackEqualOneCallPerRun) {
  using namespace run_updates;
  std::vector<RunUpdate> entries = table();
  using Op = std::function<void(Backend&, std::vector<float*>&, const RunTable&)>;
  const auto check = [&](const std::string& what, const Op& op, double tolerance) {
    const auto many = [&](Backend& b, std::vector<float*>& p) {
      Buffer<RunUpdate> device(b, entries.size());
      device.upload(entries);
      op(b, p, RunTable{entries, device.data()});
    };
    const auto each = [&](Backend& b, std::vector<float*>& p) { op(b, p, RunTable{entries, nullptr}); };
    const auto a = run_on(*backend_, buffers(), many), b = run_on(*backend_, buffers(), each);
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (tolerance == 0) {
        EXPECT_EQ(a[i], b[i]) << what << ": buffer " << i << " differs from one call per run";
      } else {
        expect_close(what + ": buffer " + std::to_string(i), a[i], b[i], tolerance);
      }
    }
    compare(what + " vs the CPU", buffers(), many, fp32_tolerance());
  };
  for (bool nesterov : {false, true})
    check(std::string("sgd_update_runs nesterov=") + (nesterov ? "1" : "0"),
          [=](Backend& b, std::vector<float*>& p, const RunTable& t) {
            b.update(testing::update_args(UpdateKind::Sgd, p[0], p[1], kParamStride, {p[2], kStateStride}, {}, {}, kN, t, nesterov));
          },
          0);
  check("nmd_update_runs",
        [](Backend& b, std::vector<float*>& p, const RunTable& t) {
          b.update(testing::update_args(UpdateKind::Nmd, p[0], p[1], kParamStride, {p[2], kStateStride}, {}, {}, kN, t));
        },
        0);
  for (bool decoupled : {false, true})
    check(std::string("adam_update_runs decoupled=") + (decoupled ? "1" : "0"),
          [=](Backend& b, std::vector<float*>& p, const RunTable& t) {
            b.update(testing::update_args(UpdateKind::Adam, p[0], p[1], kParamStride, {p[2], kStateStride},
                                           {p[3], kStateStride}, {}, kN, t, false, decoupled, 7));
          },
          fp32_tolerance());
  check("signgd_update_runs",
        [](Backend& b, std::vector<float*>& p, const RunTable& t) {
          b.update(testing::update_args(UpdateKind::SignGd, p[0], p[1], kParamStride, {p[2], kStateStride}, {}, {}, kN, t));
        },
        0);
  for (bool nesterov : {false, true})
    check(std::string("momentum_accumulate_runs nesterov=") + (nesterov ? "1" : "0"),
          [=](Backend& b, std::vector<float*>& p, const RunTable& t) {
            b.update(testing::update_args(UpdateKind::Momentum, nullptr, p[1], kParamStride, {p[2], kStateStride}, {},
                                           {p[4], kScratchStride}, kN, t, nesterov));
          },
          0);
  check("muon_step_runs",
        [](Backend& b, std::vector<float*>& p, const RunTable& t) {
          b.update(testing::update_args(UpdateKind::MuonStep, p[0], nullptr, kParamStride, {}, {}, {p[4], kScratchStride}, kN, t));
        },
        0);
  // SGD and SignGD without momentum keep no state: m is nullptr.
  for (RunUpdate& u : entries) u.momentum = 0.0f;
  check("sgd_update_runs without m",
        [](Backend& b, std::vector<float*>& p, const RunTable& t) {
          b.update(testing::update_args(UpdateKind::Sgd, p[0], p[1], kParamStride, {}, {}, {}, kN, t));
        },
        0);
  check("signgd_update_runs without m",
        [](Backend& b, std::vector<float*>& p, const RunTable& t) {
          b.update(testing::update_args(UpdateKind::SignGd, p[0], p[1], kParamStride, {}, {}, {}, kN, t));
        },
        0);
}

// Newton-Schulz over 3 matrices at a stride: each as msign_newton_schulz gives it alone on the
// same backend (CUDA: batched gemms may sum in another order, so within the msign tolerance).
TEST_P(BackendOps, MsignNewtonSchulzOverTheRunsOfAPack) {
  for (auto [rows, cols] : {std::pair{48, 20}, std::pair{20, 48}}) {
    const std::size_t n = static_cast<std::size_t>(rows) * cols, stride = n + 40;
    const HostVec G = random_vector(3 * stride, 90 + static_cast<unsigned>(rows));
    for (MsignMethod method : {MsignMethod::NewtonSchulz5, MsignMethod::PolarExpress}) {
      const NsSchedule sched = ns_schedule(method, 5, false);
      const auto many = [&](Backend& b, std::vector<float*>& p) {
        b.msign_newton_schulz_runs(p[0], p[1], stride, rows, cols, sched.iterations, sched.norm_scale,
                                   sched.norm_eps, 3);
      };
      const auto each = [&](Backend& b, std::vector<float*>& p) {
        for (int r = 0; r < 3; ++r)
          b.msign_newton_schulz(p[0] + r * stride, p[1] + r * stride, rows, cols, sched.iterations, sched.norm_scale,
                                sched.norm_eps);
      };
      const std::string what = std::string("msign_newton_schulz_runs ") + std::string(name(method)) + " " +
                               std::to_string(rows) + "x" + std::to_string(cols);
      const auto a = run_on(*backend_, {G, poisoned(3 * stride)}, many);
      const auto b = run_on(*backend_, {G, poisoned(3 * stride)}, each);
      expect_close(what, a[1], b[1], backend_->is_cpu() ? 0.0 : under_test_->msign_tolerance);
      compare(what + " vs the CPU", {G, poisoned(3 * stride)}, many, under_test_->msign_tolerance);
    }
  }
}

// ---- msign ----------------------------------------------------------------------------------
// Newton-Schulz: each gemm differs from the CPU's by summation order (~1e-7 relative in fp32);
// an iteration multiplies a perturbation of a small singular value by up to p'(0) = a (3.4 for
// ns5, 8.2 then ~4 for Polar Express), so after five iterations the worst direction can carry
// ~1e-7 * prod(a_i) ~ 5e-5 (ns5) to 1e-4 (Polar Express). The fp32 bound 5e-4 leaves a 5x
// margin over that worst case; tf32 (3e-2) and bf16 (1.5e-1) scale the same argument by their
// operand rounding (~1e-3 and ~4e-3) and are provisional until measured on a GPU.
// The SVD runs in double on both backends: agreement to fp32 rounding, 1e-5.

TEST_P(BackendOps, MsignNewtonSchulzAndPolarExpressAndSvd) {
  for (auto [rows, cols] : {std::pair{48, 20}, std::pair{20, 48}, std::pair{32, 32}}) {
    const std::size_t n = static_cast<std::size_t>(rows) * cols;
    const HostVec G = random_vector(n, 50 + static_cast<unsigned>(rows));
    for (MsignMethod method : {MsignMethod::NewtonSchulz5, MsignMethod::PolarExpress, MsignMethod::Svd}) {
      const double tolerance = method == MsignMethod::Svd ? fp32_tolerance() : under_test_->msign_tolerance;
      compare(
          std::string("msign ") + std::string(name(method)) + " " + std::to_string(rows) + "x" + std::to_string(cols),
          {G, poisoned(n)}, [=](Backend& b, std::vector<float*>& p) { msign(b, method, p[0], p[1], rows, cols, 5); },
          tolerance, {1});
    }
  }
}

// The CUDA backend's own Newton-Schulz kernels (fp32, small side <= 256; kernels/newton_schulz.cu)
// against their host model (tests/support/ns_tiled_reference.h), bit for bit: the model repeats
// their tiles, zero padding, chunk sums and fma chains, so any difference is a kernel bug (a
// thread mapping, a race in the chunk sums, a stale read). The model starts from the backend's
// own X0 (msign_newton_schulz with no iterations).
void expect_kernels_match_host_model(Backend& backend, int rows, int cols) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  const HostVec G = random_vector(n, 70 + static_cast<unsigned>(rows + cols));
  for (MsignMethod method : {MsignMethod::NewtonSchulz5, MsignMethod::PolarExpress}) {
    const NsSchedule sched = ns_schedule(method, 5, false);
    const std::string what = std::string(name(method)) + " " + std::to_string(rows) + "x" + std::to_string(cols);
    const auto x0 = run_on(backend, {G, poisoned(n)}, [&](Backend& b, std::vector<float*>& p) {
      b.msign_newton_schulz(p[0], p[1], rows, cols, {}, sched.norm_scale, sched.norm_eps);
    });
    const auto got = run_on(backend, {G, poisoned(n)}, [&](Backend& b, std::vector<float*>& p) {
      b.msign_newton_schulz(p[0], p[1], rows, cols, sched.iterations, sched.norm_scale, sched.norm_eps);
    });
    const HostVec model = testing::ns_tiled_reference(x0[1], rows, cols, sched.iterations);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < n; ++i) differ += std::memcmp(&got[1][i], &model[i], sizeof(float)) != 0;
    EXPECT_EQ(differ, 0u) << what << ": elements that differ from the host model";
    expect_close(what + " vs the host model", got[1], model, 0.0);
  }
}

// Small shapes (also what the GPU session's sanitizers run): wide, tall and square, sides that
// are not multiples of 64 or 16, one chunk and several; then three runs at once at an unaligned
// stride, each bit for bit what it gets alone.
TEST_P(BackendOps, NewtonSchulzKernelsMatchTheirHostModelBitForBit) {
  if (GetParam() != "cuda") GTEST_SKIP() << "the Newton-Schulz kernels serve fp32 only (tf32/bf16 use cuBLAS)";
  for (auto [rows, cols] : {std::pair{100, 300}, std::pair{130, 130}, std::pair{5, 700}, std::pair{333, 17}})
    expect_kernels_match_host_model(*backend_, rows, cols);
  const int rows = 300, cols = 70;
  const std::size_t n = static_cast<std::size_t>(rows) * cols, stride = n + 37;
  const HostVec G = random_vector(3 * stride, 77);
  const NsSchedule sched = ns_schedule(MsignMethod::PolarExpress, 5, false);
  const auto many = run_on(*backend_, {G, poisoned(3 * stride)}, [&](Backend& b, std::vector<float*>& p) {
    b.msign_newton_schulz_runs(p[0], p[1], stride, rows, cols, sched.iterations, sched.norm_scale, sched.norm_eps, 3);
  });
  const auto each = run_on(*backend_, {G, poisoned(3 * stride)}, [&](Backend& b, std::vector<float*>& p) {
    for (int r = 0; r < 3; ++r)
      b.msign_newton_schulz(p[0] + r * stride, p[1] + r * stride, rows, cols, sched.iterations, sched.norm_scale,
                            sched.norm_eps);
  });
  std::size_t differ = 0;
  for (std::size_t i = 0; i < 3 * stride; ++i)
    differ += std::memcmp(&many[1][i], &each[1][i], sizeof(float)) != 0 &&
              !(std::isnan(many[1][i]) && std::isnan(each[1][i]));
  EXPECT_EQ(differ, 0u) << "msign_newton_schulz_runs: a run's bits differ from the run alone";
}

// The paper's shapes (2000x150, 1050x105, 250x105), a wide one and the largest small side.
TEST_P(BackendOps, NewtonSchulzKernelsOnThePaperShapesMatchTheirHostModelBitForBit) {
  if (GetParam() != "cuda") GTEST_SKIP() << "the Newton-Schulz kernels serve fp32 only (tf32/bf16 use cuBLAS)";
  for (auto [rows, cols] : {std::pair{2000, 150}, std::pair{1050, 105}, std::pair{250, 105}, std::pair{150, 2000},
                            std::pair{256, 1100}})
    expect_kernels_match_host_model(*backend_, rows, cols);
}

// Both Newton-Schulz paths of the fp32 CUDA backend against the CPU: the kernels (the default)
// and the cuBLAS iteration (SKILLRUN_NS_KERNELS=off, and every shape the kernels do not take:
// a small side above 256).
TEST_P(BackendOps, NewtonSchulzKernelsAndCublasPathBothAgreeWithTheCpu) {
  if (GetParam() != "cuda") GTEST_SKIP() << "the switch concerns fp32 only (tf32/bf16 always use cuBLAS)";
  ::setenv("SKILLRUN_NS_KERNELS", "off", 1);
  std::unique_ptr<Backend> cublas_path;
  try {
    cublas_path = make_backend(DeviceChoice::Cuda, Precision::Fp32);
  } catch (...) {
    ::unsetenv("SKILLRUN_NS_KERNELS");
    throw;
  }
  ::unsetenv("SKILLRUN_NS_KERNELS");
  for (auto [rows, cols] : {std::pair{2000, 150}, std::pair{150, 300}, std::pair{300, 270}, std::pair{40, 40}}) {
    const std::size_t n = static_cast<std::size_t>(rows) * cols;
    const HostVec G = random_vector(n, 80 + static_cast<unsigned>(rows));
    for (MsignMethod method : {MsignMethod::NewtonSchulz5, MsignMethod::PolarExpress}) {
      const auto op = [&](Backend& b, std::vector<float*>& p) { msign(b, method, p[0], p[1], rows, cols, 5); };
      const std::string what =
          std::string(name(method)) + " " + std::to_string(rows) + "x" + std::to_string(cols);
      const auto ref = run_on(cpu_, {G, poisoned(n)}, op);
      const auto kernels = run_on(*backend_, {G, poisoned(n)}, op);
      const auto cublas = run_on(*cublas_path, {G, poisoned(n)}, op);
      expect_close(what + ", kernels vs the CPU", kernels[1], ref[1], under_test_->msign_tolerance);
      expect_close(what + ", cuBLAS vs the CPU", cublas[1], ref[1], under_test_->msign_tolerance);
    }
  }
}

TEST_P(BackendOps, MsignSvdRankDeficientDropsNullDirections) {
  // G = u v^T (rank 1): msign(G) = u v^T / (|u| |v|) on both backends, the zero singular values
  // mapped to 0 by the shared rank rule, not to arbitrary unit vectors.
  const int rows = 24, cols = 10;
  const HostVec u = random_vector(rows, 60), v = random_vector(cols, 61);
  HostVec G(static_cast<std::size_t>(rows) * cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) G[static_cast<std::size_t>(i) * cols + j] = u[i] * v[j];
  compare("msign svd rank 1", {G, poisoned(G.size())},
          [=](Backend& b, std::vector<float*>& p) { b.msign_svd(p[0], p[1], rows, cols); }, fp32_tolerance(), {1});
}

// ---- data -------------------------------------------------------------------------------------

TEST_P(BackendOps, SparseParityDataBitIdentical) {
  const testing::ParityCase pc;
  const std::vector<int32_t>& subsets = pc.subsets;
  const std::vector<uint32_t>& thresholds = pc.thresholds;
  const int n_tasks = testing::ParityCase::kTasks, n_bits = testing::ParityCase::kBits;
  for (int32_t fixed_task : {-1, 2}) {
    const ParityDraw draw = testing::ParityCase::draw(fixed_task);
    const int count = 4099;
    const std::size_t row = n_tasks + n_bits;
    // x at the start of an allocation (16-byte aligned: CUDA's 16-byte stores) and one float
    // past it (4-byte stores); 4099 rows leave a last block of 3 rows, 315 entries, a 3-entry tail.
    auto generate = [&](Backend& b, std::size_t offset, HostVec& x, std::vector<int32_t>& labels,
                        std::vector<int32_t>& tasks) {
      Buffer<int32_t> s = on(b, subsets);
      Buffer<uint32_t> th = on(b, thresholds);
      Buffer<float> xb = on(b, poisoned(row * count + offset));
      Buffer<int32_t> lb = on(b, std::vector<int32_t>(count, -7)), tb = on(b, std::vector<int32_t>(count, -7));
      b.sparse_parity(draw, ParityTables{s.data(), th.data()}, count, xb.data() + offset, lb.data(), tb.data());
      x = xb.download();
      x.erase(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(offset));
      labels = lb.download();
      tasks = tb.download();
    };
    for (std::size_t offset : {std::size_t{0}, std::size_t{1}}) {
      HostVec x_ref, x_got;
      std::vector<int32_t> l_ref, l_got, t_ref, t_got;
      generate(cpu_, offset, x_ref, l_ref, t_ref);
      generate(*backend_, offset, x_got, l_got, t_got);
      EXPECT_EQ(count_nan(x_ref), 0u);
      EXPECT_EQ(x_got, x_ref) << "x differs (fixed_task " << fixed_task << ", offset " << offset << ")";
      EXPECT_EQ(l_got, l_ref) << "labels differ";
      EXPECT_EQ(t_got, t_ref) << "task ids differ";
      EXPECT_EQ(std::set<int32_t>(t_ref.begin(), t_ref.end()).size(), fixed_task < 0 ? 5u : 1u);
    }
  }
}

// assoc_memory's draw (DrawKind::Assoc): Zipf queries over 64 facts, answers, label noise,
// groups; and an eval draw (every fact of a group once).
TEST_P(BackendOps, AssocMemoryDataBitIdentical) {
  const int n_facts = 64, n_answers = 50, count = 1031;
  std::vector<int32_t> answers(n_facts);
  for (int i = 0; i < n_facts; ++i) answers[static_cast<std::size_t>(i)] = (7 * i + 3) % n_answers;
  std::vector<uint32_t> thresholds;
  for (int i = 1; i < n_facts; ++i) thresholds.push_back(static_cast<uint32_t>(4294967295.0 * (1.0 - 1.0 / (i + 1))));
  for (int32_t fixed_task : {-1, 16}) {
    ParityDraw draw;
    draw.kind = DrawKind::Assoc;
    draw.seed = 11;
    draw.stream = fixed_task < 0 ? RngStream::TrainBatch : RngStream::EvalSet;
    draw.step_or_task = 5;
    draw.fixed_task = fixed_task;
    draw.n_tasks = n_facts;
    draw.n_answers = n_answers;
    draw.noise_threshold = fixed_task < 0 ? 1u << 30 : 0;  // 25% noise in training draws
    draw.n_groups = 4;
    const int rows = fixed_task < 0 ? count : 16;
    auto generate = [&](Backend& b, HostVec& x, std::vector<int32_t>& labels, std::vector<int32_t>& tasks) {
      Buffer<int32_t> a = on(b, answers);
      Buffer<uint32_t> th = on(b, thresholds);
      Buffer<float> xb = on(b, poisoned(static_cast<std::size_t>(n_facts) * rows));
      Buffer<int32_t> lb = on(b, std::vector<int32_t>(rows, -7)), tb = on(b, std::vector<int32_t>(rows, -7));
      ParityTables tables;
      tables.zipf_thresholds = th.data();
      tables.answers = a.data();
      b.sparse_parity(draw, tables, rows, xb.data(), lb.data(), tb.data());
      x = xb.download();
      labels = lb.download();
      tasks = tb.download();
    };
    HostVec x_ref, x_got;
    std::vector<int32_t> l_ref, l_got, t_ref, t_got;
    generate(cpu_, x_ref, l_ref, t_ref);
    generate(*backend_, x_got, l_got, t_got);
    EXPECT_EQ(count_nan(x_ref), 0u);
    EXPECT_EQ(x_got, x_ref) << "x differs (fixed_task " << fixed_task << ")";
    EXPECT_EQ(l_got, l_ref) << "labels differ";
    EXPECT_EQ(t_got, t_ref) << "group ids differ";
    if (fixed_task >= 0) {
      EXPECT_EQ(std::set<int32_t>(t_ref.begin(), t_ref.end()), std::set<int32_t>{1});
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendOps, ::testing::ValuesIn(backend_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace skillrun::conformance
