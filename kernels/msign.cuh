// Launchers for the device pieces of msign around cuBLAS / cuSOLVER: the Frobenius
// normalisation of Newton-Schulz (reading ||G||_F^2 from device memory), and the layout and
// precision conversions and rank cutoff of the exact (SVD) polar factor.
#pragma once
#include "cuda_api.cuh"

#include <cstddef>

namespace skillrun::cuda {

// X = G / (norm_scale * sqrt(*norm_sq) + norm_eps), the factor computed in double and applied
// in fp32 (as Backend::msign_newton_schulz does). norm_sq: device memory.
void launch_scale_by_inverse_norm(float* X, const float* G, std::size_t n, const double* norm_sq, double norm_scale,
                                  double norm_eps, cudaStream_t stream);
// The same for runs (<= 65535): X + r x_stride = G + r g_stride / (...) with norm_sq[r].
void launch_scale_by_inverse_norm_runs(float* X, std::size_t x_stride, const float* G, std::size_t g_stride,
                                       std::size_t n, const double* norm_sq, double norm_scale, double norm_eps,
                                       int runs, cudaStream_t stream);
// Row-major G (rows x cols) to double. transpose == false: the same layout (which LAPACK reads
// as G^T, cols x rows, column-major); transpose == true: column-major G (ld = rows).
void launch_to_double(const float* G, double* A, int rows, int cols, bool transpose, cudaStream_t stream);
// The inverse of launch_to_double: Q (the same layout convention) back to row-major float.
void launch_to_float(const double* Q, float* out, int rows, int cols, bool transpose, cudaStream_t stream);
// Zeroes column j of U (ld x k, column-major) where s_j <= max(s) * size_factor * FLT_EPSILON.
void launch_zero_small_singular_vectors(double* U, int ld, int k, const double* s, double size_factor,
                                        cudaStream_t stream);

}  // namespace skillrun::cuda
