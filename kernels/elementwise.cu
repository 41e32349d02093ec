// Elementwise kernels. Each is one memory-bound pass, a grid-stride loop over 64-bit indices.
// bias_activation: H_ij = max(H_ij + b_j, 0) (or without the max for the output layer), the
// epilogue of Z = A W^T; relu_backward: dH_ij = dH_ij [H_ij > 0] with H the post-activation,
// which is the same mask as the pre-activation > 0. Branches on scalar flags are uniform
// across the grid, so they cost nothing. Both take the run axis of a pack on blockIdx.y: run r
// works on its operands at r times their strides (elements), with the same loop as one run
// alone, so a run's bits do not depend on the pack around it.
//
// Vectorised form (kVec): fill, axpby, bias_activation and relu_backward move 16 bytes (a
// float4) per access when the launcher finds every base pointer 16-byte aligned and every run
// stride a multiple of 4 elements (bias_activation also needs cols % 4 == 0, so that a float4
// never crosses a row); n % 4 tail elements go through the scalar body. Otherwise the scalar
// kernel runs. Both forms apply the same float expression to each element, so the choice never
// changes a bit. No kernel divides a 64-bit index per element: bias_activation and scale_matrix
// carry the column (and row) of a thread's element from one grid stride to the next.
#include "common.cuh"
#include "elementwise.cuh"

namespace skillrun::cuda {

// kernels

template <bool kVec>
__global__ void fill_kernel(float* x, std::size_t n, float value) {
  for_each_element<kVec>(
      n, [=](std::size_t q) { store4(x, q, Lanes4{{value, value, value, value}}); },
      [=](std::size_t i) { x[i] = value; });
}

template <bool kVec>
__global__ void axpby_kernel(float* y, const float* x, std::size_t n, float alpha, float beta) {
  axpby_elements<kVec>(y, x, n, alpha, beta);
}

// Element e = i cols + j of the rows x cols matrix at leading dimension ldc. (i, j) is found
// once per thread and then advanced by the grid stride (stride / cols rows and stride % cols
// columns, with one carry), not divided out per element.
__global__ void scale_matrix_kernel(float* C, int rows, int cols, int ldc, float beta) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  const std::size_t first = global_index(), stride = grid_stride();
  const unsigned int width = static_cast<unsigned int>(cols);
  std::size_t i = first / width;
  unsigned int j = static_cast<unsigned int>(first % width);
  const std::size_t i_step = stride / width;
  const unsigned int j_step = static_cast<unsigned int>(stride % width);
  for (std::size_t e = first; e < n; e += stride) {
    float* c = C + i * ldc + j;
    *c = beta == 0.0f ? 0.0f : beta * *c;
    i += i_step;
    j += j_step;  // j, j_step < width < 2^31: no overflow
    if (j >= width) {
      j -= width;
      ++i;
    }
  }
}

// H + b, then the ReLU when kRelu: v < 0 ? 0 : v, not fmaxf: NaN must survive (the trainer
// detects divergence by it). CPU: std::max(h + b, 0.0f), the same selection.
template <bool kRelu>
__device__ __forceinline__ float bias_act(float h, float b) {
  const float v = h + b;
  if constexpr (kRelu) {
    return v < 0.0f ? 0.0f : v;
  } else {
    return v;
  }
}

// One run's rows x cols matrix H (ld = cols) and its bias, in units of one float4 (kVec: cols %
// 4 == 0, so a unit never crosses a row) or one float. A thread's column j is found once from
// its first unit and then advanced by the grid stride modulo the row's width in units (at most
// one wrap per stride), so no element pays a 64-bit `%`.
template <bool kVec, bool kRelu>
__device__ __forceinline__ void bias_activation_elements(float* H, const float* bias, int rows, int cols) {
  const unsigned int width = kVec ? static_cast<unsigned int>(cols) / 4u : static_cast<unsigned int>(cols);
  const std::size_t n = static_cast<std::size_t>(rows) * width;
  const std::size_t first = global_index(), stride = grid_stride();
  unsigned int j = static_cast<unsigned int>(first % width);
  const unsigned int j_step = static_cast<unsigned int>(stride % width);
  for (std::size_t e = first; e < n; e += stride) {
    if constexpr (kVec) {
      const Lanes4 b = load4(bias, j);
      Lanes4 h = load4(H, e);
#pragma unroll
      for (int k = 0; k < 4; ++k) h.v[k] = bias_act<kRelu>(h.v[k], b.v[k]);
      store4(H, e, h);
    } else {
      H[e] = bias_act<kRelu>(H[e], bias[j]);
    }
    j += j_step;  // j, j_step < width < 2^31: no overflow
    if (j >= width) j -= width;
  }
}

template <bool kVec>
__global__ void bias_activation_kernel(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias,
                                       int rows, int cols, bool relu) {
  H += blockIdx.y * stride_h;
  bias += blockIdx.y * stride_bias;
  if (relu) {
    bias_activation_elements<kVec, true>(H, bias, rows, cols);
  } else {
    bias_activation_elements<kVec, false>(H, bias, rows, cols);
  }
}

template <bool kVec>
__global__ void relu_backward_kernel(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h,
                                     std::size_t n) {
  dH += blockIdx.y * stride_dh;
  H += blockIdx.y * stride_h;
  for_each_element<kVec>(
      n,
      [=](std::size_t q) {
        const Lanes4 h = load4(H, q);
        Lanes4 d = load4(dH, q);
#pragma unroll
        for (int k = 0; k < 4; ++k) d.v[k] = h.v[k] > 0.0f ? d.v[k] : 0.0f;
        store4(dH, q, d);
      },
      [=](std::size_t i) { dH[i] = H[i] > 0.0f ? dH[i] : 0.0f; });
}

// launchers

void launch_fill(float* x, std::size_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = is_aligned16(x);
  const unsigned int blocks = grid_for_elements(n, vec);
  if (vec) {
    SKR_LAUNCH(blocks, kThreads, 0, stream, fill_kernel<true>)(x, n, value);
  } else {
    SKR_LAUNCH(blocks, kThreads, 0, stream, fill_kernel<false>)(x, n, value);
  }
  SKR_CUDA_CHECK_LAUNCH("fill_kernel");
}

void launch_axpby(float* y, const float* x, std::size_t n, float alpha, float beta, cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = is_aligned16(y) && is_aligned16(x);
  const unsigned int blocks = grid_for_elements(n, vec);
  if (vec) {
    SKR_LAUNCH(blocks, kThreads, 0, stream, axpby_kernel<true>)(y, x, n, alpha, beta);
  } else {
    SKR_LAUNCH(blocks, kThreads, 0, stream, axpby_kernel<false>)(y, x, n, alpha, beta);
  }
  SKR_CUDA_CHECK_LAUNCH("axpby_kernel");
}

void launch_scale_matrix(float* C, int rows, int cols, int ldc, float beta, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  SKR_LAUNCH(grid_for(static_cast<std::size_t>(rows) * cols), kThreads, 0, stream, scale_matrix_kernel)(C, rows, cols, ldc,
                                                                                                 beta);
  SKR_CUDA_CHECK_LAUNCH("scale_matrix_kernel");
}

void launch_bias_activation(float* H, std::size_t stride_h, const float* bias, std::size_t stride_bias, int rows,
                            int cols, bool relu, int runs, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0 || runs <= 0) return;
  const bool vec = cols % 4 == 0 && is_aligned16(H) && is_aligned16(bias) && keeps_vec4(stride_h) &&
                   keeps_vec4(stride_bias);
  const dim3 grid(grid_for_elements(static_cast<std::size_t>(rows) * cols, vec), static_cast<unsigned int>(runs));
  if (vec) {
    SKR_LAUNCH(grid, kThreads, 0, stream, bias_activation_kernel<true>)(H, stride_h, bias, stride_bias, rows, cols, relu);
  } else {
    SKR_LAUNCH(grid, kThreads, 0, stream, bias_activation_kernel<false>)(H, stride_h, bias, stride_bias, rows, cols, relu);
  }
  SKR_CUDA_CHECK_LAUNCH("bias_activation_kernel");
}

void launch_relu_backward(float* dH, std::size_t stride_dh, const float* H, std::size_t stride_h, std::size_t n,
                          int runs, cudaStream_t stream) {
  if (n == 0 || runs <= 0) return;
  const bool vec = is_aligned16(dH) && is_aligned16(H) && keeps_vec4(stride_dh) && keeps_vec4(stride_h);
  const dim3 grid(grid_for_elements(n, vec), static_cast<unsigned int>(runs));
  if (vec) {
    SKR_LAUNCH(grid, kThreads, 0, stream, relu_backward_kernel<true>)(dH, stride_dh, H, stride_h, n);
  } else {
    SKR_LAUNCH(grid, kThreads, 0, stream, relu_backward_kernel<false>)(dH, stride_dh, H, stride_h, n);
  }
  SKR_CUDA_CHECK_LAUNCH("relu_backward_kernel");
}

}  // namespace skillrun::cuda
