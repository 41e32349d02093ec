// Launchers for the data kernels: multi-task sparse parity on the GPU, one thread per sample,
// bit-identical to the CPU backend because both call parity_sample() (tasks/sparse_parity_gen.h).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "tasks/sparse_parity_gen.h"

namespace skillrun::cuda {

// x (count, n_tasks + n_bits), labels (count), tasks (count): device pointers.
void launch_sparse_parity(const ParityDraw& draw, const ParityTables& tables, int count, float* x,
                          int32_t* labels, int32_t* tasks, cudaStream_t stream);

}  // namespace skillrun::cuda
