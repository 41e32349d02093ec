// The grid limit of every run-axis launch, what the cuBLASLt layer products (cublaslt_linear.{h,cpp})
// take on and how their ReLU masks are laid out, in plain C++ (no CUDA type), so that the tests of a build without a GPU hold them too
// (tests/conformance/test_linear_layers.cpp). docs/CUDA.md, "Fused epilogues".
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/round_up.h"

namespace skillrun::cuda {

// The most runs one launch takes: our kernels put the run axis in grid y or z, as cuBLASLt puts
// its batch (cuBLASLt docs, "Problem Size Limitations"); more runs go in groups of this many.
inline constexpr int kMaxGridRuns = 65535;

// The sizes a layer product must have to be fused; the unfused ops take every other one.
//  - every size above 1: a size 0 is an empty product (kernels handle it), and size 1 is where
//    others met cuBLASLt's bias epilogues going wrong (OneFlow turns BGRADB off for k == 1,
//    "cublasLtMatmul get wrong bias grad in cublas_k == 1"; PyTorch takes the bias epilogue only
//    when both weight dimensions exceed 1). Here k is rows (BGRADB, DRELU_BGRAD's n), fan_in
//    (forward) or fan_out (input gradient), so all three must exceed 1;
//  - a batch a grid dimension holds.
inline bool fused_sizes_ok(int rows, int fan_in, int fan_out, int runs) {
  return rows > 1 && fan_in > 1 && fan_out > 1 && runs >= 1 && runs <= kMaxGridRuns;
}

// The ReLU bit-mask of a (rows x cols) row-major activation: column-major cols x rows in
// cuBLASLt's terms, one bit per element, each of the `rows` columns padded to a multiple of 128
// bits (the EPILOGUE_AUX_LD rule). Element (i, j) of the activation is bit i * ld + j, bit b in
// byte b / 8 (the bit within the byte is cuBLASLt's: the GPU test prints what it finds).
inline int64_t relu_mask_ld_bits(int cols) { return (static_cast<int64_t>(cols) + 127) / 128 * 128; }
// Its bytes, rounded up to 256 (0 for an empty activation).
inline std::size_t relu_mask_bytes(int rows, int cols) {
  if (rows <= 0 || cols <= 0) return 0;
  const std::size_t bytes = static_cast<std::size_t>(relu_mask_ld_bits(cols) / 8) * static_cast<std::size_t>(rows);
  return round_up(bytes, 256);
}

}  // namespace skillrun::cuda
