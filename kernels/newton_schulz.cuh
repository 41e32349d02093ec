// Launchers for the Newton-Schulz kernels of msign on the small side (<= 256): one iteration is
// three launches (Gram with its chunk sums, polynomial, apply), each over every matrix of a pack
// at once (the run axis on blockIdx.z). The decomposition and its bits: backend/ns_tiles.h.
#pragma once
#include "cuda_api.cuh"

#include <cstddef>

#include "backend/ns_tiles.h"

namespace skillrun::cuda {

// A (s x s, ld s, run r at r a_stride) = Y Y^T of X (run r at r x_stride). runs <= 65535.
// partials and counters: ns_tiles::partial_floats and counter_count of (p, runs); the counters
// zero before the first Gram launch of a call (every launch that completes leaves them zero).
void launch_ns_gram(const float* X, std::size_t x_stride, float* A, std::size_t a_stride, float* partials,
                    int* counters, const ns_tiles::Plan& p, int runs, cudaStream_t stream);
// B = b A + c A A (s x s, both at `stride` per run).
void launch_ns_poly(const float* A, float* B, std::size_t stride, const ns_tiles::Plan& p, float b, float c, int runs,
                    cudaStream_t stream);
// X_next = a X + B X in Y's orientation (X and X_next may not alias).
void launch_ns_apply(const float* X, std::size_t x_stride, const float* B, std::size_t b_stride, float* X_next,
                     std::size_t next_stride, const ns_tiles::Plan& p, float a, int runs, cudaStream_t stream);

// Every iteration of the Newton-Schulz msign after X0 (what CudaBackend::newton_schulz_kernels
// launches, and what the emulated tests run): zeroes the Gram's chunk counters, then per
// iteration its Gram, polynomial and apply launches for every run, X (run r at r xs) and X_next
// (at r xns) swapped after each; the last iteration lands in X_next when their count is odd, in X
// when even. gram and poly at ss per run; partials and counters as launch_ns_gram takes them.
void launch_ns_iterations(float* X, std::size_t xs, float* X_next, std::size_t xns, float* gram, float* poly,
                          std::size_t ss, float* partials, int* counters, const ns_tiles::Plan& p,
                          const NsCoefficients* iterations, std::size_t count, int runs, cudaStream_t stream);

}  // namespace skillrun::cuda
