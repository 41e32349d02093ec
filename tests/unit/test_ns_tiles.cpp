// The tiling of the CUDA backend's Newton-Schulz kernels (backend/ns_tiles.h), tested without a
// GPU: the plan covers each matrix exactly once, and the host model of the kernels
// (support/ns_tiled_reference.h), which computes their bits, agrees with the CPU backend's
// msign within the conformance suite's fp32 msign bound. On a GPU the conformance suite then
// holds the kernels to this model bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/ns_tiles.h"
#include "optim/msign.h"
#include "support/ns_tiled_reference.h"
#include "support/test_data.h"

namespace skillrun {
namespace {

using namespace ns_tiles;

TEST(NsTiles, PlanTakesTheSmallSideAndCoversTheLongSideOnce) {
  for (auto [rows, cols] : {std::pair{2000, 150}, std::pair{150, 2000}, std::pair{1050, 105}, std::pair{250, 105},
                            std::pair{64, 64}, std::pair{1, 1}, std::pair{256, 100000}, std::pair{7, 129}}) {
    const Plan p = plan(rows, cols);
    const std::string what = std::to_string(rows) + "x" + std::to_string(cols);
    EXPECT_EQ(p.s, std::min(rows, cols)) << what;
    EXPECT_EQ(p.L, std::max(rows, cols)) << what;
    EXPECT_EQ(p.tall, rows > cols) << what;
    EXPECT_GE(p.tiles * kTile, p.s) << what;
    EXPECT_LT((p.tiles - 1) * kTile, p.s) << what;
    EXPECT_EQ(p.chunk % kDepth, 0) << what;
    EXPECT_GE(p.chunk, kMinChunk) << what;
    EXPECT_LE(p.chunks, kMaxChunks) << what;
    // Chunks: consecutive, from 0, the last one ending at L rounded up to kDepth.
    int next = 0;
    for (int c = 0; c < p.chunks; ++c) {
      EXPECT_EQ(chunk_begin(p, c), next) << what << " chunk " << c;
      EXPECT_LT(chunk_begin(p, c), p.L) << what << " chunk " << c << " is empty";
      EXPECT_EQ((chunk_end(p, c) - chunk_begin(p, c)) % kDepth, 0) << what;
      next = chunk_end(p, c);
    }
    EXPECT_EQ(next, round_up(p.L, kDepth)) << what;
    // Y(i, k): every element of X exactly once.
    if (static_cast<long>(rows) * cols <= 400000) {
      std::vector<int> seen(static_cast<std::size_t>(rows) * cols, 0);
      for (int i = 0; i < p.s; ++i)
        for (int k = 0; k < p.L; ++k) ++seen.at(y_at(p, i, k));
      EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<long>(seen.size())) << what;
    }
  }
  EXPECT_TRUE(usable(2000, 150));
  EXPECT_TRUE(usable(256, 4096));
  EXPECT_FALSE(usable(257, 300));
  EXPECT_FALSE(usable(0, 10));
}

TEST(NsTiles, PairsAreTheUpperTilesEachOnce) {
  for (int tiles = 1; tiles <= kMaxSide / kTile; ++tiles) {
    std::set<std::pair<int, int>> seen;
    const int pairs = tiles * (tiles + 1) / 2;
    for (int pair = 0; pair < pairs; ++pair) {
      int ti = -1, tj = -1;
      pair_tiles(pair, tiles, &ti, &tj);
      EXPECT_LE(0, ti);
      EXPECT_LE(ti, tj);
      EXPECT_LT(tj, tiles);
      seen.insert({ti, tj});
    }
    EXPECT_EQ(static_cast<int>(seen.size()), pairs) << tiles << " tiles";
  }
}

using testing::normalised_error;

// The kernels' arithmetic (tiles, zero padding, chunk sums, mirrored Gram, fused epilogues)
// against the CPU backend's Newton-Schulz: wide, tall and square, sides that are not multiples
// of the tile, one and several chunks, ns5 and Polar Express. Both compute in fp32 and differ
// by summation order only: the errors measured are 0.7e-6 to 3.7e-6, so 5e-5 leaves a 10x margin
// (the conformance suite's fp32 msign bound, 5e-4, covers a GPU's other orders too), while a
// tile, chunk or padding mistake gives errors of 1e-2 and more.
TEST(NsTiles, HostModelOfTheKernelsAgreesWithTheCpuBackend) {
  CpuBackend cpu;
  for (auto [rows, cols] : {std::pair{100, 300}, std::pair{300, 70}, std::pair{130, 130}, std::pair{5, 700},
                            std::pair{70, 1200}, std::pair{64, 64}}) {
    const std::size_t n = static_cast<std::size_t>(rows) * cols;
    const std::vector<float> G = testing::uniform_floats(n, 7u + static_cast<unsigned>(rows));
    for (MsignMethod method : {MsignMethod::NewtonSchulz5, MsignMethod::PolarExpress}) {
      const std::string what =
          std::string(name(method)) + " " + std::to_string(rows) + "x" + std::to_string(cols);
      const NsSchedule sched = ns_schedule(method, 5, false);
      Buffer<float> g(cpu, n), x0(cpu, n), out(cpu, n);
      g.upload(G);
      cpu.msign_newton_schulz(g.data(), x0.data(), rows, cols, {}, sched.norm_scale, sched.norm_eps);
      cpu.msign_newton_schulz(g.data(), out.data(), rows, cols, sched.iterations, sched.norm_scale, sched.norm_eps);
      const std::vector<float> model = testing::ns_tiled_reference(x0.download(), rows, cols, sched.iterations);
      const std::vector<float> ref = out.download();
      const double error = normalised_error(model, ref);
      EXPECT_LE(error, 5e-5) << what;
    }
  }
}

}  // namespace
}  // namespace skillrun
