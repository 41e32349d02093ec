// The MLP's layer ops (Backend::linear_forward_runs, linear_weight_grad_runs,
// linear_input_grad_relu_runs) on every backend under test against the CPU backend, whose
// defaults are the unfused calls. On "cuda" they run cuBLASLt epilogues (bias + ReLU with the
// ReLU mask kept, BGRADB, DRELU), on "cuda_unfused" (SKILLRUN_CUBLASLT=off) the unfused path;
// the cases also force the fused backend's fallbacks (misaligned bias strides or masks, a mask the
// last forward did not write, a size of 1). Shapes aligned and ragged (not multiples of
// 4/8/16/128), one run and three runs at strides with NaN gaps, x shared (stride 0) or per run;
// outputs start NaN. Tolerances: products the backend's gemm tolerance; the fused bias gradient
// sums `rows` fp32 terms in some order while the CPU sums in double: its own bound (db_bound
// below). The NaN contract of the ReLU per path, the facts about cuBLASLt that only a GPU run
// settles ("[ fact     ]" lines) and the mask bits at 0, -0 and NaN: docs/CUDA.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/round_up.h"
#include "support/on_backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/fused_linear_limits.h"  // plain C++: what the fused path takes, the mask layout
#include "backends_under_test.h"
#include "support/test_data.h"

namespace skillrun::conformance {
namespace {

using HostVec = std::vector<float>;
using testing::kNaN;

HostVec random_vector(std::size_t n, unsigned seed, float scale = 1.0f) {
  return testing::uniform_floats(n, seed, -scale, scale);
}

// `runs` blocks of n random values at `stride` (NaN between them); stride 0: one block.
HostVec per_run(std::size_t n, std::size_t stride, int runs, unsigned seed) {
  if (stride == 0) return random_vector(n, seed);
  HostVec v((runs - 1) * stride + n, kNaN);
  for (int r = 0; r < runs; ++r) {
    const HostVec part = random_vector(n, seed + 977u * static_cast<unsigned>(r));
    std::copy(part.begin(), part.end(), v.begin() + static_cast<std::ptrdiff_t>(r * stride));
  }
  return v;
}



using skillrun::testing::on;

// The backend's ReLU masks for `runs` runs of a (rows x cols) activation: null when it keeps none.
// `offset` bytes past an allocation's start (which is 256-byte aligned).
struct Masks {
  Buffer<unsigned char> buffer;
  std::size_t stride = 0, offset = 0;
  Masks(Backend& backend, int rows, int cols, int runs, std::size_t offset_bytes = 0) {
    const std::size_t bytes = backend.relu_mask_bytes(rows, cols);
    if (bytes == 0) return;
    stride = round_up(bytes, 256);
    offset = offset_bytes;
    buffer = Buffer<unsigned char>(backend, stride * runs + offset);
  }
  void* data() { return buffer.empty() ? nullptr : buffer.data() + offset; }
};

struct Shape {
  int rows, fan_in, fan_out;
  std::string name() const {
    return std::to_string(rows) + "x" + std::to_string(fan_in) + "->" + std::to_string(fan_out);
  }
  bool operator==(const Shape&) const = default;
  int smallest() const { return std::min({rows, fan_in, fan_out}); }
};

// 256 x 64 -> 128: every size a multiple of 16 (and of 128 for the mask); 301 x 37 -> 83 and
// 130 x 129 -> 257: none is (the mask's columns padded to 128 and 384 bits).
const Shape kAligned{256, 64, 128};
const std::vector<Shape> kShapes = {kAligned, {301, 37, 83}, {130, 129, 257}};
// The aligned shape with one size 1: rows (the k of the bias gradients), fan_in, fan_out. Where
// cuBLASLt's bias epilogues were seen to go wrong (fused_linear_limits.h): the fused backend
// must leave them to the unfused ops.
const std::vector<Shape> kSizeOne = {{1, 64, 128}, {256, 1, 128}, {256, 64, 1}};

// The bound on the fused bias gradient. db_j = sum over `rows` terms dZ_ij, which the CPU sums
// in double (exact to ~1e-16, then rounded once to fp32) and a fused epilogue sums in fp32 in an
// order of its own (a tree over tiles, split-K partial sums, ...). Whatever the order, a sum of n
// terms in floating point with unit roundoff u = 2^-24 is off by at most gamma_{n-1} sum_i |a_i|,
// gamma_m = m u / (1 - m u) (Higham, Accuracy and Stability, 2nd ed., eq. 4.4, which holds for
// any summation order since each term takes part in at most n - 1 additions). Operands rounded
// to tf32 / bf16 first (if the epilogue sums the converted B operand) add delta sum_i |a_i|.
// Both fp32 results are rounded once more (CPU: double -> float; GPU: its last addition is
// already counted): u |db_j| each. Per element |got_j - ref_j| <= (gamma + delta (1 + gamma))
// S_j + 2 u |ref_j|, with S_j = sum_i |dZ_ij|; the normalised error over the vector is then at
// most sqrt(sum_j bound_j^2) / ||ref||. For random dZ in [-1, 1) S_j / |db_j| ~ 0.9 sqrt(rows),
// so at 301 rows the bound is ~3e-4 of ||db||, while a lost row or column is ~5e-2: the bound
// is loose enough for any order and tight enough for any bug. Only db gets it: the products keep
// the backend's gemm tolerance, the ReLU backward is exact (a multiplication by 0 or 1).
double db_bound(const HostVec& dZ, std::size_t stride_dz, const HostVec& ref_db, std::size_t db_stride, int rows,
                int fan_out, int runs, double delta) {
  const double u = std::ldexp(1.0, -24);
  const double gamma = (rows - 1) * u / (1.0 - (rows - 1) * u);
  double bound2 = 0.0, norm2 = 0.0;
  for (int r = 0; r < runs; ++r) {
    for (int j = 0; j < fan_out; ++j) {
      double s = 0.0;
      for (int i = 0; i < rows; ++i) s += std::fabs(dZ[r * stride_dz + static_cast<std::size_t>(i) * fan_out + j]);
      const double ref = ref_db[r * db_stride + j];
      const double b = (gamma + delta * (1.0 + gamma)) * s + 2.0 * u * std::fabs(ref);
      bound2 += b * b;
      norm2 += ref * ref;
    }
  }
  return std::sqrt(bound2 / norm2);
}

struct ForwardCase;   // below, with the forward tests
struct BackwardCase;  // below, with the backward tests
struct BackwardResult;

class LinearLayers : public BackendCase {
 protected:
  // The fused path is expected where the backend keeps ReLU masks (cuBLASLt on) at fp32 and the
  // shape is aligned: there it must have run (cuBLASLt supports these epilogues for fp32 on sm_90).
  bool expects_fused() const {
    return backend_->relu_mask_bytes(1, 1) > 0 && under_test_->gemm_tolerance <= 1e-5;
  }
  void report(const std::string& what, Backend::FusedLinearCounts before) {
    const Backend::FusedLinearCounts now = backend_->fused_linear_counts();
    std::printf("[ info     ] %s on %s: %llu fused, %llu unfused\n", what.c_str(), GetParam().c_str(),
                static_cast<unsigned long long>(now.fused - before.fused),
                static_cast<unsigned long long>(now.unfused - before.unfused));
  }

  bool check_forward(const ForwardCase& c);
  BackwardResult check_backward(const BackwardCase& c);

};

// ---- forward ------------------------------------------------------------------------------
// out_r = act(x_r W_r^T + b_r) over 1 or 3 runs: W and b at a parameter stride (aligned, or
// one float off: a batched bias that is not 16-byte aligned in every run takes the fallback), x
// shared or per run, out at a stride with a NaN gap that must stay NaN.
struct ForwardCase {
  Shape s;
  int runs;
  bool relu;
  bool shared_x;
  std::size_t param_pad;  // floats added to the parameter stride: 64 keeps 256-byte alignment, 1 breaks it
};

std::vector<HostVec> forward_on(Backend& b, const ForwardCase& c, const HostVec& x, std::size_t stride_x,
                                const HostVec& W, const HostVec& bias, std::size_t param_stride,
                                std::size_t stride_out) {
  const Shape s = c.s;
  Buffer<float> xb = on(b, x), wb = on(b, W), bb = on(b, bias);
  Buffer<float> out = on(b, HostVec((c.runs - 1) * stride_out + static_cast<std::size_t>(s.rows) * s.fan_out, kNaN));
  Masks masks(b, s.rows, s.fan_out, c.runs);
  b.linear_forward_runs(xb.data(), stride_x, wb.data(), bb.data(), param_stride, out.data(), stride_out, s.rows,
                        s.fan_in, s.fan_out, c.relu, c.relu ? masks.data() : nullptr, masks.stride, c.runs);
  b.synchronize();
  return {out.download()};
}

// Runs `c` on the backend under test and on the CPU and compares the outputs; true when the
// backend fused the call.
bool LinearLayers::check_forward(const ForwardCase& c) {
  const Shape s = c.s;
  const std::size_t nx = static_cast<std::size_t>(s.rows) * s.fan_in;
  const std::size_t stride_x = c.shared_x || c.runs == 1 ? 0 : round_up(nx, 64) + 64;
  const std::size_t param_stride = round_up(static_cast<std::size_t>(s.fan_out) * s.fan_in, 64) + c.param_pad;
  const std::size_t stride_out = round_up(static_cast<std::size_t>(s.rows) * s.fan_out, 64) + 64;
  const HostVec x = per_run(nx, stride_x, c.runs, 11);
  const HostVec W = per_run(static_cast<std::size_t>(s.fan_out) * s.fan_in, param_stride, c.runs, 12);
  const HostVec bias = per_run(static_cast<std::size_t>(s.fan_out), param_stride, c.runs, 13);
  const std::string what = "forward " + s.name() + " runs " + std::to_string(c.runs) + (c.relu ? " relu" : "") +
                           (c.shared_x ? " shared x" : "") + " pad " + std::to_string(c.param_pad);
  const auto before = backend_->fused_linear_counts();
  const auto ref = forward_on(cpu_, c, x, stride_x, W, bias, param_stride, stride_out);
  const auto got = forward_on(*backend_, c, x, stride_x, W, bias, param_stride, stride_out);
  expect_close(what, got[0], ref[0], under_test_->gemm_tolerance);
  report(what, before);
  return backend_->fused_linear_counts().fused != before.fused;
}

TEST_P(LinearLayers, ForwardBiasAndReluOverRuns) {
  std::vector<ForwardCase> cases;
  for (const Shape& s : kShapes)
    for (int runs : {1, 3})
      for (bool relu : {true, false}) cases.push_back({s, runs, relu, runs > 1 && s.rows != 301, 64});
  cases.push_back({{301, 83, 2}, 3, false, true, 64});  // the logits head: 2 outputs, no ReLU
  cases.push_back({kAligned, 3, true, false, 1});       // a bias stride not 16-byte aligned per run
  for (const Shape& s : kSizeOne)
    for (int runs : {1, 3}) cases.push_back({s, runs, true, runs > 1, 64});
  for (const ForwardCase& c : cases) {
    const Shape s = c.s;
    const std::string what = "forward " + s.name() + " runs " + std::to_string(c.runs);
    const auto before = backend_->fused_linear_counts();
    check_forward(c);
    // One run and a pack of 3 (bias and mask batch strides, x shared at stride 0): a pack that
    // fell back would lose the fusion exactly where it matters, so both must fuse.
    if (expects_fused() && s == kAligned && c.param_pad == 64) {
      EXPECT_EQ(backend_->fused_linear_counts().fused - before.fused, 1u)
          << what << ": cuBLASLt refused the fused forward (see the warning naming the problem)";
    }
    if (backend_->relu_mask_bytes(1, 1) > 0 && (c.param_pad == 1 || s.smallest() == 1)) {
      EXPECT_EQ(backend_->fused_linear_counts().unfused - before.unfused, 1u) << what << ": must take the fallback";
    }
  }
}

// The NaN contract (docs/CUDA.md, "NaN"). A NaN in x gives NaN in its row's pre-activations and
// a NaN in W (a diverged weight) NaN in its unit's column. Without ReLU (the logits head) every
// path keeps them. Through the ReLU, the CPU and the unfused CUDA kernel keep them too (v < 0 ?
// 0 : v, not fmaxf); the fused ReLU is cuBLASLt's, documented as max(x, 0), and may map them to
// 0: where the CPU's output is NaN, a fused forward's is NaN or 0, and every other output
// matches. A run is not lost to that: every eval checks the parameters (NonFiniteWeights.* in
// tests/integration/test_end_to_end.cpp). Each call is held to the contract of the path it
// took, read from the backend's counts; on "cuda" (fp32) the ReLU forward must be the fused one,
// or the test would pass for the wrong reason.
TEST_P(LinearLayers, ForwardNaNContractPerPath) {
  for (const bool relu : {true, false}) {
    const ForwardCase c{kAligned, 1, relu, false, 64};
    const Shape s = c.s;
    HostVec x = random_vector(static_cast<std::size_t>(s.rows) * s.fan_in, 21);
    x[5 * static_cast<std::size_t>(s.fan_in) + 3] = kNaN;  // row 5
    HostVec W = random_vector(static_cast<std::size_t>(s.fan_out) * s.fan_in, 22);
    W[7 * static_cast<std::size_t>(s.fan_in) + 2] = kNaN;  // unit 7
    const HostVec bias = random_vector(static_cast<std::size_t>(s.fan_out), 23);
    const std::size_t stride_out = static_cast<std::size_t>(s.rows) * s.fan_out;
    const std::string what = std::string("forward with a NaN in row 5 and unit 7") + (relu ? ", ReLU" : ", no ReLU");
    const auto ref = forward_on(cpu_, c, x, 0, W, bias, 0, stride_out);
    const auto before = backend_->fused_linear_counts();
    const auto got = forward_on(*backend_, c, x, 0, W, bias, 0, stride_out);
    const bool fused = backend_->fused_linear_counts().fused - before.fused == 1;
    if (expects_fused()) {
      EXPECT_TRUE(fused) << what << ": not the fused path";
    }
    ASSERT_TRUE(std::isnan(ref[0][5 * static_cast<std::size_t>(s.fan_out)])) << "the CPU reference lost the NaN";
    ASSERT_TRUE(std::isnan(ref[0][7])) << "the CPU reference lost the NaN of unit 7";
    // The contract's reference: the CPU's, with the NaNs a fused ReLU turned into 0 taken as 0.
    HostVec want = ref[0];
    std::size_t kept = 0, zeroed = 0, lost = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      if (!std::isnan(want[i])) continue;
      if (std::isnan(got[0][i])) {
        ++kept;
      } else if (fused && relu && got[0][i] == 0.0f) {
        ++zeroed;
        want[i] = got[0][i];
      } else {
        ++lost;
      }
    }
    std::printf("[ info     ] %s on %s (%s): of %zu NaN outputs, %zu kept NaN, %zu came out 0\n", what.c_str(),
                GetParam().c_str(), fused ? "fused" : "unfused", kept + zeroed + lost, kept, zeroed);
    EXPECT_EQ(lost, 0u) << what << ": outputs NaN on the CPU that are neither NaN nor (fused ReLU only) 0";
    expect_close(what, got[0], want, under_test_->gemm_tolerance);
  }
}

// ---- backward -----------------------------------------------------------------------------
// Two layers as in Mlp::backward: layer 0 (x shared by the runs, stride 0) -> ReLU -> layer 1.
// On the backend under test: the forward of layer 0 writes H and its masks; then layer 1's
// weight gradient (dW1, db1 from dZ1 and H), its input gradient through the ReLU (dX = dZ1 W1 *
// [H > 0], from the mask) with layer 0's bias gradient db0 = colsum(dX), and layer 0's weight
// gradient from dX and the shared x. The CPU runs
// the same backward from the backend's H (so that both apply one ReLU pattern), which is also
// what makes the mask's meaning checkable: bit set exactly where H > 0.
struct BackwardCase {
  Shape s;  // rows, fan_in = hidden width, fan_out of layer 1
  int runs;
  std::size_t param_pad;
  std::size_t mask_offset;  // bytes added to the masks' base: 16 breaks their 256-byte alignment
  bool with_db0 = true;     // the ReLU backward also gives layer 0's bias gradient (as in the Mlp)
  int d0 = 0;               // layer 0's inputs; 0: 32 for the aligned shape, 19 otherwise
  bool shared_dz = false;   // dZ1 shared by the runs (stride 0): a stride-0 B operand
  int inputs() const { return d0 > 0 ? d0 : s == kAligned ? 32 : 19; }
};

struct BackwardResult {
  HostVec H, dW1, db1, dX, dW0, db0;
  // Whether each countable call was fused: the forward, layer 1's weight (and bias) gradient, the
  // ReLU backward (layer 0's weight gradient has nothing to fuse).
  bool forward_fused = false, weight_grad_fused = false, input_grad_fused = false;
};

// `given`: the CPU takes the other backend's H (before its backward) and dX (before layer 0's
// weight gradient), so that every op is compared on the same inputs.
BackwardResult backward_on(Backend& b, const BackwardCase& c, int d0, const HostVec& x, const HostVec& W0,
                           const HostVec& b0, const HostVec& W1, const HostVec& dZ1, std::size_t param_stride,
                           std::size_t stride_h, std::size_t stride_dz, const BackwardResult* given) {
  uint64_t fused = b.fused_linear_counts().fused;
  const auto fused_since = [&] {
    const uint64_t now = b.fused_linear_counts().fused;
    return std::exchange(fused, now) != now;
  };
  const Shape s = c.s;
  const std::size_t nh = static_cast<std::size_t>(s.rows) * s.fan_in;
  Buffer<float> xb = on(b, x), w0 = on(b, W0), bb0 = on(b, b0), w1 = on(b, W1), dz = on(b, dZ1);
  Buffer<float> H = on(b, HostVec((c.runs - 1) * stride_h + nh, kNaN));
  // Room for the larger of the two layers' weights (layer 0: fan_in x d0, layer 1: fan_out x fan_in).
  const std::size_t params = (c.runs - 1) * param_stride + static_cast<std::size_t>(std::max(s.fan_out, d0)) * s.fan_in;
  Buffer<float> dW1 = on(b, HostVec(params, kNaN)), db1 = on(b, HostVec(params, kNaN));
  Buffer<float> dX = on(b, HostVec((c.runs - 1) * stride_h + nh, kNaN));
  Buffer<float> dW0 = on(b, HostVec(params, kNaN)), db0 = on(b, HostVec(params, kNaN));
  Masks masks(b, s.rows, s.fan_in, c.runs, c.mask_offset);
  b.linear_forward_runs(xb.data(), 0, w0.data(), bb0.data(), param_stride, H.data(), stride_h, s.rows, d0, s.fan_in,
                        true, masks.data(), masks.stride, c.runs);
  const bool forward_fused = fused_since();
  if (given != nullptr) H.upload(given->H);
  b.linear_weight_grad_runs(dz.data(), stride_dz, H.data(), stride_h, dW1.data(), db1.data(), param_stride, s.rows,
                            s.fan_in, s.fan_out, c.runs);
  const bool weight_grad_fused = fused_since();
  b.linear_input_grad_relu_runs(dz.data(), stride_dz, w1.data(), param_stride, H.data(), stride_h, masks.data(),
                                masks.stride, dX.data(), stride_h, c.with_db0 ? db0.data() : nullptr, s.rows,
                                s.fan_in, s.fan_out, c.runs);
  const bool input_grad_fused = fused_since();
  b.synchronize();
  const HostVec own_dX = dX.download();
  if (given != nullptr) dX.upload(given->dX);
  // Layer 0's weight gradient: x shared by the runs, no bias gradient (it came with dX).
  b.linear_weight_grad_runs(dX.data(), stride_h, xb.data(), 0, dW0.data(), nullptr, param_stride, s.rows, d0,
                            s.fan_in, c.runs);
  b.synchronize();
  return {H.download(),   dW1.download(), db1.download(),    own_dX,          dW0.download(),
          db0.download(), forward_fused,  weight_grad_fused, input_grad_fused};
}

// Runs `c` on the backend under test and on the CPU (on the backend's H and dX) and compares
// every output, the bias gradients against their bound; returns the backend's result.
BackwardResult LinearLayers::check_backward(const BackwardCase& c) {
  const Shape s = c.s;
  const int d0 = c.inputs();
  const std::size_t nh = static_cast<std::size_t>(s.rows) * s.fan_in;
  const std::size_t widest = static_cast<std::size_t>(std::max(s.fan_out, d0)) * s.fan_in;
  const std::size_t param_stride = round_up(widest, 64) + c.param_pad;
  const std::size_t stride_h = round_up(nh, 64) + 64;
  const std::size_t stride_dz = c.shared_dz ? 0 : round_up(static_cast<std::size_t>(s.rows) * s.fan_out, 64) + 64;
  const HostVec x = random_vector(static_cast<std::size_t>(s.rows) * d0, 31);
  const HostVec W0 = per_run(static_cast<std::size_t>(s.fan_in) * d0, param_stride, c.runs, 32);
  const HostVec b0 = per_run(static_cast<std::size_t>(s.fan_in), param_stride, c.runs, 33);
  const HostVec W1 = per_run(static_cast<std::size_t>(s.fan_out) * s.fan_in, param_stride, c.runs, 34);
  const HostVec dZ1 = per_run(static_cast<std::size_t>(s.rows) * s.fan_out, stride_dz, c.runs, 35);
  const std::string what = "backward " + s.name() + " (layer 0 from " + std::to_string(d0) + ") runs " +
                           std::to_string(c.runs) + " pad " + std::to_string(c.param_pad) + " mask offset " +
                           std::to_string(c.mask_offset) + (c.with_db0 ? "" : " without db0") +
                           (c.shared_dz ? " dZ shared" : "");
  const auto before = backend_->fused_linear_counts();
  const BackwardResult got =
      backward_on(*backend_, c, d0, x, W0, b0, W1, dZ1, param_stride, stride_h, stride_dz, nullptr);
  const BackwardResult ref = backward_on(cpu_, c, d0, x, W0, b0, W1, dZ1, param_stride, stride_h, stride_dz, &got);
  report(what, before);
  const double tol = under_test_->gemm_tolerance, delta = under_test_->operand_rounding;
  expect_close(what + ": dW1", got.dW1, ref.dW1, tol);
  const double bound1 = db_bound(dZ1, stride_dz, ref.db1, param_stride, s.rows, s.fan_out, c.runs, delta);
  const double e1 = expect_close(what + ": db1", got.db1, ref.db1, bound1);
  expect_close(what + ": dX", got.dX, ref.dX, tol);
  expect_close(what + ": dW0", got.dW0, ref.dW0, tol);
  // Layer 0's db is the column sums of the backend's own dX (fused: in fp32 in the epilogue):
  // against those sums in double on the host, so that only the summation differs.
  HostVec want_db0(got.db0.size(), kNaN);
  if (c.with_db0) {
    for (int r = 0; r < c.runs; ++r)
      for (int j = 0; j < s.fan_in; ++j) {
        double sum = 0.0;
        for (int i = 0; i < s.rows; ++i) sum += got.dX[r * stride_h + static_cast<std::size_t>(i) * s.fan_in + j];
        want_db0[r * param_stride + j] = static_cast<float>(sum);
      }
  }
  const double bound0 =
      c.with_db0 ? db_bound(got.dX, stride_h, want_db0, param_stride, s.rows, s.fan_in, c.runs, delta) : 0.0;
  const double e0 = expect_close(what + ": db0", got.db0, want_db0, bound0);
  std::printf("[ info     ] %s: db errors %.3g (bound %.3g), %.3g (bound %.3g)\n", what.c_str(), e1, bound1, e0,
              bound0);
  return got;
}

TEST_P(LinearLayers, BackwardWeightBiasAndReluGradientsOverRuns) {
  std::vector<BackwardCase> cases;
  for (const Shape& s : kShapes)
    for (int runs : {1, 3}) cases.push_back({s, runs, 64, 0});
  cases.push_back({kAligned, 3, 1, 0});    // bias gradients not 16-byte aligned per run: fallback
  cases.push_back({kAligned, 1, 64, 16});  // masks not 256-byte aligned: forward and ReLU backward unfused
  for (int runs : {1, 3}) cases.push_back({kAligned, runs, 64, 0, false});  // the ReLU backward alone (DRELU)
  for (const Shape& s : kSizeOne) cases.push_back({s, 3, 64, 0});           // a size 1 in layer 1: unfused
  cases.push_back({kAligned, 3, 64, 0, true, 1});                           // layer 0 from 1 input: unfused forward
  for (const BackwardCase& c : cases) {
    const auto before = backend_->fused_linear_counts();
    const BackwardResult got = check_backward(c);
    const std::string what = "backward " + c.s.name() + " runs " + std::to_string(c.runs);
    if (expects_fused() && c.s == kAligned && c.d0 == 0 && c.param_pad == 64 && c.mask_offset == 0) {
      // the forward (RELU_AUX_BIAS), layer 1's weight and bias gradient (BGRADB), the ReLU
      // backward with layer 0's bias gradient (DRELU_BGRAD, or DRELU without db0); layer 0's
      // weight gradient has nothing to fuse and is not counted
      EXPECT_EQ(backend_->fused_linear_counts().fused - before.fused, 3u)
          << what << ": cuBLASLt refused a fused product (see the warnings naming the problem)";
    }
    if (backend_->relu_mask_bytes(1, 1) > 0 && c.mask_offset != 0) {
      EXPECT_GE(backend_->fused_linear_counts().unfused - before.unfused, 2u)
          << what << ": a misaligned mask must send the forward and the ReLU backward to the fallback";
    }
    // A product with a size of 1 is never fused (every size of it written out, not taken from
    // fused_sizes_ok): the forward (rows, d0, hidden), layer 1's weight gradient and the ReLU
    // backward (rows, hidden, fan_out; the backward also needs the fused forward's mask).
    const bool forward_fusable = std::min(c.s.rows, c.inputs()) > 1 && c.s.fan_in > 1;
    const bool layer1_fusable = c.s.smallest() > 1;
    if (!forward_fusable) {
      EXPECT_FALSE(got.forward_fused) << what << ": forward with a size 1 fused";
    }
    if (!layer1_fusable) {
      EXPECT_FALSE(got.weight_grad_fused) << what << ": BGRADB with a size 1 fused";
    }
    if (!layer1_fusable || !forward_fusable) {
      EXPECT_FALSE(got.input_grad_fused) << what << ": DRELU with a size 1 (or without a fused mask) fused";
    }
  }
}

// ---- what only a GPU run settles (docs/CUDA.md, "Fused epilogues") ------------------------
// Each fused product in the forms the Mlp and its packs ask for: one run, batched (3 runs at
// strides), and batched with an operand the runs share at stride 0 (x in the forward and in a
// one-layer model's BGRADB, dZ in the backward), each checked against the CPU as above and
// reported as one "[ fact     ]" line, which bench/gpu_session.sh copies into its summary. On
// "cuda" (fp32; the session runs on sm_90) each must be fused: the fusion was built on that
// assumption, and a refusal would cost the step its fusion without failing anything else.
// Backends without a fused path have no facts to report; they still run (and check) every case.
TEST_P(LinearLayers, EpilogueFactsOnThisGpu) {
  const bool has_fused_path = backend_->relu_mask_bytes(1, 1) > 0;
  uint64_t refused = backend_->fused_linear_counts().refused;
  const auto fact = [&](const std::string& what, bool fused) {
    if (!has_fused_path) return;
    const uint64_t now = backend_->fused_linear_counts().refused;
    std::printf("[ fact     ] %s: %s: %s\n", GetParam().c_str(), what.c_str(),
                fused            ? "fused"
                : now != refused ? "REFUSED by cuBLASLt (the warning above names the problem and its status)"
                                 : "not fused");
    refused = now;
    if (GetParam() == "cuda") {
      EXPECT_TRUE(fused) << what << ": not fused on fp32";
    }
  };
  const Shape s = kAligned;
  for (const bool shared_x : {false, true}) {
    const std::string batch = shared_x ? "batch 3, x at stride 0" : "batch 3";
    fact("RELU_AUX_BIAS (T,N), forward with the ReLU mask, " + batch, check_forward({s, 3, true, shared_x, 64}));
    fact("BIAS (T,N), the logits head, " + batch, check_forward({s, 3, false, shared_x, 64}));
  }
  fact("RELU_AUX_BIAS (T,N), one run", check_forward({s, 1, true, false, 64}));
  // The backward of a hidden layer: BGRADB for layer 1 (B = dZ), then DRELU_BGRAD (B = dZ).
  struct Form {
    int runs;
    bool shared_dz, with_db0;
    const char* name;
  };
  for (const Form f : {Form{1, false, true, "one run"}, Form{3, false, true, "batch 3"},
                       Form{3, true, true, "batch 3, dZ at stride 0"}, Form{3, false, false, "batch 3"}}) {
    const BackwardResult got = check_backward({s, f.runs, 64, 0, f.with_db0, 0, f.shared_dz});
    if (f.with_db0) fact(std::string("BGRADB (N,T), weight and bias gradient, ") + f.name, got.weight_grad_fused);
    fact(std::string(f.with_db0 ? "DRELU_BGRAD" : "DRELU") + " (N,N), ReLU backward from the mask, " + f.name,
         got.input_grad_fused);
  }
  // BGRADB with A = x shared by the runs (stride 0): the output layer of a model without hidden
  // layers, or any layer 0 given its bias gradient here.
  const int runs = 3;
  const std::size_t param_stride = round_up(static_cast<std::size_t>(s.fan_out) * s.fan_in, 64) + 64;
  const std::size_t stride_dz = round_up(static_cast<std::size_t>(s.rows) * s.fan_out, 64) + 64;
  const HostVec x = random_vector(static_cast<std::size_t>(s.rows) * s.fan_in, 71);
  const HostVec dZ = per_run(static_cast<std::size_t>(s.rows) * s.fan_out, stride_dz, runs, 72);
  const auto weight_grad = [&](Backend& b) {
    Buffer<float> xb = on(b, x), dz = on(b, dZ);
    const std::size_t params = (runs - 1) * param_stride + static_cast<std::size_t>(s.fan_out) * s.fan_in;
    Buffer<float> dW = on(b, HostVec(params, kNaN)), db = on(b, HostVec(params, kNaN));
    const uint64_t before = b.fused_linear_counts().fused;
    b.linear_weight_grad_runs(dz.data(), stride_dz, xb.data(), 0, dW.data(), db.data(), param_stride, s.rows, s.fan_in,
                              s.fan_out, runs);
    b.synchronize();
    return std::tuple{dW.download(), db.download(), b.fused_linear_counts().fused != before};
  };
  const auto [dW, db, fused] = weight_grad(*backend_);
  const auto [ref_dW, ref_db, cpu_fused] = weight_grad(cpu_);
  const std::string what = "BGRADB (N,T), weight and bias gradient, batch 3, x at stride 0";
  expect_close(what + ": dW", dW, ref_dW, under_test_->gemm_tolerance);
  expect_close(what + ": db", db, ref_db,
               db_bound(dZ, stride_dz, ref_db, param_stride, s.rows, s.fan_out, runs, under_test_->operand_rounding));
  fact(what, fused);
}

// The ReLU mask at the values where a rule must be chosen: pre-activations z > 0, z < 0, z = +0,
// z = -0 (attempted: the product may well give +0), z = 0 by cancellation, and NaN from a weight
// and from the bias (docs/CUDA.md: the mask bit for 0, -0 and NaN). x is all ones, so every row
// of a column has the same z. On every backend: the outputs (H = 0 at the zeros; NaN kept by the
// CPU and the unfused kernel, NaN or 0 from a fused ReLU) and the ReLU backward from them, which
// must be 0 wherever H > 0 does not hold (the CPU's [H > 0], exact at the zeros). Where the
// forward was fused: the mask bits as fused_linear_limits.h lays them out, each "[ fact     ]",
// and bit == (H > 0) at every finite element (the layout and the rule the backward relies on).
TEST_P(LinearLayers, ReluMaskBitsAtZeroMinusZeroAndNaN) {
  const int rows = 256, k = 4, cols = 128, outputs = 16;
  const float zero = 0.0f, minus_zero = -0.0f;
  struct Special {
    const char* name;
    float w0, w1, w_rest, bias;
  };
  const std::vector<Special> special = {{"z > 0", 0.5f, 0.25f, zero, 0.25f},
                                        {"z < 0", -0.5f, -0.25f, zero, -0.25f},
                                        {"z = +0", zero, zero, zero, zero},
                                        {"z = -0", minus_zero, minus_zero, minus_zero, minus_zero},
                                        {"z = 0 by cancellation", 0.5f, 0.5f, zero, -1.0f},
                                        {"z = NaN from a weight", kNaN, zero, zero, zero},
                                        {"z = NaN from the bias", 0.5f, zero, zero, kNaN}};
  const std::size_t nan_first = 5;  // special[5], [6] are the NaN columns
  const HostVec x(static_cast<std::size_t>(rows) * k, 1.0f);
  HostVec W = random_vector(static_cast<std::size_t>(cols) * k, 81);
  HostVec bias = random_vector(cols, 82);
  for (std::size_t j = 0; j < special.size(); ++j) {
    W[j * k] = special[j].w0;
    W[j * k + 1] = special[j].w1;
    for (int i = 2; i < k; ++i) W[j * k + i] = special[j].w_rest;
    bias[j] = special[j].bias;
  }
  const HostVec W1 = random_vector(static_cast<std::size_t>(outputs) * cols, 83);
  const HostVec dZ = random_vector(static_cast<std::size_t>(rows) * outputs, 84);
  const std::size_t nh = static_cast<std::size_t>(rows) * cols;
  // Forward (relu, masks), then the ReLU backward with the bias gradient; `given`: the H the CPU
  // takes for its backward (the backend's, so that both apply one pattern).
  struct Out {
    HostVec H, dX;
    std::vector<unsigned char> mask;
    bool forward_fused = false;
  };
  const auto run = [&](Backend& b, const HostVec* given) {
    Buffer<float> xb = on(b, x), w = on(b, W), bb = on(b, bias), w1 = on(b, W1), dz = on(b, dZ);
    Buffer<float> H = on(b, HostVec(nh, kNaN)), dX = on(b, HostVec(nh, kNaN)), db = on(b, HostVec(cols, kNaN));
    Masks masks(b, rows, cols, 1);
    if (!masks.buffer.empty()) masks.buffer.upload(std::vector<unsigned char>(masks.buffer.size(), 0));
    const uint64_t before = b.fused_linear_counts().fused;
    b.linear_forward_runs(xb.data(), 0, w.data(), bb.data(), 0, H.data(), 0, rows, k, cols, true, masks.data(),
                          masks.stride, 1);
    Out out;
    out.forward_fused = b.fused_linear_counts().fused != before;
    b.synchronize();
    out.H = H.download();
    if (given != nullptr) H.upload(*given);
    b.linear_input_grad_relu_runs(dz.data(), 0, w1.data(), 0, H.data(), 0, masks.data(), masks.stride, dX.data(), 0,
                                  db.data(), rows, cols, outputs, 1);
    b.synchronize();
    out.dX = dX.download();
    if (!masks.buffer.empty()) out.mask = masks.buffer.download();
    return out;
  };
  const Out got = run(*backend_, nullptr);
  const Out ref = run(cpu_, &got.H);
  const bool fused = got.forward_fused;
  if (expects_fused()) {
    EXPECT_TRUE(fused) << "the forward was not fused: the mask facts below are not cuBLASLt's";
  }
  const auto at = [cols](const HostVec& m, int i, std::size_t j) { return m[static_cast<std::size_t>(i) * cols + j]; };
  const int64_t ld = cuda::relu_mask_ld_bits(cols);
  const auto bit = [&](int i, std::size_t j) {
    const int64_t b = i * ld + static_cast<int64_t>(j);
    return (got.mask[static_cast<std::size_t>(b / 8)] >> (b % 8)) & 1;
  };
  for (std::size_t j = 0; j < special.size(); ++j) {
    const float h = at(got.H, 0, j);
    const bool is_nan = j >= nan_first;
    for (int i = 0; i < rows; ++i) {
      const float v = at(got.H, i, j);
      if (j == 0) {
        EXPECT_EQ(v, 1.0f) << special[j].name << ", row " << i;
      } else if (!is_nan) {
        EXPECT_EQ(v, 0.0f) << special[j].name << ", row " << i;
      } else if (fused) {
        EXPECT_TRUE(std::isnan(v) || v == 0.0f) << special[j].name << ", row " << i << ": H = " << v;
      } else {
        EXPECT_TRUE(std::isnan(v)) << special[j].name << ", row " << i << ": NaN lost by an unfused ReLU";
      }
      // The backward: no gradient where H > 0 does not hold (the CPU's rule; a fused backward's
      // NaN columns are printed below instead).
      if (j > 0 && (!is_nan || !fused)) {
        EXPECT_EQ(at(got.dX, i, j), 0.0f) << special[j].name << ", row " << i << ": a gradient through H <= 0";
      }
    }
    std::string line = std::string(special[j].name) + ": H = " +
                       (std::isnan(h)     ? "NaN"
                        : std::signbit(h) ? "-"
                                          : "+") +
                       (std::isnan(h) ? "" : std::to_string(std::fabs(h)));
    if (fused) {
      line += ", mask bit " + std::to_string(bit(0, j));
      if (is_nan) line += at(got.dX, 0, j) == 0.0f ? ", no gradient through it" : ", the gradient passes";
      std::printf("[ fact     ] %s: ReLU mask, %s\n", GetParam().c_str(), line.c_str());
    } else {
      std::printf("[ info     ] %s (unfused): %s\n", GetParam().c_str(), line.c_str());
    }
  }
  // Everything else: the CPU's outputs and gradients; the mask bit is H > 0 wherever H is a number.
  HostVec want_dX = ref.dX, got_dX = got.dX;
  for (int i = 0; i < rows; ++i)
    for (std::size_t j = nan_first; j < special.size(); ++j) {
      const std::size_t e = static_cast<std::size_t>(i) * cols + j;
      want_dX[e] = got_dX[e] = 0.0f;  // the NaN columns: either way (printed above)
    }
  expect_close("ReLU backward around the special columns", got_dX, want_dX, under_test_->gemm_tolerance);
  if (fused) {
    std::size_t wrong = 0;
    for (int i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < static_cast<std::size_t>(cols); ++j)
        if (!std::isnan(at(got.H, i, j))) wrong += bit(i, j) != (at(got.H, i, j) > 0.0f ? 1 : 0);
    EXPECT_EQ(wrong, 0u) << "mask bits other than H > 0 (or another layout than fused_linear_limits.h's)";
  }
}

// A mask is read only if the last forward that was given it wrote it: a fused forward, then a
// forward of other data over the same buffers that takes the fallback (its bias stride is not
// 16-byte aligned per run), then the backward. Reading the first forward's mask would apply the
// wrong ReLU pattern; the backend must go by H instead.
TEST_P(LinearLayers, AStaleMaskIsNeverRead) {
  const Shape s = kAligned;
  const int runs = 3, d0 = 32;
  const std::size_t nh = static_cast<std::size_t>(s.rows) * s.fan_in;
  const std::size_t good_stride = round_up(static_cast<std::size_t>(s.fan_out) * s.fan_in, 64) + 64;
  const std::size_t bad_stride = good_stride + 1;
  const std::size_t stride_h = round_up(nh, 64);
  const std::size_t stride_dz = round_up(static_cast<std::size_t>(s.rows) * s.fan_out, 64);
  const std::size_t n0 = static_cast<std::size_t>(s.fan_in) * d0;
  const HostVec x1 = random_vector(static_cast<std::size_t>(s.rows) * d0, 41);
  const HostVec x2 = random_vector(static_cast<std::size_t>(s.rows) * d0, 42);
  const HostVec W0a = per_run(n0, good_stride, runs, 43), b0a = per_run(s.fan_in, good_stride, runs, 44);
  const HostVec W0b = per_run(n0, bad_stride, runs, 45), b0b = per_run(s.fan_in, bad_stride, runs, 46);
  const HostVec W1 = per_run(static_cast<std::size_t>(s.fan_out) * s.fan_in, good_stride, runs, 47);
  const HostVec dZ = per_run(static_cast<std::size_t>(s.rows) * s.fan_out, stride_dz, runs, 48);
  const auto run = [&](Backend& b, const HostVec* H_given) {
    Buffer<float> xa = on(b, x1), xb = on(b, x2), wa = on(b, W0a), ba = on(b, b0a), wb = on(b, W0b), bb = on(b, b0b);
    Buffer<float> w1 = on(b, W1), dz = on(b, dZ);
    Buffer<float> H = on(b, HostVec((runs - 1) * stride_h + nh, kNaN));
    Buffer<float> dX = on(b, HostVec((runs - 1) * stride_h + nh, kNaN));
    Masks masks(b, s.rows, s.fan_in, runs);
    // 1: fused where the backend can (every stride 256-byte aligned): it must be, or the test
    // would pass without a stale mask to avoid.
    const auto before = b.fused_linear_counts();
    b.linear_forward_runs(xa.data(), 0, wa.data(), ba.data(), good_stride, H.data(), stride_h, s.rows, d0, s.fan_in,
                          true, masks.data(), masks.stride, runs);
    if (&b == backend_.get() && expects_fused()) {
      EXPECT_EQ(b.fused_linear_counts().fused - before.fused, 1u) << "the first forward did not fuse";
    }
    // 2: other data over the same H and masks, a bias stride one float off: the fallback.
    b.linear_forward_runs(xb.data(), 0, wb.data(), bb.data(), bad_stride, H.data(), stride_h, s.rows, d0, s.fan_in,
                          true, masks.data(), masks.stride, runs);
    if (H_given != nullptr) H.upload(*H_given);
    b.linear_input_grad_relu_runs(dz.data(), stride_dz, w1.data(), good_stride, H.data(), stride_h, masks.data(),
                                  masks.stride, dX.data(), stride_h, nullptr, s.rows, s.fan_in, s.fan_out, runs);
    b.synchronize();
    return std::pair{H.download(), dX.download()};
  };
  const auto got = run(*backend_, nullptr);
  const auto ref = run(cpu_, &got.first);
  expect_close("dX after a fallback forward over a fused one's masks", got.second, ref.second,
               under_test_->gemm_tolerance);
}

// The fused ops at a production shape (fig2: 10000 rows, 150 inputs, 2000 hidden, 2 classes:
// large enough for split-K and multi-block bias-gradient reductions), each run twice into fresh
// buffers: the same bytes (the GPU runs' determinism rests on cuBLAS's reproducibility promise;
// this holds it to it). GPU backends only: on the CPU the defaults are plain loops.
TEST_P(LinearLayers, FusedOpsAreBitReproducible) {
  if (backend_->is_cpu()) GTEST_SKIP() << "a GPU property (cuBLASLt's algorithms); minutes on the CPU";
  const int rows = 10000, d0 = 150, hidden = 2000, classes = 2;
  const HostVec x = random_vector(static_cast<std::size_t>(rows) * d0, 61);
  const HostVec W0 = random_vector(static_cast<std::size_t>(hidden) * d0, 62, 0.1f);
  const HostVec b0 = random_vector(hidden, 63, 0.1f);
  const HostVec W1 = random_vector(static_cast<std::size_t>(classes) * hidden, 64, 0.1f);
  const HostVec dZ = random_vector(static_cast<std::size_t>(rows) * classes, 65, 1e-4f);
  const auto once = [&] {
    Buffer<float> xb = on(*backend_, x), w0 = on(*backend_, W0), bb0 = on(*backend_, b0), w1 = on(*backend_, W1);
    Buffer<float> dz = on(*backend_, dZ);
    const std::size_t nh = static_cast<std::size_t>(rows) * hidden;
    Buffer<float> H(*backend_, nh), dX(*backend_, nh), dW1(*backend_, W1.size()), db1(*backend_, classes);
    Buffer<float> db0(*backend_, hidden), dW0(*backend_, W0.size());
    Masks masks(*backend_, rows, hidden, 1);
    backend_->linear_forward_runs(xb.data(), 0, w0.data(), bb0.data(), 0, H.data(), 0, rows, d0, hidden, true,
                                  masks.data(), masks.stride, 1);
    backend_->linear_weight_grad_runs(dz.data(), 0, H.data(), 0, dW1.data(), db1.data(), 0, rows, hidden, classes, 1);
    backend_->linear_input_grad_relu_runs(dz.data(), 0, w1.data(), 0, H.data(), 0, masks.data(), masks.stride,
                                          dX.data(), 0, db0.data(), rows, hidden, classes, 1);
    backend_->linear_weight_grad_runs(dX.data(), 0, xb.data(), 0, dW0.data(), nullptr, 0, rows, d0, hidden, 1);
    backend_->synchronize();
    return std::vector<HostVec>{H.download(), dW1.download(), db1.download(), dX.download(), db0.download(),
                                dW0.download()};
  };
  const auto a = once(), b = once();
  const char* names[] = {"H", "dW1", "db1", "dX", "db0", "dW0"};
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    EXPECT_EQ(std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)), 0)
        << names[i] << " differs between two identical calls";
  }
}

// SKILLRUN_CUBLASLT=off keeps no masks and fuses nothing; neither does the CPU.
TEST_P(LinearLayers, UnfusedBackendsKeepNoMasks) {
  const std::size_t bytes = backend_->relu_mask_bytes(301, 83);
  if (GetParam() == "cpu" || GetParam() == "cuda_unfused") {
    EXPECT_EQ(bytes, 0u);
    const HostVec x = random_vector(static_cast<std::size_t>(kAligned.rows) * kAligned.fan_in, 51);
    const HostVec W = random_vector(static_cast<std::size_t>(kAligned.fan_out) * kAligned.fan_in, 52);
    const HostVec bias = random_vector(static_cast<std::size_t>(kAligned.fan_out), 53);
    const ForwardCase f{kAligned, 1, true, false, 64};
    forward_on(*backend_, f, x, 0, W, bias, 0, static_cast<std::size_t>(kAligned.rows) * kAligned.fan_out);
    EXPECT_EQ(backend_->fused_linear_counts().fused, 0u);
  } else if (bytes > 0) {
    // One bit per element, each of the 301 columns of the column-major mask padded to 128 bits.
    EXPECT_GE(bytes, std::size_t{301} * 16);
    EXPECT_EQ(bytes % 256, 0u);
  }
}

// The fused path's size rule and mask layout (fused_linear_limits.h), held on every machine: the
// GPU cases above see their effect only where a GPU runs them.
TEST(FusedLinearLimits, EverySizeAboveOneAndABatchAGridDimensionHolds) {
  EXPECT_TRUE(cuda::fused_sizes_ok(2, 2, 2, 1));
  EXPECT_TRUE(cuda::fused_sizes_ok(10000, 150, 2000, 65535));
  for (const int one : {0, 1}) {
    EXPECT_FALSE(cuda::fused_sizes_ok(one, 64, 128, 3)) << "rows " << one << ": BGRADB's k";
    EXPECT_FALSE(cuda::fused_sizes_ok(256, one, 128, 3)) << "fan_in " << one;
    EXPECT_FALSE(cuda::fused_sizes_ok(256, 64, one, 3)) << "fan_out " << one;
  }
  EXPECT_FALSE(cuda::fused_sizes_ok(256, 64, 128, 0));
  EXPECT_FALSE(cuda::fused_sizes_ok(256, 64, 128, 65536)) << "more runs than grid z holds";
}

TEST(FusedLinearLimits, MaskColumnsArePaddedTo128BitsAndRunsTo256Bytes) {
  EXPECT_EQ(cuda::relu_mask_ld_bits(1), 128);
  EXPECT_EQ(cuda::relu_mask_ld_bits(128), 128);
  EXPECT_EQ(cuda::relu_mask_ld_bits(129), 256);
  EXPECT_EQ(cuda::relu_mask_bytes(301, 83), round_up(std::size_t{301} * 16, 256));
  EXPECT_EQ(cuda::relu_mask_bytes(2, 257), 256u);  // 2 columns of 384 bits: 96 bytes
  EXPECT_EQ(cuda::relu_mask_bytes(0, 83), 0u);
  EXPECT_EQ(cuda::relu_mask_bytes(301, 0), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, LinearLayers, ::testing::ValuesIn(backend_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace skillrun::conformance
