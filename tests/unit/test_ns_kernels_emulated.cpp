// The CUDA Newton-Schulz kernels themselves (kernels/newton_schulz.cu), compiled for the host and
// run by the CPU emulation of support/emulated_cuda_runtime.h: every block, every thread, every barrier,
// the shared-memory staging and the Gram's last-block chunk sums, on any machine. They must give
// the bits of their host model (support/ns_tiled_reference.h) exactly, alone and for several runs
// in one launch. On a GPU the conformance suite then checks the same on the hardware.
#define SKILLRUN_CUDA_EMULATION 1  // the kernels: unit/kernels_emulated.cpp
#include "../../kernels/newton_schulz.cuh"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/ns_tiles.h"
#include "optim/msign.h"
#include "support/ns_tiled_reference.h"
#include "support/test_data.h"

namespace skillrun {
namespace {

using namespace ns_tiles;

// X0 for `runs` matrices at `stride`: random, scaled so that ||X0||_F <= 1 as msign's
// normalisation leaves it. Padding between matrices is NaN: a kernel that reads it spreads NaN.
std::vector<float> random_x0(int rows, int cols, int runs, std::size_t stride, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  std::vector<float> x(stride * static_cast<std::size_t>(runs), std::numeric_limits<float>::quiet_NaN());
  const float scale = 1.0f / std::sqrt(static_cast<float>(n) / 3.0f);  // E[u^2] = 1/3
  for (int r = 0; r < runs; ++r)
    for (std::size_t i = 0; i < n; ++i) x[r * stride + i] = dist(rng) * scale;
  return x;
}

// CudaBackend::newton_schulz_kernels' own loop after the normalisation (launch_ns_iterations),
// with buffers laid out as there: X at the caller's stride, the other X buffer at its own
// (padded) stride, swapped with it every iteration, the Gram and polynomial matrices at a padded
// stride, so that a stride passed in the wrong place shows. Returns the last X and its stride.
struct Result {
  std::vector<float> x;
  std::size_t stride;
};
Result run_kernels(std::vector<float> x, int rows, int cols, int runs, std::size_t stride,
                   std::span<const NsCoefficients> iterations) {
  const Plan p = plan(rows, cols);
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  const std::size_t ss = (static_cast<std::size_t>(p.s) * p.s + 63) / 64 * 64 + 64;
  const std::size_t other_stride = (n + 63) / 64 * 64 + 128;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> next(other_stride * runs, nan), gram(ss * runs, nan), poly(ss * runs, nan);
  std::vector<float> partials(partial_floats(p, runs), nan);
  // Counters as a failed launch could leave them: the loop zeroes them itself.
  std::vector<int> counters(counter_count(p, runs), 7);
  cuda::launch_ns_iterations(x.data(), stride, next.data(), other_stride, gram.data(), poly.data(), ss,
                             partials.data(), counters.data(), p, iterations.data(), iterations.size(), runs, nullptr);
  for (int c : counters) EXPECT_EQ(c, 0) << "the Gram launches left a chunk counter non-zero";
  if (iterations.size() % 2 == 1) return {std::move(next), other_stride};
  return {std::move(x), stride};
}

std::size_t differing(const float* a, const float* b, std::size_t n) { return testing::bit_differences(a, b, n); }

// Shapes: wide and tall, one and several chunks (L > 128), sides not multiples of 64 or 16, two
// tiles on the small side (off-diagonal Gram tiles and their mirror), ns5 and Polar Express.
TEST(NsKernelsEmulated, GiveTheBitsOfTheirHostModel) {
  for (auto [rows, cols] : {std::pair{70, 300}, std::pair{300, 70}, std::pair{20, 33}, std::pair{130, 140},
                            std::pair{1, 200}, std::pair{200, 1}}) {
    for (MsignMethod method : {MsignMethod::NewtonSchulz5, MsignMethod::PolarExpress}) {
      const std::string what = std::string(name(method)) + " " + std::to_string(rows) + "x" + std::to_string(cols);
      // Two and three iterations (the result in either X buffer) keep the emulation quick.
      for (int steps : {2, 3}) {
        const std::vector<NsCoefficients> its = ns_schedule(method, steps, false).iterations;
        const std::size_t n = static_cast<std::size_t>(rows) * cols;
        const std::vector<float> x0 = random_x0(rows, cols, 1, n, 11u + static_cast<unsigned>(rows));
        const Result got = run_kernels(x0, rows, cols, 1, n, its);
        const std::vector<float> model = testing::ns_tiled_reference(x0, rows, cols, its);
        EXPECT_EQ(differing(got.x.data(), model.data(), n), 0u) << what << ", " << steps << " iterations";
      }
    }
  }
}

// Three runs in one launch, at strides with NaN padding after every run: each run's bits are its
// model's, and no padding is written.
TEST(NsKernelsEmulated, RunsInOneLaunchEachGetTheirOwnBits) {
  const int rows = 200, cols = 40, runs = 3;
  const std::size_t n = static_cast<std::size_t>(rows) * cols, stride = n + 13;
  for (int steps : {2, 3}) {
    const std::vector<NsCoefficients> its = ns_schedule(MsignMethod::PolarExpress, steps, false).iterations;
    const std::vector<float> x0 = random_x0(rows, cols, runs, stride, 5);
    const Result got = run_kernels(x0, rows, cols, runs, stride, its);
    for (int r = 0; r < runs; ++r) {
      const std::vector<float> one(x0.begin() + r * stride, x0.begin() + r * stride + n);
      const std::vector<float> model = testing::ns_tiled_reference(one, rows, cols, its);
      EXPECT_EQ(differing(got.x.data() + r * got.stride, model.data(), n), 0u) << "run " << r << ", " << steps;
      for (std::size_t i = n; i < got.stride; ++i)
        EXPECT_TRUE(std::isnan(got.x[r * got.stride + i])) << "run " << r << " padding " << i << " written";
    }
  }
}

}  // namespace
}  // namespace skillrun
