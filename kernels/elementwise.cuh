// Launchers for the elementwise kernels: fill, axpby, the MLP's fused bias + ReLU and ReLU
// backward, and C = beta C for an empty gemm. Device pointers, element counts; all asynchronous
// on `stream`; every launcher checks its launch and throws skillrun::RuntimeError.
#pragma once
#include "cuda_api.cuh"

#include <cstddef>

namespace skillrun::cuda {

void launch_fill(float* x, std::size_t n, float value, cudaStream_t stream);
// y = alpha x + beta y; beta == 0 never reads y (it may hold NaN).
void launch_axpby(float* y, const float* x, std::size_t n, float alpha, float beta, cudaStream_t stream);
// C (rows x cols, leading dimension ldc) = beta C; beta == 0 writes zeros without reading C.
void launch_scale_matrix(float* C, int rows, int cols, int ldc, float beta, cudaStream_t stream);
// For each run r < runs (a pack's run axis; 1 alone), on the operands at r times their strides
// (elements; 0 shares an operand): H (rows x cols, ld = cols) += bias (cols) per row; then
// max(H, 0) when relu. runs <= 65535.
void launch_bias_activation(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias, int rows,
                            int cols, bool relu, int runs, cudaStream_t stream);
// dH = H > 0 ? dH : 0 (n elements per run), per run as above.
void launch_relu_backward(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h, std::size_t n,
                          int runs, cudaStream_t stream);

}  // namespace skillrun::cuda
