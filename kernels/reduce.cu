// Reductions, all accumulated in double (as the CPU backend does) and deterministic.
//
// sum_squares: S = sum_i x_i^2. Pass 1: reduce_blocks(n) blocks each sum a grid-stride slice
// into partials[block]; pass 2: one block adds the partials in a fixed order into *result.
// The result stays in device memory, so NMD and Newton-Schulz use it without a host round
// trip; Backend::sum_squares copies it to pinned host memory.
//
// column_sums: out_j = sum_i A_ij. A block is 32 columns x 8 row lanes (coalesced 128-byte
// row reads); the rows are split into `chunks` slices over blockIdx.y so that a narrow matrix
// (the 2-column logits gradient of a 10000-row batch) still spreads over many SMs. With one
// chunk the block writes out_j directly; with more, each chunk writes workspace[chunk][j]
// and a second kernel adds the chunks in order. chunks > 1 only when col_tiles <= 256 and
// chunks * col_tiles <= 512, so chunks * cols <= 512 * 32 = kColumnSumsWorkspace. The run axis
// of a pack is blockIdx.z: run r reads A + r stride_a, writes out + r stride_out and uses its
// own chunks * cols of workspace, with the chunks a run alone has, so its sums are bit for bit
// those of the run alone.
#include "common.cuh"
#include "reduce.cuh"

namespace skillrun::cuda {

namespace {
constexpr int kTileCols = 32;   // columns per block (one warp wide)
constexpr int kTileLanes = 8;   // row lanes per block
constexpr int kRowsPerChunkMin = 128;
constexpr int kTargetBlocks = 512;
}  // namespace

// kernels

__global__ void sum_squares_partial_kernel(const float* x, std::size_t n, double* partials) {
  double acc = 0.0;
  for (std::size_t i = global_index(); i < n; i += grid_stride()) {
    const double v = x[i];
    acc += v * v;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// The run axis: run blockIdx.y's x at y * stride, its partials at y * gridDim.x; each run's
// blocks cover it as the one-run kernel's do (same gridDim.x), so its sum has the same bits.
__global__ void sum_squares_runs_partial_kernel(const float* x, std::size_t stride, std::size_t n, double* partials) {
  x += blockIdx.y * stride;
  double acc = 0.0;
  for (std::size_t i = global_index(); i < n; i += grid_stride()) {
    const double v = x[i];
    acc += v * v;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[static_cast<std::size_t>(blockIdx.y) * gridDim.x + blockIdx.x] = acc;
}

// One block per run: run blockIdx.x's partials in finalize_sum_kernel's order.
__global__ void finalize_sum_runs_kernel(const double* partials, unsigned int count, double* results) {
  partials += static_cast<std::size_t>(blockIdx.x) * count;
  double acc = 0.0;
  for (unsigned int i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) results[blockIdx.x] = acc;
}

__global__ void finalize_sum_kernel(const double* partials, unsigned int count, double* result) {
  double acc = 0.0;
  for (unsigned int i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *result = acc;
}

// Block (kTileCols, kTileLanes); grid (col_tiles, chunks). Chunk c covers rows
// [c * rows_per_chunk, min(rows, (c + 1) * rows_per_chunk)).
__global__ void column_sums_kernel(const float* A, std::size_t stride_a, int rows, int cols, int rows_per_chunk,
                                   float* out, std::size_t stride_out, double* workspace) {
  A += blockIdx.z * stride_a;
  out += blockIdx.z * stride_out;
  workspace += static_cast<std::size_t>(blockIdx.z) * gridDim.y * cols;
  __shared__ double lane_sums[kTileLanes][kTileCols + 1];  // +1: no bank conflicts on the column walk
  const int j = blockIdx.x * kTileCols + threadIdx.x;
  const int row_begin = blockIdx.y * rows_per_chunk;
  const int row_end = min(rows, row_begin + rows_per_chunk);
  double acc = 0.0;
  if (j < cols) {
    for (int i = row_begin + static_cast<int>(threadIdx.y); i < row_end; i += kTileLanes)
      acc += A[static_cast<std::size_t>(i) * cols + j];
  }
  lane_sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    double total = 0.0;
    for (int lane = 0; lane < kTileLanes; ++lane) total += lane_sums[lane][threadIdx.x];
    if (gridDim.y == 1) {
      out[j] = static_cast<float>(total);
    } else {
      workspace[static_cast<std::size_t>(blockIdx.y) * cols + j] = total;
    }
  }
}

__global__ void column_sums_finalize_kernel(const double* workspace, int chunks, int cols, float* out,
                                            std::size_t stride_out) {
  workspace += static_cast<std::size_t>(blockIdx.y) * chunks * cols;
  out += blockIdx.y * stride_out;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  double total = 0.0;
  for (int c = 0; c < chunks; ++c) total += workspace[static_cast<std::size_t>(c) * cols + j];
  out[j] = static_cast<float>(total);
}

// launchers

unsigned int reduce_blocks(std::size_t n) {
  const unsigned int blocks = grid_for(n);
  return blocks > kMaxReduceBlocks ? kMaxReduceBlocks : blocks;
}

void launch_finalize_sum(const double* partials, unsigned int count, double* result, cudaStream_t stream) {
  SKR_LAUNCH(1, kThreads, 0, stream, finalize_sum_kernel)(partials, count, result);
  SKR_CUDA_CHECK_LAUNCH("finalize_sum_kernel");
}

void launch_sum_squares(const float* x, std::size_t n, double* partials, double* result, cudaStream_t stream) {
  const unsigned int blocks = reduce_blocks(n);  // >= 1; with n == 0 the partial is 0
  SKR_LAUNCH(blocks, kThreads, 0, stream, sum_squares_partial_kernel)(x, n, partials);
  SKR_CUDA_CHECK_LAUNCH("sum_squares_partial_kernel");
  launch_finalize_sum(partials, blocks, result, stream);
}

namespace {
// Chunks of rows per column tile for (rows, cols): a function of the shape alone.
int column_chunks(int rows, int cols) {
  const int col_tiles = (cols + kTileCols - 1) / kTileCols;
  int chunks = 1;
  if (col_tiles <= kTargetBlocks / 2) {
    const int by_rows = (rows + kRowsPerChunkMin - 1) / kRowsPerChunkMin;
    const int by_blocks = kTargetBlocks / col_tiles;
    chunks = by_rows < by_blocks ? by_rows : by_blocks;
    if (chunks < 1) chunks = 1;
  }
  const int rows_per_chunk = (rows + chunks - 1) / chunks;
  return (rows + rows_per_chunk - 1) / rows_per_chunk;  // no empty trailing chunk
}
}  // namespace

std::size_t column_sums_workspace(int rows, int cols) {
  if (rows <= 0 || cols <= 0) return 0;
  const int chunks = column_chunks(rows, cols);
  return chunks > 1 ? static_cast<std::size_t>(chunks) * cols : 0;
}

void launch_finalize_sum_runs(const double* partials, unsigned int count, double* results, int runs,
                              cudaStream_t stream) {
  if (runs <= 0) return;
  SKR_LAUNCH(static_cast<unsigned int>(runs), kThreads, 0, stream, finalize_sum_runs_kernel)(partials, count, results);
  SKR_CUDA_CHECK_LAUNCH("finalize_sum_runs_kernel");
}

void launch_sum_squares_runs(const float* x, std::size_t stride, std::size_t n, int runs, double* partials,
                             double* results, cudaStream_t stream) {
  if (runs <= 0) return;
  const unsigned int blocks = reduce_blocks(n);
  SKR_LAUNCH(dim3(blocks, static_cast<unsigned int>(runs)), kThreads, 0, stream, sum_squares_runs_partial_kernel)(x, stride, n,
                                                                                                       partials);
  SKR_CUDA_CHECK_LAUNCH("sum_squares_runs_partial_kernel");
  launch_finalize_sum_runs(partials, blocks, results, runs, stream);
}

void launch_column_sums(const float* A, int rows, int cols, float* out, double* workspace, cudaStream_t stream) {
  launch_column_sums(A, 0, rows, cols, out, 0, 1, workspace, stream);
}

void launch_column_sums(const float* A, std::size_t stride_a, int rows, int cols, float* out, std::size_t stride_out,
                        int runs, double* workspace, cudaStream_t stream) {
  if (cols <= 0 || runs <= 0) return;
  if (rows <= 0) {  // an empty sum is 0
    for (int r = 0; r < runs; ++r)
      SKR_CUDA_CHECK(cudaMemsetAsync(out + r * stride_out, 0, static_cast<std::size_t>(cols) * sizeof(float), stream));
    return;
  }
  const int col_tiles = (cols + kTileCols - 1) / kTileCols;
  const int chunks = column_chunks(rows, cols);
  const int rows_per_chunk = (rows + chunks - 1) / chunks;
  const dim3 block(kTileCols, kTileLanes);
  const dim3 grid(static_cast<unsigned int>(col_tiles), static_cast<unsigned int>(chunks),
                  static_cast<unsigned int>(runs));
  SKR_LAUNCH(grid, block, 0, stream, column_sums_kernel)(A, stride_a, rows, cols, rows_per_chunk, out, stride_out, workspace);
  SKR_CUDA_CHECK_LAUNCH("column_sums_kernel");
  if (chunks > 1) {
    const dim3 finalize(grid_for(static_cast<std::size_t>(cols)), static_cast<unsigned int>(runs));
    SKR_LAUNCH(finalize, kThreads, 0, stream, column_sums_finalize_kernel)(workspace, chunks, cols, out, stride_out);
    SKR_CUDA_CHECK_LAUNCH("column_sums_finalize_kernel");
  }
}

}  // namespace skillrun::cuda
