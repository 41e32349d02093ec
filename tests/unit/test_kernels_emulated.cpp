// The elementwise, optimizer and data kernels (kernels/elementwise.cu, optim_update.cu,
// philox_data.cu, with reduce.cu for NMD's norm), compiled for the host and run through their own
// launchers by the CPU emulation of support/emulated_cuda_runtime.h, against the CPU backend's
// ops on the same inputs: bit for bit, on both of each launcher's paths (16-byte accesses when
// every pointer is 16-byte aligned and every run stride a multiple of 4, else one float at a
// time), with tails (n % 4 != 0), runs at strides, and NaN where it must survive. On a GPU the
// conformance suite (tests/conformance) checks the same kernels on the hardware.
#define SKILLRUN_CUDA_EMULATION 1  // the kernels: unit/kernels_emulated.cpp
#include "../../kernels/common.cuh"
#include "../../kernels/elementwise.cuh"
#include "../../kernels/optim_update.cuh"
#include "../../kernels/philox_data.cuh"
#include "../../kernels/reduce.cuh"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/adam_scalars.h"
#include "backend/cpu/cpu_backend.h"
#include "support/parity_case.h"
#include "support/test_data.h"
#include "support/update_args.h"

namespace skillrun {
namespace {

using Vec = std::vector<float>;
using testing::kNaN;
using testing::uniform_floats;

// Elements whose bits differ (NaN equal to NaN); vectors of different sizes differ everywhere.
std::size_t differing(const Vec& a, const Vec& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  return testing::bit_differences(a.data(), b.data(), a.size());
}

// The two paths: offset 0 (std::vector's storage is 16-byte aligned: float4 accesses) and 1 (one
// float off: scalar accesses).
constexpr std::size_t kOffsets[] = {0, 1};

class KernelsEmulated : public ::testing::Test {
 protected:
  CpuBackend cpu_;
};

TEST_F(KernelsEmulated, FillAndAxpby) {
  const std::size_t n = 1003;
  for (std::size_t off : kOffsets) {
    Vec a(n + off, kNaN), b(n + off, kNaN);
    // offset 0 must take the float4 path: std::vector's storage is 16-byte aligned here
    if (off == 0) {
      ASSERT_TRUE(cuda::is_aligned16(a.data()));
    }
    cuda::launch_fill(a.data() + off, n, 0.375f, nullptr);
    cpu_.fill(b.data() + off, n, 0.375f);
    EXPECT_EQ(differing(a, b), 0u) << "fill, offset " << off;
    const Vec x = uniform_floats(n + off, 1);
    for (float beta : {0.0f, 0.75f}) {
      Vec y1 = beta == 0.0f ? Vec(n + off, kNaN) : uniform_floats(n + off, 2), y2 = y1;
      cuda::launch_axpby(y1.data() + off, x.data() + off, n, -1.25f, beta, nullptr);
      cpu_.axpby(y2.data() + off, x.data() + off, n, -1.25f, beta);
      EXPECT_EQ(differing(y1, y2), 0u) << "axpby beta " << beta << ", offset " << off;
    }
  }
}

TEST_F(KernelsEmulated, BiasActivationAndReluBackwardOverRuns) {
  const int rows = 37, runs = 3;
  for (int cols : {12, 11}) {  // float4 rows and ragged rows
    for (std::size_t off : kOffsets) {
      for (bool relu : {true, false}) {
        const std::size_t n = static_cast<std::size_t>(rows) * cols, stride_h = n + 4 * off + (cols == 11 ? 1 : 0);
        const std::size_t stride_b = static_cast<std::size_t>(cols) + 4;
        Vec h = uniform_floats(off + stride_h * runs, 3), bias = uniform_floats(off + stride_b * runs, 4);
        h[off + 5] = kNaN;  // NaN survives the ReLU (the trainer detects divergence by it)
        Vec h_cpu = h;
        cuda::launch_bias_activation(h.data() + off, stride_h, bias.data() + off, stride_b, rows, cols, relu, runs,
                                     nullptr);
        cpu_.bias_activation_runs(h_cpu.data() + off, stride_h, bias.data() + off, stride_b, rows, cols, relu, runs);
        EXPECT_EQ(differing(h, h_cpu), 0u) << "bias_activation cols " << cols << " offset " << off << " relu " << relu;
        EXPECT_TRUE(std::isnan(h[off + 5]));
      }
    }
  }
  for (std::size_t off : kOffsets) {
    const std::size_t n = 1003, stride = 1008 + off;
    const int pack = 2;
    const Vec h = uniform_floats(off + stride * pack, 5);
    Vec d = uniform_floats(off + stride * pack, 6), d_cpu = d;
    cuda::launch_relu_backward(d.data() + off, stride, h.data() + off, stride, n, pack, nullptr);
    cpu_.relu_backward_runs(d_cpu.data() + off, stride, h.data() + off, stride, n, pack);
    EXPECT_EQ(differing(d, d_cpu), 0u) << "relu_backward offset " << off;
  }
}

TEST_F(KernelsEmulated, OneRunOptimizerUpdates) {
  const std::size_t n = 1003;
  for (std::size_t off : kOffsets) {
    const Vec g = uniform_floats(n + off, 10);
    const Vec w0 = uniform_floats(n + off, 11), m0 = uniform_floats(n + off, 12), v0 = uniform_floats(n + off, 13, 0.0f, 1.0f);
    auto check = [&](const char* what, Vec a, Vec b) { EXPECT_EQ(differing(a, b), 0u) << what << ", offset " << off; };
    for (float mu : {0.0f, 0.9f})
      for (bool nesterov : {false, true}) {
        Vec w1 = w0, m1 = m0, w2 = w0, m2 = m0;
        cuda::launch_sgd_update(w1.data() + off, g.data() + off, m1.data() + off, n, 0.1f, mu, nesterov, 0.01f, nullptr);
        cpu_.sgd_update(w2.data() + off, g.data() + off, m2.data() + off, n, 0.1f, mu, nesterov, 0.01f);
        check("sgd w", w1, w2);
        check("sgd m", m1, m2);
      }
    for (bool decoupled : {false, true}) {
      Vec w1 = w0, m1 = m0, v1 = v0, w2 = w0, m2 = m0, v2 = v0;
      const AdamScalars k = adam_scalars("test", 1e-3f, 0.9f, 0.999f, 0.1f, decoupled, 3);
      cuda::launch_adam_update(w1.data() + off, g.data() + off, m1.data() + off, v1.data() + off, n, k.step,
                               k.inv_sqrt_bc2, 0.9f, 0.999f, 1e-8f, k.decay, k.l2, nullptr);
      cpu_.adam_update(w2.data() + off, g.data() + off, m2.data() + off, v2.data() + off, n, 1e-3f, 0.9f, 0.999f, 1e-8f,
                       0.1f, decoupled, 3);
      check("adam w", w1, w2);
      check("adam m", m1, m2);
      check("adam v", v1, v2);
    }
    for (float mu : {0.0f, 0.9f}) {
      Vec w1 = w0, m1 = m0, w2 = w0, m2 = m0;
      cuda::launch_signgd_update(w1.data() + off, g.data() + off, m1.data() + off, n, 0.01f, mu, 0.1f, nullptr);
      cpu_.signgd_update(w2.data() + off, g.data() + off, m2.data() + off, n, 0.01f, mu, 0.1f);
      check("signgd w", w1, w2);
      check("signgd m", m1, m2);
    }
    for (bool nesterov : {false, true}) {
      Vec m1 = m0, o1(n + off, kNaN), m2 = m0, o2(n + off, kNaN);
      cuda::launch_momentum_accumulate(m1.data() + off, g.data() + off, o1.data() + off, n, 0.95f, nesterov, nullptr);
      cpu_.momentum_accumulate(m2.data() + off, g.data() + off, o2.data() + off, n, 0.95f, nesterov);
      check("momentum m", m1, m2);
      check("momentum out", o1, o2);
    }
    {  // NMD: ||m|| summed in another order than the CPU's, so the step may differ in the last bit.
      Vec w1 = w0, m1 = m0, w2 = w0, m2 = m0;
      std::vector<double> partials(cuda::kMaxReduceBlocks), norm(1);
      cuda::launch_nmd_update(w1.data() + off, g.data() + off, m1.data() + off, n, 0.1f, 0.9f, 0.01f, partials.data(),
                              norm.data(), nullptr);
      cpu_.nmd_update(w2.data() + off, g.data() + off, m2.data() + off, n, 0.1f, 0.9f, 0.01f);
      check("nmd m", m1, m2);
      double d = 0, s = 0;
      for (std::size_t i = off; i < n + off; ++i) {
        d += (static_cast<double>(w1[i]) - w2[i]) * (static_cast<double>(w1[i]) - w2[i]);
        s += static_cast<double>(w2[i]) * w2[i];
      }
      EXPECT_LE(std::sqrt(d / s), 1e-7) << "nmd w, offset " << off;
    }
  }
}

// The run axis: three entries of a run table (runs 2, 0, 1 of the arenas, state slices 0, 1,
// 2), each with its own scalars, against the CPU's one call per entry.
TEST_F(KernelsEmulated, OptimizerUpdatesOverTheRunsOfAPack) {
  const std::size_t n = 1003;
  std::vector<RunUpdate> table(3);
  for (uint32_t i = 0; i < 3; ++i) {
    table[i].run = (i + 2) % 3;
    table[i].slice = i;
    table[i].lr = 0.01f * static_cast<float>(i + 1);
    table[i].momentum = 0.9f - 0.1f * static_cast<float>(i);
    table[i].beta2 = 0.999f;
    table[i].eps = 1e-8f;
    table[i].weight_decay = 0.05f * static_cast<float>(i);
    table[i].step_alpha = -0.02f * static_cast<float>(i + 1);
    table[i].step_beta = 1.0f - 0.001f * static_cast<float>(i);
  }
  const RunTable cpu_table{table, nullptr};
  for (std::size_t off : kOffsets) {
    for (std::size_t ps : {std::size_t{1008}, std::size_t{1005}}) {  // float4 strides and odd ones
      const std::size_t ss = ps + 4, xs = ps + 8;
      const std::string what = "offset " + std::to_string(off) + ", param stride " + std::to_string(ps);
      const Vec g = uniform_floats(off + 3 * ps, 20), w0 = uniform_floats(off + 3 * ps, 21), m0 = uniform_floats(off + 3 * ss, 22);
      const Vec v0 = uniform_floats(off + 3 * ss, 23, 0.0f, 1.0f);
      for (bool nesterov : {false, true}) {
        Vec w1 = w0, m1 = m0, w2 = w0, m2 = m0;
        cuda::launch_sgd_update_runs(w1.data() + off, g.data() + off, ps, m1.data() + off, ss, n, table.data(), 3,
                                     nesterov, nullptr);
        cpu_.update(testing::update_args(UpdateKind::Sgd, w2.data() + off, g.data() + off, ps, {m2.data() + off, ss}, {}, {}, n,
                                         cpu_table, nesterov));
        EXPECT_EQ(differing(w1, w2), 0u) << "sgd_update_runs w, " << what;
        EXPECT_EQ(differing(m1, m2), 0u) << "sgd_update_runs m, " << what;
      }
      for (bool decoupled : {false, true}) {
        Vec w1 = w0, m1 = m0, v1 = v0, w2 = w0, m2 = m0, v2 = v0;
        cuda::launch_adam_update_runs(w1.data() + off, g.data() + off, ps, m1.data() + off, ss, v1.data() + off, ss, n,
                                      table.data(), 3, decoupled, nullptr, 4, nullptr);
        cpu_.update(testing::update_args(UpdateKind::Adam, w2.data() + off, g.data() + off, ps, {m2.data() + off, ss},
                                         {v2.data() + off, ss}, {}, n, cpu_table, false, decoupled, 4));
        EXPECT_EQ(differing(w1, w2), 0u) << "adam_update_runs w, " << what;
        EXPECT_EQ(differing(m1, m2), 0u) << "adam_update_runs m, " << what;
        EXPECT_EQ(differing(v1, v2), 0u) << "adam_update_runs v, " << what;
      }
      {
        Vec w1 = w0, m1 = m0, w2 = w0, m2 = m0;
        cuda::launch_signgd_update_runs(w1.data() + off, g.data() + off, ps, m1.data() + off, ss, n, table.data(), 3,
                                        nullptr);
        cpu_.update(testing::update_args(UpdateKind::SignGd, w2.data() + off, g.data() + off, ps, {m2.data() + off, ss}, {}, {},
                                         n, cpu_table));
        EXPECT_EQ(differing(w1, w2), 0u) << "signgd_update_runs w, " << what;
        EXPECT_EQ(differing(m1, m2), 0u) << "signgd_update_runs m, " << what;
      }
      for (bool nesterov : {false, true}) {
        Vec m1 = m0, o1(off + 3 * xs, kNaN), m2 = m0, o2(off + 3 * xs, kNaN);
        cuda::launch_momentum_accumulate_runs(m1.data() + off, ss, g.data() + off, ps, o1.data() + off, xs, n,
                                              table.data(), 3, nesterov, nullptr);
        cpu_.update(testing::update_args(UpdateKind::Momentum, nullptr, g.data() + off, ps, {m2.data() + off, ss}, {},
                                         {o2.data() + off, xs}, n, cpu_table, nesterov));
        EXPECT_EQ(differing(m1, m2), 0u) << "momentum_accumulate_runs m, " << what;
        EXPECT_EQ(differing(o1, o2), 0u) << "momentum_accumulate_runs out, " << what;
      }
      {  // NMD per entry: its own ||m|| (partials per entry), as the one-run launch computes it
        Vec w1 = w0, m1 = m0;
        std::vector<double> ws(cuda::nmd_runs_workspace(n, 3));
        cuda::launch_nmd_update_runs(w1.data() + off, g.data() + off, ps, m1.data() + off, ss, n, table.data(), 3,
                                     ws.data(), nullptr);
        for (int i = 0; i < 3; ++i) {
          const RunUpdate& u = table[static_cast<std::size_t>(i)];
          Vec w2(w0.begin() + off + u.run * ps, w0.begin() + off + u.run * ps + n);
          Vec m2(m0.begin() + off + u.slice * ss, m0.begin() + off + u.slice * ss + n);
          const Vec g2(g.begin() + off + u.run * ps, g.begin() + off + u.run * ps + n);
          std::vector<double> partials(cuda::kMaxReduceBlocks), norm(1);
          cuda::launch_nmd_update(w2.data(), g2.data(), m2.data(), n, u.lr, u.momentum, u.weight_decay,
                                  partials.data(), norm.data(), nullptr);
          EXPECT_EQ(differing(Vec(w1.begin() + off + u.run * ps, w1.begin() + off + u.run * ps + n), w2), 0u)
              << "nmd_update_runs w, entry " << i << ", " << what;
          EXPECT_EQ(differing(Vec(m1.begin() + off + u.slice * ss, m1.begin() + off + u.slice * ss + n), m2), 0u)
              << "nmd_update_runs m, entry " << i << ", " << what;
        }
      }
      {
        const Vec d = uniform_floats(off + 3 * xs, 24);
        Vec w1 = w0, w2 = w0;
        cuda::launch_muon_step_runs(w1.data() + off, ps, d.data() + off, xs, n, table.data(), 3, nullptr);
        cpu_.update(testing::update_args(UpdateKind::MuonStep, w2.data() + off, nullptr, ps, {}, {},
                                         {const_cast<float*>(d.data()) + off, xs}, n, cpu_table));
        EXPECT_EQ(differing(w1, w2), 0u) << "muon_step_runs w, " << what;
      }
    }
  }
}

// The data kernel: the coalesced form (64 rows a block, 16-byte stores where x is aligned, a
// last block of 3 rows and a 3-entry tail) against the CPU's generator, train and eval draws.
TEST_F(KernelsEmulated, SparseParityDataBitIdentical) {
  const int count = 131;
  const testing::ParityCase pc;
  const ParityTables tables{pc.subsets.data(), pc.thresholds.data()};
  for (int32_t fixed_task : {-1, 2}) {
    const ParityDraw draw = testing::ParityCase::draw(fixed_task);
    const std::size_t row = testing::ParityCase::kTasks + testing::ParityCase::kBits;
    for (std::size_t off : kOffsets) {
      Vec x1(off + row * count, kNaN), x2 = x1;
      std::vector<int32_t> l1(count, -7), t1(count, -7), l2 = l1, t2 = t1;
      cuda::launch_sparse_parity(draw, tables, count, x1.data() + off, l1.data(), t1.data(), nullptr, nullptr);
      cpu_.sparse_parity(draw, tables, count, x2.data() + off, l2.data(), t2.data());
      EXPECT_EQ(differing(x1, x2), 0u) << "x, fixed_task " << fixed_task << ", offset " << off;
      EXPECT_EQ(l1, l2) << "labels";
      EXPECT_EQ(t1, t2) << "tasks";
    }
  }
}

// assoc_memory's draw through the same kernel launcher (DrawKind::Assoc: one row per thread).
TEST_F(KernelsEmulated, AssocMemoryDataBitIdentical) {
  const int n_facts = 32, count = 131;
  std::vector<int32_t> answers(n_facts);
  for (int i = 0; i < n_facts; ++i) answers[static_cast<std::size_t>(i)] = (5 * i + 1) % 9;
  std::vector<uint32_t> thresholds;
  for (int i = 1; i < n_facts; ++i) thresholds.push_back(static_cast<uint32_t>(i) * (4294967295u / n_facts));
  ParityTables tables;
  tables.zipf_thresholds = thresholds.data();
  tables.answers = answers.data();
  ParityDraw draw;
  draw.kind = DrawKind::Assoc;
  draw.seed = 3;
  draw.n_tasks = n_facts;
  draw.n_answers = 9;
  draw.noise_threshold = 1u << 31;
  draw.n_groups = 4;
  for (std::size_t off : kOffsets) {
    Vec x1(off + static_cast<std::size_t>(n_facts) * count, kNaN), x2 = x1;
    std::vector<int32_t> l1(count, -7), t1(count, -7), l2 = l1, t2 = t1;
    cuda::launch_sparse_parity(draw, tables, count, x1.data() + off, l1.data(), t1.data(), nullptr, nullptr);
    cpu_.sparse_parity(draw, tables, count, x2.data() + off, l2.data(), t2.data());
    EXPECT_EQ(differing(x1, x2), 0u) << "x, offset " << off;
    EXPECT_EQ(l1, l2) << "labels";
    EXPECT_EQ(t1, t2) << "groups";
  }
}

}  // namespace
}  // namespace skillrun
