// Launchers for the reductions: sum of squares (to device memory, in double) and column sums
// (bias gradients). Both are deterministic: a fixed grid for a given size and a fixed
// summation order, so the same input gives the same bits on every run.
#pragma once
#include "cuda_api.cuh"

#include <cstddef>

namespace skillrun::cuda {

// Most blocks of a first reduction pass; workspace `partials` must hold this many doubles.
constexpr unsigned int kMaxReduceBlocks = 1024;
// Doubles of workspace launch_column_sums needs (see reduce.cu for the bound).
constexpr std::size_t kColumnSumsWorkspace = 16384;

// *result = sum_i x_i^2 accumulated in double; result is device memory. n may be 0.
void launch_sum_squares(const float* x, std::size_t n, double* partials, double* result, cudaStream_t stream);
// *result = sum of partials[0 .. count) in a fixed order (one block); count <= kMaxReduceBlocks.
void launch_finalize_sum(const double* partials, unsigned int count, double* result, cudaStream_t stream);
// results[r] = the sum of squares of x + r stride (n elements) for r < runs (<= 65535), each
// with the bits launch_sum_squares gives it; partials: runs * reduce_blocks(n) doubles.
void launch_sum_squares_runs(const float* x, std::size_t stride, std::size_t n, int runs, double* partials,
                             double* results, cudaStream_t stream);
// results[r] = the sum of partials[r * count .. (r + 1) * count) for r < runs, each added in
// launch_finalize_sum's order (one block per run).
void launch_finalize_sum_runs(const double* partials, unsigned int count, double* results, int runs,
                              cudaStream_t stream);
// Blocks the first pass of a reduction over n elements uses (<= kMaxReduceBlocks).
unsigned int reduce_blocks(std::size_t n);
// out (cols) = sum over rows of A (rows x cols, ld = cols), accumulated in double.
// workspace: kColumnSumsWorkspace doubles of device memory (>= column_sums_workspace(rows, cols)).
void launch_column_sums(const float* A, int rows, int cols, float* out, double* workspace, cudaStream_t stream);
// The same for each run r < runs of a pack (runs <= 65535): A + r stride_a into out + r
// stride_out, bit for bit what the call for that run alone gives. workspace: runs times
// column_sums_workspace(rows, cols) doubles (<= kColumnSumsWorkspace each).
void launch_column_sums(const float* A, std::size_t stride_a, int rows, int cols, float* out, std::size_t stride_out,
                        int runs, double* workspace, cudaStream_t stream);
// Doubles of workspace one run's column sums of (rows, cols) use (0: none).
std::size_t column_sums_workspace(int rows, int cols);

}  // namespace skillrun::cuda
