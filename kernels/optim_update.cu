// Optimizer updates, one thread per element in grid-stride loops. The per-element maths is
// backend/update_math.h (the rules are written out there), the same functions the CPU backend's
// loops call; kernels are built with --fmad=false, so a*b + c is two rounded operations here as
// there, and the two backends agree to the bit on these rules.
// NMD is three kernels: momentum + per-block partial sums of m^2, a one-block finalize into
// device memory, then the step, which reads ||m||_F^2 there: no host round trip.
#include "backend/update_math.h"
#include "common.cuh"
#include "optim_update.cuh"
#include "reduce.cuh"

namespace skillrun::cuda {

// kernels

__global__ void sgd_kernel(float* w, const float* g, float* m, std::size_t n, float lr, float mu, bool nesterov,
                           float wd) {
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

__global__ void nmd_momentum_kernel(const float* g, float* m, std::size_t n, float beta, double* partials) {
  double acc = 0.0;
  for (std::size_t i = global_index(); i < n; i += grid_stride()) {
    const float mi = nmd_momentum_element(m[i], g[i], beta);
    acc += static_cast<double>(mi) * mi;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void nmd_step_kernel(float* w, const float* m, std::size_t n, float lr, float decay, const double* norm_sq) {
  const double ss = *norm_sq;
  if (ss == 0.0) return;  // no direction, so no step (weight decay included), as on the CPU
  const float step = nmd_step_size(lr, ss);
  for (std::size_t i = global_index(); i < n; i += grid_stride()) w[i] = nmd_step_element(w[i], m[i], step, decay);
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

__global__ void signgd_kernel(float* w, const float* g, float* m, std::size_t n, float lr, float mu, float decay) {
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

__global__ void momentum_kernel(float* m, const float* g, float* out, std::size_t n, float beta, bool nesterov) {
  // out may alias g or m: each element is read before it is written, by the same thread.
  for (std::size_t i = global_index(); i < n; i += grid_stride()) out[i] = momentum_element(m[i], g[i], beta, nesterov);
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

}  // namespace skillrun::cuda
