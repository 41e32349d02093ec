// Launcher for the softmax cross-entropy kernel (per-sample loss, correctness and gradient).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace skillrun::cuda {

// logits (rows x classes), labels (rows); loss, correct (rows); dlogits (rows x classes) or
// nullptr. A label outside [0, classes) sets *bad_label (device-visible memory, may be
// nullptr) and gives that row NaN loss and gradient, 0 correct.
void launch_cross_entropy(const float* logits, const int32_t* labels, int rows, int classes, float* loss,
                          float* correct, float* dlogits, float grad_scale, int* bad_label, cudaStream_t stream);

}  // namespace skillrun::cuda
