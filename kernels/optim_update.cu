// Optimizer updates, one thread per element in grid-stride loops. The per-element maths is
// backend/update_math.h (the rules are written out there), the same functions the CPU backend's
// loops call; kernels are built with --fmad=false, so a*b + c is two rounded operations here as
// there, and the two backends agree to the bit on these rules.
// NMD is three kernels: momentum + per-block partial sums of m^2, a one-block finalize into
// device memory, then the step, which reads ||m||_F^2 there: no host round trip.
#include "backend/run_update.h"
#include "backend/update_math.h"
#include "common.cuh"
#include "optim_update.cuh"
#include "reduce.cuh"

namespace skillrun::cuda {

// kernels

// The element loops, shared by the one-run kernels and the run-axis kernels (blockIdx.y: an
// entry of the run table), so a run in a pack gets exactly the arithmetic of a run alone.
__device__ __forceinline__ void sgd_elements(float* w, const float* g, float* m, std::size_t n, float lr, float mu,
                                             bool nesterov, float wd) {
  if (mu == 0.0f) {  // m untouched, may be nullptr
    for (std::size_t i = global_index(); i < n; i += grid_stride()) w[i] = sgd_element(w[i], g[i], lr, wd);
  } else if (nesterov) {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) sgd_nesterov_element(w[i], g[i], m[i], lr, mu, wd);
  } else {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) {
      sgd_heavy_ball_element(w[i], g[i], m[i], lr, mu, wd);
    }
  }
}

__global__ void sgd_kernel(float* w, const float* g, float* m, std::size_t n, float lr, float mu, bool nesterov,
                           float wd) {
  sgd_elements(w, g, m, n, lr, mu, nesterov, wd);
}

__device__ __forceinline__ void nmd_momentum_elements(const float* g, float* m, std::size_t n, float beta,
                                                      double* partials) {
  double acc = 0.0;
  for (std::size_t i = global_index(); i < n; i += grid_stride()) {
    const float mi = nmd_momentum_element(m[i], g[i], beta);
    acc += static_cast<double>(mi) * mi;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void nmd_momentum_kernel(const float* g, float* m, std::size_t n, float beta, double* partials) {
  nmd_momentum_elements(g, m, n, beta, partials);
}

__device__ __forceinline__ void nmd_step_elements(float* w, const float* m, std::size_t n, float lr, float decay,
                                                  const double* norm_sq) {
  const double ss = *norm_sq;
  if (ss == 0.0) return;  // no direction, so no step (weight decay included), as on the CPU
  const float step = nmd_step_size(lr, ss);
  for (std::size_t i = global_index(); i < n; i += grid_stride()) w[i] = nmd_step_element(w[i], m[i], step, decay);
}

__global__ void nmd_step_kernel(float* w, const float* m, std::size_t n, float lr, float decay, const double* norm_sq) {
  nmd_step_elements(w, m, n, lr, decay, norm_sq);
}

// The Adam element loop both Adam kernels run, given the step's scalars.
__device__ __forceinline__ void adam_elements(float* w, const float* g, float* m, float* v, std::size_t n, float step,
                                              float inv_sqrt_bc2, float beta1, float beta2, float eps, float decay,
                                              float l2) {
  for (std::size_t i = global_index(); i < n; i += grid_stride()) {
    adam_element(w[i], g[i], m[i], v[i], step, inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
  }
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, std::size_t n, float step, float inv_sqrt_bc2,
                            float beta1, float beta2, float eps, float decay, float l2) {
  adam_elements(w, g, m, v, n, step, inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
}

// Adam with its step t read on the device (a graph-replayed step): t = *counter + t_offset. The
// bias corrections are adam_bias_correction, the function adam_scalars() calls on the host;
// CUDA's pow is within 2 ulp of the host's in double, so the float scalars agree except when a
// double lands within those 2 ulp of a float rounding boundary.
__global__ void adam_counted_kernel(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1,
                                    float beta2, float eps, float decay, float l2, const uint32_t* counter,
                                    int64_t t_offset) {
  const double t = static_cast<double>(static_cast<int64_t>(*counter) + t_offset);
  const AdamBiasCorrection<float> bc = adam_bias_correction(lr, beta1, beta2, t);
  adam_elements(w, g, m, v, n, bc.step, bc.inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
}

__device__ __forceinline__ void signgd_elements(float* w, const float* g, float* m, std::size_t n, float lr, float mu,
                                                float decay) {
  if (mu == 0.0f) {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) {
      const float gi = g[i];
      if (m != nullptr) m[i] = gi;  // m = g, kept for checkpoints
      w[i] = signgd_element(w[i], gi, lr, decay);
    }
  } else {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) {
      const float mi = accumulate_momentum(m[i], g[i], mu);
      w[i] = signgd_element(w[i], mi, lr, decay);
    }
  }
}

__global__ void signgd_kernel(float* w, const float* g, float* m, std::size_t n, float lr, float mu, float decay) {
  signgd_elements(w, g, m, n, lr, mu, decay);
}

__global__ void momentum_kernel(float* m, const float* g, float* out, std::size_t n, float beta, bool nesterov) {
  // out may alias g or m: each element is read before it is written, by the same thread.
  for (std::size_t i = global_index(); i < n; i += grid_stride()) out[i] = momentum_element(m[i], g[i], beta, nesterov);
}

// ---- the run axis: entry blockIdx.y of `table`; w, g at run * ps; state at slice * ss;
// Muon's scratch at blockIdx.y * xs.

__global__ void sgd_runs_kernel(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                                const RunUpdate* table, bool nesterov) {
  const RunUpdate u = table[blockIdx.y];
  sgd_elements(w + u.run * ps, g + u.run * ps, m != nullptr ? m + u.slice * ss : nullptr, n, u.lr, u.momentum,
               nesterov, u.weight_decay);
}

__global__ void nmd_momentum_runs_kernel(const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                                         const RunUpdate* table, double* partials) {
  const RunUpdate u = table[blockIdx.y];
  nmd_momentum_elements(g + u.run * ps, m + u.slice * ss, n, u.momentum,
                        partials + static_cast<std::size_t>(blockIdx.y) * gridDim.x);
}

__global__ void nmd_step_runs_kernel(float* w, std::size_t ps, const float* m, std::size_t ss, std::size_t n,
                                     const RunUpdate* table, const double* norm_sq) {
  const RunUpdate u = table[blockIdx.y];
  nmd_step_elements(w + u.run * ps, m + u.slice * ss, n, u.lr, decay_factor(u.lr, u.weight_decay),
                    norm_sq + blockIdx.y);
}

// t = *counter + t_offset in a captured step, t_offset alone eagerly (counter == nullptr). The
// bias corrections are formed on the device, as in a graph-replayed run alone.
__global__ void adam_runs_kernel(float* w, const float* g, std::size_t ps, float* m, std::size_t ms, float* v,
                                 std::size_t vs, std::size_t n, const RunUpdate* table, bool decoupled,
                                 const uint32_t* counter, int64_t t_offset) {
  const RunUpdate u = table[blockIdx.y];
  const double t = static_cast<double>((counter != nullptr ? static_cast<int64_t>(*counter) : 0) + t_offset);
  const AdamBiasCorrection<float> bc = adam_bias_correction(u.lr, u.momentum, u.beta2, t);
  const float decay = decoupled ? decay_factor(u.lr, u.weight_decay) : 1.0f;
  const float l2 = decoupled ? 0.0f : u.weight_decay;
  adam_elements(w + u.run * ps, g + u.run * ps, m + u.slice * ms, v + u.slice * vs, n, bc.step, bc.inv_sqrt_bc2,
                u.momentum, u.beta2, u.eps, decay, l2);
}

__global__ void signgd_runs_kernel(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                                   const RunUpdate* table) {
  const RunUpdate u = table[blockIdx.y];
  signgd_elements(w + u.run * ps, g + u.run * ps, m != nullptr ? m + u.slice * ss : nullptr, n, u.lr, u.momentum,
                  decay_factor(u.lr, u.weight_decay));
}

__global__ void momentum_runs_kernel(float* m, std::size_t ss, const float* g, std::size_t ps, float* out,
                                     std::size_t xs, std::size_t n, const RunUpdate* table, bool nesterov) {
  const RunUpdate u = table[blockIdx.y];
  m += u.slice * ss;
  g += u.run * ps;
  out += blockIdx.y * xs;
  for (std::size_t i = global_index(); i < n; i += grid_stride())
    out[i] = momentum_element(m[i], g[i], u.momentum, nesterov);
}

// w = step_alpha d + step_beta w: axpby_kernel's expressions (elementwise.cu).
__global__ void muon_step_runs_kernel(float* w, std::size_t ps, const float* d, std::size_t xs, std::size_t n,
                                      const RunUpdate* table) {
  const RunUpdate u = table[blockIdx.y];
  w += u.run * ps;
  d += blockIdx.y * xs;
  const float alpha = u.step_alpha, beta = u.step_beta;
  if (beta == 0.0f) {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) w[i] = alpha * d[i];
  } else {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) w[i] = alpha * d[i] + beta * w[i];
  }
}

// launchers

void launch_sgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum, bool nesterov,
                       float weight_decay, cudaStream_t stream) {
  if (n == 0) return;
  sgd_kernel<<<grid_for(n), kThreads, 0, stream>>>(w, g, m, n, lr, momentum, nesterov, weight_decay);
  SKR_CUDA_CHECK_LAUNCH("sgd_kernel");
}

void launch_nmd_update(float* w, const float* g, float* m, std::size_t n, float lr, float beta, float weight_decay,
                       double* partials, double* norm_sq, cudaStream_t stream) {
  if (n == 0) return;
  const unsigned int blocks = reduce_blocks(n);
  nmd_momentum_kernel<<<blocks, kThreads, 0, stream>>>(g, m, n, beta, partials);
  SKR_CUDA_CHECK_LAUNCH("nmd_momentum_kernel");
  launch_finalize_sum(partials, blocks, norm_sq, stream);
  const float decay = decay_factor(lr, weight_decay);
  nmd_step_kernel<<<grid_for(n), kThreads, 0, stream>>>(w, m, n, lr, decay, norm_sq);
  SKR_CUDA_CHECK_LAUNCH("nmd_step_kernel");
}

void launch_adam_update(float* w, const float* g, float* m, float* v, std::size_t n, float step, float inv_sqrt_bc2,
                        float beta1, float beta2, float eps, float decay, float l2, cudaStream_t stream) {
  if (n == 0) return;
  adam_kernel<<<grid_for(n), kThreads, 0, stream>>>(w, g, m, v, n, step, inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
  SKR_CUDA_CHECK_LAUNCH("adam_kernel");
}

void launch_adam_update_counted(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1,
                                float beta2, float eps, float decay, float l2, const uint32_t* counter,
                                int64_t t_offset, cudaStream_t stream) {
  if (n == 0) return;
  adam_counted_kernel<<<grid_for(n), kThreads, 0, stream>>>(w, g, m, v, n, lr, beta1, beta2, eps, decay, l2, counter,
                                                            t_offset);
  SKR_CUDA_CHECK_LAUNCH("adam_counted_kernel");
}

void launch_signgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum,
                          float weight_decay, cudaStream_t stream) {
  if (n == 0) return;
  const float decay = decay_factor(lr, weight_decay);
  signgd_kernel<<<grid_for(n), kThreads, 0, stream>>>(w, g, m, n, lr, momentum, decay);
  SKR_CUDA_CHECK_LAUNCH("signgd_kernel");
}

void launch_momentum_accumulate(float* m, const float* g, float* out, std::size_t n, float beta, bool nesterov,
                                cudaStream_t stream) {
  if (n == 0) return;
  momentum_kernel<<<grid_for(n), kThreads, 0, stream>>>(m, g, out, n, beta, nesterov);
  SKR_CUDA_CHECK_LAUNCH("momentum_kernel");
}

// ---- run axis launchers: `entries` table entries (<= 65535), one launch each op

void launch_sgd_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                            const RunUpdate* table, int entries, bool nesterov, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  sgd_runs_kernel<<<dim3(grid_for(n), static_cast<unsigned int>(entries)), kThreads, 0, stream>>>(w, g, ps, m, ss, n,
                                                                                                   table, nesterov);
  SKR_CUDA_CHECK_LAUNCH("sgd_runs_kernel");
}

void launch_nmd_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                            const RunUpdate* table, int entries, double* workspace, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  const unsigned int blocks = reduce_blocks(n);
  double* norm_sq = workspace + static_cast<std::size_t>(blocks) * entries;
  const unsigned int y = static_cast<unsigned int>(entries);
  nmd_momentum_runs_kernel<<<dim3(blocks, y), kThreads, 0, stream>>>(g, ps, m, ss, n, table, workspace);
  SKR_CUDA_CHECK_LAUNCH("nmd_momentum_runs_kernel");
  launch_finalize_sum_runs(workspace, blocks, norm_sq, entries, stream);
  nmd_step_runs_kernel<<<dim3(grid_for(n), y), kThreads, 0, stream>>>(w, ps, m, ss, n, table, norm_sq);
  SKR_CUDA_CHECK_LAUNCH("nmd_step_runs_kernel");
}

std::size_t nmd_runs_workspace(std::size_t n, int entries) {
  return (static_cast<std::size_t>(reduce_blocks(n)) + 1) * static_cast<std::size_t>(entries);
}

void launch_adam_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ms, float* v,
                             std::size_t vs, std::size_t n, const RunUpdate* table, int entries, bool decoupled,
                             const uint32_t* counter, int64_t t_offset, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  adam_runs_kernel<<<dim3(grid_for(n), static_cast<unsigned int>(entries)), kThreads, 0, stream>>>(
      w, g, ps, m, ms, v, vs, n, table, decoupled, counter, t_offset);
  SKR_CUDA_CHECK_LAUNCH("adam_runs_kernel");
}

void launch_signgd_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                               const RunUpdate* table, int entries, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  signgd_runs_kernel<<<dim3(grid_for(n), static_cast<unsigned int>(entries)), kThreads, 0, stream>>>(w, g, ps, m, ss,
                                                                                                      n, table);
  SKR_CUDA_CHECK_LAUNCH("signgd_runs_kernel");
}

void launch_momentum_accumulate_runs(float* m, std::size_t ss, const float* g, std::size_t ps, float* out,
                                     std::size_t xs, std::size_t n, const RunUpdate* table, int entries,
                                     bool nesterov, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  momentum_runs_kernel<<<dim3(grid_for(n), static_cast<unsigned int>(entries)), kThreads, 0, stream>>>(
      m, ss, g, ps, out, xs, n, table, nesterov);
  SKR_CUDA_CHECK_LAUNCH("momentum_runs_kernel");
}

void launch_muon_step_runs(float* w, std::size_t ps, const float* d, std::size_t xs, std::size_t n,
                           const RunUpdate* table, int entries, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  muon_step_runs_kernel<<<dim3(grid_for(n), static_cast<unsigned int>(entries)), kThreads, 0, stream>>>(w, ps, d, xs,
                                                                                                         n, table);
  SKR_CUDA_CHECK_LAUNCH("muon_step_runs_kernel");
}

}  // namespace skillrun::cuda
