// Launchers for the optimizer update kernels: one fused pass over (w, g, state) per rule; NMD
// adds a device reduction for ||m||_F that never leaves the GPU. Semantics: Backend's docs.
#pragma once
#include "cuda_api.cuh"

#include <cstddef>
#include <cstdint>

#include "backend/run_update.h"

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

// The run axis of a pack (Backend's *_runs ops): one launch for `entries` entries of `table`
// (device memory, entries <= 65535); entry y updates w, g at table[y].run * ps and its state at
// table[y].slice * ss (m and v of Adam at ms, vs), Muon's scratch at y * xs, with its scalars,
// by the element loops of the one-run kernels.
void launch_sgd_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                            const RunUpdate* table, int entries, bool nesterov, cudaStream_t stream);
// workspace: nmd_runs_workspace(n, entries) doubles (partials, then the entries' ||m||^2).
void launch_nmd_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                            const RunUpdate* table, int entries, double* workspace, cudaStream_t stream);
std::size_t nmd_runs_workspace(std::size_t n, int entries);
// t = *counter + t_offset (counter: the step counter of a captured step), or t_offset when
// counter is nullptr; the bias corrections are formed on the device.
void launch_adam_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ms, float* v,
                             std::size_t vs, std::size_t n, const RunUpdate* table, int entries, bool decoupled,
                             const uint32_t* counter, int64_t t_offset, cudaStream_t stream);
void launch_signgd_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                               const RunUpdate* table, int entries, cudaStream_t stream);
void launch_momentum_accumulate_runs(float* m, std::size_t ss, const float* g, std::size_t ps, float* out,
                                     std::size_t xs, std::size_t n, const RunUpdate* table, int entries,
                                     bool nesterov, cudaStream_t stream);
void launch_muon_step_runs(float* w, std::size_t ps, const float* d, std::size_t xs, std::size_t n,
                           const RunUpdate* table, int entries, cudaStream_t stream);

}  // namespace skillrun::cuda
