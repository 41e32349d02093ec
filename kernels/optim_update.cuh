// Launchers for the optimizer update kernels: one fused pass over (w, g, state) per rule; NMD
// adds a device reduction for ||m||_F that never leaves the GPU. Semantics: Backend's docs.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace skillrun::cuda {

void launch_sgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum, bool nesterov,
                       float weight_decay, cudaStream_t stream);
// partials: kMaxReduceBlocks doubles; norm_sq: one double (device) that receives ||m||_F^2.
void launch_nmd_update(float* w, const float* g, float* m, std::size_t n, float lr, float beta, float weight_decay,
                       double* partials, double* norm_sq, cudaStream_t stream);
// step = lr / (1 - beta1^t), inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t): computed by the caller in double.
void launch_adam_update(float* w, const float* g, float* m, float* v, std::size_t n, float step, float inv_sqrt_bc2,
                        float beta1, float beta2, float eps, float decay, float l2, cudaStream_t stream);
// The same update with t = *counter + t_offset read on the device (graph-replayed steps); lr is
// the plain learning rate, the bias corrections are formed in the kernel.
void launch_adam_update_counted(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1,
                                float beta2, float eps, float decay, float l2, const uint32_t* counter,
                                int64_t t_offset, cudaStream_t stream);
void launch_signgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum,
                          float weight_decay, cudaStream_t stream);
void launch_momentum_accumulate(float* m, const float* g, float* out, std::size_t n, float beta, bool nesterov,
                                cudaStream_t stream);

}  // namespace skillrun::cuda
