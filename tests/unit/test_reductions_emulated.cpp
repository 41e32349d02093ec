// The reduction and loss kernels over the run axis of a pack (kernels/reduce.cu, loss.cu,
// msign.cu), compiled for the host and run through their launchers by the CPU emulation of
// support/emulated_cuda_runtime.h. The one-run launches ran on an H200 (2026-11-28); the run-axis
// launches had not: here each run of a multi-run launch must have exactly the bits of the
// one-run launch on its operands, and both must agree with the CPU backend (the sums' order
// differs from the CPU's: 1e-12 relative in double, 1e-6 after rounding to float).
#define SKILLRUN_CUDA_EMULATION 1  // the kernels: unit/kernels_emulated.cpp
#include "../../kernels/loss.cuh"
#include "../../kernels/msign.cuh"
#include "../../kernels/reduce.cuh"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "support/test_data.h"

namespace skillrun {
namespace {

using Vec = std::vector<float>;
using testing::kNaN;
using testing::uniform_floats;

template <class T>
std::size_t differing(const T* a, const T* b, std::size_t n) {
  return testing::bit_differences(a, b, n);
}

using testing::normalised_error;

class ReductionsEmulated : public ::testing::Test {
 protected:
  CpuBackend cpu_;
};

TEST_F(ReductionsEmulated, SumOfSquaresOverRunsEqualsEachRunAlone) {
  const std::size_t n = 30001, stride = 30010;  // several partial blocks, a ragged end
  const int runs = 3;
  const Vec x = uniform_floats(stride * runs, 1);
  const unsigned int blocks = cuda::reduce_blocks(n);
  std::vector<double> partials(blocks * runs), many(runs), one(1), partial_one(cuda::kMaxReduceBlocks);
  cuda::launch_sum_squares_runs(x.data(), stride, n, runs, partials.data(), many.data(), nullptr);
  for (int r = 0; r < runs; ++r) {
    cuda::launch_sum_squares(x.data() + r * stride, n, partial_one.data(), one.data(), nullptr);
    EXPECT_EQ(differing(&many[r], &one[0], 1), 0u) << "run " << r;
    EXPECT_NEAR(one[0], cpu_.sum_squares(x.data() + r * stride, n), 1e-12 * one[0]) << "run " << r;
  }
  // The Newton-Schulz normalisation reads those norms: run r scaled by its own.
  Vec scaled(stride * runs, kNaN), alone(n, kNaN);
  cuda::launch_scale_by_inverse_norm_runs(scaled.data(), stride, x.data(), stride, n, many.data(), 1.02, 1e-6, runs,
                                          nullptr);
  for (int r = 0; r < runs; ++r) {
    cuda::launch_scale_by_inverse_norm(alone.data(), x.data() + r * stride, n, &many[r], 1.02, 1e-6, nullptr);
    EXPECT_EQ(differing(scaled.data() + r * stride, alone.data(), n), 0u) << "scale, run " << r;
  }
}

TEST_F(ReductionsEmulated, ColumnSumsOverRunsEqualEachRunAlone) {
  for (auto [rows, cols] : {std::pair{1000, 7}, std::pair{33, 300}, std::pair{1, 5}}) {
    const int runs = 3;
    const std::size_t stride_a = static_cast<std::size_t>(rows) * cols + 3, stride_out = cols + 1;
    const Vec a = uniform_floats(stride_a * runs, 2);
    Vec many(stride_out * runs, kNaN), alone(cols, kNaN), ref(cols, kNaN);
    std::vector<double> ws(cuda::column_sums_workspace(rows, cols) * runs + 1), ws_one(cuda::kColumnSumsWorkspace);
    cuda::launch_column_sums(a.data(), stride_a, rows, cols, many.data(), stride_out, runs, ws.data(), nullptr);
    for (int r = 0; r < runs; ++r) {
      cuda::launch_column_sums(a.data() + r * stride_a, rows, cols, alone.data(), ws_one.data(), nullptr);
      EXPECT_EQ(differing(many.data() + r * stride_out, alone.data(), cols), 0u)
          << rows << "x" << cols << " run " << r;
      cpu_.column_sums(a.data() + r * stride_a, rows, cols, ref.data());
      EXPECT_LE(normalised_error(alone, ref), 1e-6) << rows << "x" << cols << " run " << r;
    }
  }
}

TEST_F(ReductionsEmulated, CrossEntropyOverRunsEqualsEachRunAloneAndTheCpu) {
  const int rows = 301, classes = 7, runs = 3;
  const std::size_t stride_logits = static_cast<std::size_t>(rows) * classes + 5, stride_rows = rows + 2;
  const Vec logits = uniform_floats(stride_logits * runs, 3, -4.0f, 4.0f);
  std::vector<int32_t> labels(rows);
  for (int i = 0; i < rows; ++i) labels[i] = (i * 5 + 3) % classes;
  Vec loss(stride_rows * runs, kNaN), correct = loss, dl(stride_logits * runs, kNaN);
  cuda::launch_cross_entropy(logits.data(), stride_logits, labels.data(), rows, classes, loss.data(), correct.data(),
                             stride_rows, dl.data(), stride_logits, 0.5f, runs, nullptr, nullptr);
  const std::size_t n = static_cast<std::size_t>(rows) * classes;
  for (int r = 0; r < runs; ++r) {
    Vec l1(rows, kNaN), c1(rows, kNaN), d1(n, kNaN), l2 = l1, c2 = c1, d2 = d1;
    cuda::launch_cross_entropy(logits.data() + r * stride_logits, labels.data(), rows, classes, l1.data(), c1.data(),
                               d1.data(), 0.5f, nullptr, nullptr);
    EXPECT_EQ(differing(loss.data() + r * stride_rows, l1.data(), rows), 0u) << "loss, run " << r;
    EXPECT_EQ(differing(correct.data() + r * stride_rows, c1.data(), rows), 0u) << "correct, run " << r;
    EXPECT_EQ(differing(dl.data() + r * stride_logits, d1.data(), n), 0u) << "dlogits, run " << r;
    cpu_.cross_entropy(logits.data() + r * stride_logits, labels.data(), rows, classes, l2.data(), c2.data(),
                       d2.data(), 0.5f);
    EXPECT_LE(normalised_error(l1, l2), 1e-6) << "loss vs the CPU, run " << r;
    EXPECT_EQ(c1, c2) << "correct vs the CPU, run " << r;
    EXPECT_LE(normalised_error(d1, d2), 1e-6) << "dlogits vs the CPU, run " << r;
  }
}

TEST_F(ReductionsEmulated, TaskSumsAgreeWithTheCpu) {
  const int rows = 3001, n_tasks = 7;
  const Vec loss = uniform_floats(rows, 4, 0.0f, 2.0f);
  Vec correct(rows);
  std::vector<int32_t> tasks(rows);
  for (int i = 0; i < rows; ++i) {
    tasks[i] = (i * 13 + i / 7) % n_tasks;
    correct[i] = static_cast<float>(i % 3 == 0);
  }
  std::vector<double> sums(2 * n_tasks, 0.5), ref = sums, ws(cuda::task_sums_workspace(rows, n_tasks) + 1);
  cuda::launch_task_sums(loss.data(), correct.data(), tasks.data(), rows, n_tasks, sums.data(), ws.data(), nullptr,
                         nullptr);
  cpu_.task_sums(loss.data(), correct.data(), tasks.data(), rows, n_tasks, ref.data());
  for (int k = 0; k < 2 * n_tasks; ++k) EXPECT_NEAR(sums[k], ref[k], 1e-12 * std::abs(ref[k])) << "sum " << k;
}

}  // namespace
}  // namespace skillrun
