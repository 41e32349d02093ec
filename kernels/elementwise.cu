// Elementwise kernels. Each is one memory-bound pass, a grid-stride loop over 64-bit indices.
// bias_activation: H_ij = max(H_ij + b_j, 0) (or without the max for the output layer), the
// epilogue of Z = A W^T; relu_backward: dH_ij = dH_ij [H_ij > 0] with H the post-activation,
// which is the same mask as the pre-activation > 0. Branches on scalar flags are uniform
// across the grid, so they cost nothing. Both take the run axis of a pack on blockIdx.y: run r
// works on its operands at r times their strides (elements), with the same loop as one run
// alone, so a run's bits do not depend on the pack around it.
#include "common.cuh"
#include "elementwise.cuh"

namespace skillrun::cuda {

// kernels

__global__ void fill_kernel(float* x, std::size_t n, float value) {
  for (std::size_t i = global_index(); i < n; i += grid_stride()) x[i] = value;
}

__global__ void axpby_kernel(float* y, const float* x, std::size_t n, float alpha, float beta) {
  if (beta == 0.0f) {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) y[i] = alpha * x[i];
  } else {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) y[i] = alpha * x[i] + beta * y[i];
  }
}

__global__ void scale_matrix_kernel(float* C, int rows, int cols, int ldc, float beta) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  for (std::size_t e = global_index(); e < n; e += grid_stride()) {
    const std::size_t i = e / cols, j = e % cols;
    float* c = C + i * ldc + j;
    *c = beta == 0.0f ? 0.0f : beta * *c;
  }
}

__global__ void bias_activation_kernel(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias,
                                       int rows, int cols, bool relu) {
  H += blockIdx.y * stride_h;
  bias += blockIdx.y * stride_bias;
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  if (relu) {
    // v < 0 ? 0 : v, not fmaxf: NaN must survive (the trainer detects divergence by it).
    for (std::size_t e = global_index(); e < n; e += grid_stride()) {
      const float v = H[e] + bias[e % cols];
      H[e] = v < 0.0f ? 0.0f : v;
    }
  } else {
    for (std::size_t e = global_index(); e < n; e += grid_stride()) H[e] += bias[e % cols];
  }
}

__global__ void relu_backward_kernel(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h,
                                     std::size_t n) {
  dH += blockIdx.y * stride_dh;
  H += blockIdx.y * stride_h;
  for (std::size_t i = global_index(); i < n; i += grid_stride()) dH[i] = H[i] > 0.0f ? dH[i] : 0.0f;
}

// launchers

void launch_fill(float* x, std::size_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, n, value);
  SKR_CUDA_CHECK_LAUNCH("fill_kernel");
}

void launch_axpby(float* y, const float* x, std::size_t n, float alpha, float beta, cudaStream_t stream) {
  if (n == 0) return;
  axpby_kernel<<<grid_for(n), kThreads, 0, stream>>>(y, x, n, alpha, beta);
  SKR_CUDA_CHECK_LAUNCH("axpby_kernel");
}

void launch_scale_matrix(float* C, int rows, int cols, int ldc, float beta, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  scale_matrix_kernel<<<grid_for(static_cast<std::size_t>(rows) * cols), kThreads, 0, stream>>>(C, rows, cols, ldc,
                                                                                                 beta);
  SKR_CUDA_CHECK_LAUNCH("scale_matrix_kernel");
}

void launch_bias_activation(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias, int rows,
                            int cols, bool relu, int runs, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0 || runs <= 0) return;
  const dim3 grid(grid_for(static_cast<std::size_t>(rows) * cols), static_cast<unsigned int>(runs));
  bias_activation_kernel<<<grid, kThreads, 0, stream>>>(H, stride_h, bias, stride_bias, rows, cols, relu);
  SKR_CUDA_CHECK_LAUNCH("bias_activation_kernel");
}

void launch_relu_backward(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h, std::size_t n,
                          int runs, cudaStream_t stream) {
  if (n == 0 || runs <= 0) return;
  const dim3 grid(grid_for(n), static_cast<unsigned int>(runs));
  relu_backward_kernel<<<grid, kThreads, 0, stream>>>(dH, stride_dh, H, stride_h, n);
  SKR_CUDA_CHECK_LAUNCH("relu_backward_kernel");
}

}  // namespace skillrun::cuda
