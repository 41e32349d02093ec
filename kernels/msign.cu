// Device pieces of msign(G) = U V^T around the library calls.
//
// Newton-Schulz starts from X0 = G / (norm_scale ||G||_F + norm_eps): ||X0||_F <= 1 bounds
// every singular value by 1, where the quintics converge. ||G||_F^2 comes from the sum of
// squares reduction (reduce.cu) in device memory; the scale kernel reads it, so the whole
// iteration runs without a host round trip (and so can be captured in a CUDA graph).
//
// The exact polar factor is computed in double by cuSOLVER's gesvdj. The SVD wants a
// column-major M x N matrix with M >= N; row-major G (rows x cols) read column-major is G^T
// (cols x rows), usable as is when cols >= rows; otherwise the conversion kernel transposes it
// into column-major G (rows x cols). msign(G^T) = msign(G)^T, so either way Q = U V^T converted
// back with the same rule is row-major msign(G). Singular directions with
// s_j <= s_max max(M, N) eps_fp32 are dropped (msign(0) = 0), the CPU backend's rank rule.
#include <cfloat>

#include "common.cuh"
#include "msign.cuh"

namespace skillrun::cuda {

// kernels

__global__ void scale_by_inverse_norm_kernel(float* X, std::size_t x_stride, const float* G, std::size_t g_stride,
                                             std::size_t n, const double* norm_sq, double norm_scale,
                                             double norm_eps) {
  // The run axis of a batched Newton-Schulz: run blockIdx.y's X, G and ||G||^2.
  X += blockIdx.y * x_stride;
  G += blockIdx.y * g_stride;
  norm_sq += blockIdx.y;
  const float inv = static_cast<float>(1.0 / (norm_scale * sqrt(*norm_sq) + norm_eps));
  for (std::size_t i = global_index(); i < n; i += grid_stride()) X[i] = inv * G[i];
}

// Element e = i * cols + j of row-major G is (i, j); column-major G puts it at i + j * rows.
__global__ void to_double_kernel(const float* G, double* A, int rows, int cols, bool transpose) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  for (std::size_t e = global_index(); e < n; e += grid_stride()) {
    const std::size_t i = e / cols, j = e % cols;
    A[transpose ? i + j * rows : e] = static_cast<double>(G[e]);
  }
}

__global__ void to_float_kernel(const double* Q, float* out, int rows, int cols, bool transpose) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  for (std::size_t e = global_index(); e < n; e += grid_stride()) {
    const std::size_t i = e / cols, j = e % cols;
    out[e] = static_cast<float>(Q[transpose ? i + j * rows : e]);
  }
}

// One block of kThreads: first the maximum singular value (gesvdj sorts them descending, but
// the maximum is taken explicitly so that nothing rests on it), then column j of U is zeroed
// by the threads j, j + blockDim, ... in turn, each clearing its column's ld entries.
__global__ void zero_small_singular_vectors_kernel(double* U, int ld, int k, const double* s, double size_factor) {
  __shared__ double s_max;
  if (threadIdx.x == 0) {
    double m = 0.0;
    for (int j = 0; j < k; ++j) m = s[j] > m ? s[j] : m;
    s_max = m;
  }
  __syncthreads();
  const double cutoff = s_max * size_factor * static_cast<double>(FLT_EPSILON);
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    if (s[j] <= cutoff) {
      double* column = U + static_cast<std::size_t>(j) * ld;
      for (int i = 0; i < ld; ++i) column[i] = 0.0;
    }
  }
}

// launchers

void launch_scale_by_inverse_norm(float* X, const float* G, std::size_t n, const double* norm_sq, double norm_scale,
                                  double norm_eps, cudaStream_t stream) {
  launch_scale_by_inverse_norm_runs(X, 0, G, 0, n, norm_sq, norm_scale, norm_eps, 1, stream);
}

void launch_scale_by_inverse_norm_runs(float* X, std::size_t x_stride, const float* G, std::size_t g_stride,
                                       std::size_t n, const double* norm_sq, double norm_scale, double norm_eps,
                                       int runs, cudaStream_t stream) {
  if (n == 0 || runs <= 0) return;
  SKR_LAUNCH(dim3(grid_for(n), static_cast<unsigned int>(runs)), kThreads, 0, stream, scale_by_inverse_norm_kernel)(
      X, x_stride, G, g_stride, n, norm_sq, norm_scale, norm_eps);
  SKR_CUDA_CHECK_LAUNCH("scale_by_inverse_norm_kernel");
}

void launch_to_double(const float* G, double* A, int rows, int cols, bool transpose, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  SKR_LAUNCH(grid_for(static_cast<std::size_t>(rows) * cols), kThreads, 0, stream, to_double_kernel)(G, A, rows, cols,
                                                                                             transpose);
  SKR_CUDA_CHECK_LAUNCH("to_double_kernel");
}

void launch_to_float(const double* Q, float* out, int rows, int cols, bool transpose, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  SKR_LAUNCH(grid_for(static_cast<std::size_t>(rows) * cols), kThreads, 0, stream, to_float_kernel)(Q, out, rows, cols,
                                                                                            transpose);
  SKR_CUDA_CHECK_LAUNCH("to_float_kernel");
}

void launch_zero_small_singular_vectors(double* U, int ld, int k, const double* s, double size_factor,
                                        cudaStream_t stream) {
  if (k <= 0) return;
  SKR_LAUNCH(1, kThreads, 0, stream, zero_small_singular_vectors_kernel)(U, ld, k, s, size_factor);
  SKR_CUDA_CHECK_LAUNCH("zero_small_singular_vectors_kernel");
}

}  // namespace skillrun::cuda
