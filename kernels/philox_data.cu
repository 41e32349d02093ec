// Sparse-parity batch generation on the GPU.
// Each sample's Philox blocks (stream, a, sample, block) give the task (Zipf, integer
// thresholds) and the n_bits data bits; the label is the XOR over S_task. The per-sample logic
// is parity_sample() / parity_words(), shared verbatim with the CPU backend (and checked equal
// to each other there: tests/unit/test_sparse_parity.cpp).
#include <cstdint>

#include "common.cuh"
#include "philox_data.cuh"

namespace skillrun::cuda {

// kernels

// step_from: when not null, the draw's step is read there (a graph-replayed step).
__global__ void sparse_parity_kernel(ParityDraw draw, ParityTables tables, int count, float* x, int32_t* labels,
                                     int32_t* tasks, const uint32_t* step_from) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  if (step_from != nullptr) draw.step_or_task = *step_from;
  const int row = draw.n_tasks + draw.n_bits;
  tasks[i] = parity_sample(draw, tables, draw.first_sample + static_cast<uint32_t>(i),
                           x + static_cast<size_t>(i) * row, labels + i);
}

// The coalesced form (for rows whose words fit in shared memory): a block draws kRowsPerBlock
// samples (one thread each: parity_words, its task and label stored at once), then writes their
// rows together, consecutive threads at consecutive addresses (parity_value per entry, 32-bit
// index arithmetic: a block's rows hold fewer than 2^31 entries), four at a time where x is
// 16-byte aligned. The same bits as
// sparse_parity_kernel, which writes a whole row per thread (uncoalesced stores).
constexpr int kRowsPerBlock = 64;
constexpr int kCoalescedThreads = 256;

__global__ void sparse_parity_coalesced_kernel(ParityDraw draw, ParityTables tables, int count, float* x,
                                               int32_t* labels, int32_t* tasks, const uint32_t* step_from,
                                               int n_words, bool vector_stores) {
  SKR_DYNAMIC_SHARED(uint32_t, shared_words);  // kRowsPerBlock x n_words, then kRowsPerBlock tasks
  int32_t* row_task = reinterpret_cast<int32_t*>(shared_words + kRowsPerBlock * n_words);
  if (step_from != nullptr) draw.step_or_task = *step_from;
  const int first = blockIdx.x * kRowsPerBlock;
  const int rows = min(kRowsPerBlock, count - first);
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    int32_t label = 0;
    const int32_t task = parity_words(draw, tables, draw.first_sample + static_cast<uint32_t>(first + r),
                                      shared_words + r * n_words, &label);
    row_task[r] = task;
    tasks[first + r] = task;
    labels[first + r] = label;
  }
  __syncthreads();
  const int dim = draw.n_tasks + draw.n_bits;
  const int total = rows * dim;
  float* out = x + static_cast<std::size_t>(first) * static_cast<std::size_t>(dim);
  // 16-byte stores when x is 16-byte aligned: a block's rows start kRowsPerBlock * dim floats
  // (a multiple of 4) after x, so then every block's start is too. Four entries per thread and
  // store, the column carried from one to the next; the tail (< 4 entries) one by one.
  int done = 0;
  if (vector_stores) {
    const int quads = total / 4;
    for (int q = threadIdx.x; q < quads; q += blockDim.x) {
      int r = (4 * q) / dim;
      int c = 4 * q - r * dim;
      float v[4];
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        v[t] = parity_value(c, draw.n_tasks, row_task[r], shared_words + r * n_words);
        if (++c == dim) {
          c = 0;
          ++r;
        }
      }
      reinterpret_cast<float4*>(out)[q] = make_float4(v[0], v[1], v[2], v[3]);
    }
    done = 4 * quads;
  }
  for (int e = done + static_cast<int>(threadIdx.x); e < total; e += blockDim.x) {
    const int r = e / dim;
    const int c = e - r * dim;
    out[e] = parity_value(c, draw.n_tasks, row_task[r], shared_words + r * n_words);
  }
}

__global__ void increment_counter_kernel(uint32_t* counter) { *counter += 1u; }

// launchers

void launch_increment_counter(uint32_t* counter, cudaStream_t stream) {
  SKR_LAUNCH(1, 1, 0, stream, increment_counter_kernel)(counter);
  SKR_CUDA_CHECK_LAUNCH("increment_counter_kernel");
}

void launch_sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x, int32_t* labels,
                          int32_t* tasks, const uint32_t* step_from, cudaStream_t stream) {
  if (count <= 0) return;
  // (An assoc_memory draw, DrawKind::Assoc, has no bits: one row per thread, assoc_sample.)
  // The coalesced kernel when a block's words fit the default 48 KiB of shared memory and a
  // block's rows stay within 32-bit indices; else one row per thread.
  const int n_words = static_cast<int>(parity_word_count(draw.n_bits));
  const std::size_t shared = static_cast<std::size_t>(kRowsPerBlock) * (static_cast<std::size_t>(n_words) + 1) *
                             sizeof(uint32_t);
  const long long block_entries = static_cast<long long>(kRowsPerBlock) * (draw.n_tasks + draw.n_bits);
  if (draw.kind == DrawKind::Parity && n_words > 0 && shared <= 48 * 1024 && block_entries < (1LL << 31)) {
    const int blocks = (count + kRowsPerBlock - 1) / kRowsPerBlock;
    const bool vector_stores = reinterpret_cast<std::uintptr_t>(x) % 16 == 0;
    SKR_LAUNCH(blocks, kCoalescedThreads, shared, stream, sparse_parity_coalesced_kernel)(draw, tables, count, x, labels,
                                                                                 tasks, step_from, n_words,
                                                                                 vector_stores);
    SKR_CUDA_CHECK_LAUNCH("sparse_parity_coalesced_kernel");
    return;
  }
  const int threads = 256;
  const int blocks = (count + threads - 1) / threads;
  SKR_LAUNCH(blocks, threads, 0, stream, sparse_parity_kernel)(draw, tables, count, x, labels, tasks, step_from);
  SKR_CUDA_CHECK_LAUNCH("sparse_parity_kernel");
}

}  // namespace skillrun::cuda
