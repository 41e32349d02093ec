// The Mlp's side of the ReLU-mask contract (Backend::relu_mask_bytes), checked on the CPU with a
// backend that claims to keep masks: the CPU backend's ops behind a wrapper that, in
// linear_forward_runs, stamps each run's mask with what it describes and, in
// linear_input_grad_relu_runs, checks that the backward of the layer above gets that very mask
// back (right layer, run, rows; 256-byte aligned; strides large enough) and that no other
// forward wrote over it. The results must equal a plain CPU Mlp's bit for bit (the wrapper
// computes with the defaults).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "model/mlp.h"
#include "support/cpu_forwarding_backend.h"

namespace skillrun {
namespace {

// What a mask says about itself: the activation's columns and rows and its run's index.
struct Stamp {
  int32_t cols, rows, run;
};

class MaskKeepingBackend final : public testing::CpuForwardingBackend {
 public:
  std::string name() const override { return "cpu with masks (test)"; }
  // 256-byte aligned, as a backend that keeps masks must allocate (CUDA's allocations are).
  void* allocate(std::size_t bytes) override {
    void* p = std::aligned_alloc(256, (bytes + 256) / 256 * 256);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void deallocate(void* p) noexcept override { std::free(p); }

  // An odd size (not a multiple of 256): the Mlp must round the stride up itself.
  std::size_t relu_mask_bytes(int rows, int cols) const override {
    return sizeof(Stamp) + static_cast<std::size_t>(rows) * ((cols + 127) / 128) * 16 + 3;
  }
  void linear_forward_runs(const float* x, std::size_t stride_x, const float* W, const float* b,
                           std::size_t param_stride, float* out, std::size_t stride_out, int rows, int fan_in,
                           int fan_out, bool relu, void* mask, std::size_t mask_stride, int runs) override {
    ++forwards;
    if (relu) {
      check_buffer(mask, mask_stride, rows, fan_out);
      for (int r = 0; r < runs; ++r) {
        auto* m = static_cast<unsigned char*>(mask) + r * mask_stride;
        std::memset(m, 0xA5, relu_mask_bytes(rows, fan_out));  // all of it: a neighbour's stamp would go
        const Stamp s{fan_out, rows, r + range_first};
        std::memcpy(m, &s, sizeof s);
      }
    } else {
      EXPECT_EQ(mask, nullptr) << "a layer without ReLU got a mask";
    }
    Backend::linear_forward_runs(x, stride_x, W, b, param_stride, out, stride_out, rows, fan_in, fan_out, relu, mask,
                                 mask_stride, runs);
  }
  void linear_weight_grad_runs(const float* dZ, std::size_t stride_dz, const float* x, std::size_t stride_x, float* dW,
                               float* db, std::size_t param_stride, int rows, int fan_in, int fan_out,
                               int runs) override {
    // Only the output layer's bias gradient comes from here (the others come with dX).
    EXPECT_EQ(db != nullptr, fan_out == classes) << "bias gradient of a " << fan_in << " -> " << fan_out << " layer";
    Backend::linear_weight_grad_runs(dZ, stride_dz, x, stride_x, dW, db, param_stride, rows, fan_in, fan_out, runs);
  }
  void linear_input_grad_relu_runs(const float* dZ, std::size_t stride_dz, const float* W, std::size_t param_stride,
                                   const float* H, std::size_t stride_h, const void* mask, std::size_t mask_stride,
                                   float* dX, std::size_t stride_dx, float* db_in, int rows, int fan_in, int fan_out,
                                   int runs) override {
    ++input_grads;
    EXPECT_NE(db_in, nullptr) << "the hidden layer's bias gradient must come with dX";
    check_buffer(mask, mask_stride, rows, fan_in);
    for (int r = 0; r < runs; ++r) {
      const auto* m = static_cast<const unsigned char*>(mask) + r * mask_stride;
      Stamp s{};
      std::memcpy(&s, m, sizeof s);
      EXPECT_EQ(s.cols, fan_in) << "the mask of another layer";
      EXPECT_EQ(s.rows, rows) << "the mask of another forward";
      EXPECT_EQ(s.run, r + range_first) << "the mask of another run";
      for (std::size_t i = sizeof s; i < relu_mask_bytes(rows, fan_in); ++i)
        if (m[i] != 0xA5) {
          ADD_FAILURE() << "byte " << i << " of run " << r << "'s mask was overwritten";
          break;
        }
    }
    Backend::linear_input_grad_relu_runs(dZ, stride_dz, W, param_stride, H, stride_h, mask, mask_stride, dX, stride_dx,
                                         db_in, rows, fan_in, fan_out, runs);
  }

  int forwards = 0, input_grads = 0;
  int classes = 0;  // the output layer's width (its weight gradient carries the bias gradient)
  int range_first = 0;  // the first run of the RunRange the test drives: stamps name runs globally

 private:
  void check_buffer(const void* mask, std::size_t stride, int rows, int cols) const {
    ASSERT_NE(mask, nullptr) << "a ReLU layer without its mask";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(mask) % 256, 0u) << "mask not 256-byte aligned";
    EXPECT_EQ(stride % 256, 0u) << "mask stride not a multiple of 256 bytes";
    EXPECT_GE(stride, relu_mask_bytes(rows, cols)) << "mask stride smaller than relu_mask_bytes";
  }
};

TEST(MlpMasks, ForwardMasksReachTheBackwardOfTheLayerAboveAndResultsStayBitIdentical) {
  const int rows = 9, runs = 3, input = 7, width = 130, depth = 3, classes = 2;
  MaskKeepingBackend masked;
  masked.classes = classes;
  CpuBackend plain;
  Mlp a(masked, input, width, depth, classes, rows, runs), b(plain, input, width, depth, classes, rows, runs);
  for (int r = 0; r < runs; ++r) {
    a.initialize(r, 100 + static_cast<uint64_t>(r));
    b.initialize(r, 100 + static_cast<uint64_t>(r));
  }
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(rows) * input), dl(static_cast<std::size_t>(runs) * a.logits_stride());
  for (float& v : x) v = dist(rng);
  for (float& v : dl) v = dist(rng);
  Buffer<float> xa(masked, x.size()), dla(masked, dl.size()), xb(plain, x.size()), dlb(plain, dl.size());
  xa.upload(x);
  dla.upload(dl);
  xb.upload(x);
  dlb.upload(dl);
  for (const RunRange range : {RunRange{0, 3}, RunRange{1, 2}, RunRange{2, 1}}) {
    masked.range_first = range.first;
    // A forward of fewer rows first (an eval chunk), then the step's: the backward must see the latter.
    a.forward(xa.data(), rows - 2, range);
    const float* la = a.forward(xa.data(), rows, range);
    const float* lb = b.forward(xb.data(), rows, range);
    for (int r = 0; r < range.count; ++r) {  // each run's logits (the padding between them is never written)
      const std::size_t at = static_cast<std::size_t>(r) * a.logits_stride(), n = std::size_t{rows} * classes;
      EXPECT_EQ(std::vector<float>(la + at, la + at + n), std::vector<float>(lb + at, lb + at + n))
          << "logits, range " << range.first << ", run " << range.first + r;
    }
    const std::size_t offset = static_cast<std::size_t>(range.first) * a.logits_stride();
    a.backward(xa.data(), dla.data() + offset, a.logits_stride(), rows, range);
    b.backward(xb.data(), dlb.data() + offset, b.logits_stride(), rows, range);
    for (int r = range.first; r < range.first + range.count; ++r)
      for (std::size_t p = 0; p < a.parameters(r).size(); ++p)
        EXPECT_EQ(a.parameters(r)[p].grad.download(), b.parameters(r)[p].grad.download())
            << a.parameters(r)[p].name << ", run " << r;
  }
  EXPECT_EQ(masked.forwards, 3 * 2 * depth);
  EXPECT_EQ(masked.input_grads, 3 * (depth - 1));
}

}  // namespace
}  // namespace skillrun
