// Launchers for the data kernels: multi-task sparse parity on the GPU, one thread per sample,
// bit-identical to the CPU backend because both call parity_sample() (backend/sparse_parity_gen.h).
#pragma once
#include "cuda_api.cuh"

#include <cstdint>

#include "backend/sparse_parity_gen.h"

namespace skillrun::cuda {

// x (count, n_tasks + n_bits), labels (count), tasks (count): device pointers. step_from: null, or
// device memory holding the draw's `a` (the step counter of a graph-replayed step).
void launch_sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x,
                          int32_t* labels, int32_t* tasks, const uint32_t* step_from, cudaStream_t stream);
// *counter += 1 (the last node of a step graph).
void launch_increment_counter(uint32_t* counter, cudaStream_t stream);

}  // namespace skillrun::cuda
