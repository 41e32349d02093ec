// Sparse-parity batch generation on the GPU.
// Each thread expands one sample: its Philox blocks (stream, a, sample, block) give the task
// (Zipf, integer thresholds) and the n_bits data bits; the label is the XOR over S_task.
// The per-sample logic is parity_sample(), shared verbatim with the CPU backend.
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

__global__ void increment_counter_kernel(uint32_t* counter) { *counter += 1u; }

// launchers

void launch_increment_counter(uint32_t* counter, cudaStream_t stream) {
  increment_counter_kernel<<<1, 1, 0, stream>>>(counter);
  SKR_CUDA_CHECK_LAUNCH("increment_counter_kernel");
}

void launch_sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x, int32_t* labels,
                          int32_t* tasks, const uint32_t* step_from, cudaStream_t stream) {
  if (count <= 0) return;
  const int threads = 256;
  const int blocks = (count + threads - 1) / threads;
  sparse_parity_kernel<<<blocks, threads, 0, stream>>>(draw, tables, count, x, labels, tasks, step_from);
  SKR_CUDA_CHECK_LAUNCH("sparse_parity_kernel");
}

}  // namespace skillrun::cuda
