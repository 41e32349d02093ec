// Optimizer updates, one thread per element in grid-stride loops, the same fp32 operations in
// the same order as the CPU backend (kernels are built with --fmad=false, so a*b + c is two
// rounded operations here as there, and the two backends agree to the bit on these rules).
//   SGD:    g' = g + wd w; m = mu m + g'; d = nesterov ? g' + mu m : m; w -= lr d
//   NMD:    m = beta m + g; w = w (1 - lr wd) - (lr / ||m||_F) m    (no step if ||m||_F = 0)
//   Adam:   m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; w = w decay - step m / (sqrt(v) / sqrt(bc2) + eps)
//   SignGD: m = mu m + g; w = w (1 - lr wd) - lr sign(m)
//   Muon momentum: m = beta m + g; out = nesterov ? g + beta m : m
// NMD is three kernels: momentum + per-block partial sums of m^2, a one-block finalize into
// device memory, then the step, which reads ||m||_F^2 there: no host round trip.
#include "common.cuh"
#include "optim_update.cuh"
#include "reduce.cuh"

namespace skillrun::cuda {

namespace {
__device__ __forceinline__ float sign_of(float v) { return static_cast<float>((v > 0.0f) - (v < 0.0f)); }
}  // namespace

// kernels

__global__ void sgd_kernel(float* w, const float* g, float* m, std::size_t n, float lr, float mu, bool nesterov,
                           float wd) {
  if (mu == 0.0f) {  // m untouched, may be nullptr
    for (std::size_t i = global_index(); i < n; i += grid_stride()) w[i] -= lr * (g[i] + wd * w[i]);
  } else if (nesterov) {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) {
      const float gi = g[i] + wd * w[i];
      const float mi = mu * m[i] + gi;
      m[i] = mi;
      w[i] -= lr * (gi + mu * mi);
    }
  } else {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) {
      const float mi = mu * m[i] + g[i] + wd * w[i];
      m[i] = mi;
      w[i] -= lr * mi;
    }
  }
}

__global__ void nmd_momentum_kernel(const float* g, float* m, std::size_t n, float beta, double* partials) {
  double acc = 0.0;
  for (std::size_t i = global_index(); i < n; i += grid_stride()) {
    const float mi = beta * m[i] + g[i];
    m[i] = mi;
    acc += static_cast<double>(mi) * mi;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void nmd_step_kernel(float* w, const float* m, std::size_t n, float lr, float decay,
                                const double* norm_sq) {
  const double ss = *norm_sq;
  if (ss == 0.0) return;  // no direction, so no step (weight decay included), as on the CPU
  const float step = static_cast<float>(static_cast<double>(lr) / sqrt(ss));
  for (std::size_t i = global_index(); i < n; i += grid_stride()) w[i] = w[i] * decay - step * m[i];
}

// The Adam element loop both Adam kernels run, given the step's scalars.
__device__ __forceinline__ void adam_elements(float* w, const float* g, float* m, float* v, std::size_t n, float step,
                                              float inv_sqrt_bc2, float beta1, float beta2, float eps, float decay,
                                              float l2) {
  const float one_minus_b1 = 1.0f - beta1, one_minus_b2 = 1.0f - beta2;
  for (std::size_t i = global_index(); i < n; i += grid_stride()) {
    const float gi = g[i] + l2 * w[i];
    const float mi = beta1 * m[i] + one_minus_b1 * gi;
    const float vi = beta2 * v[i] + one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * decay - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
  }
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, std::size_t n, float step,
                            float inv_sqrt_bc2, float beta1, float beta2, float eps, float decay, float l2) {
  adam_elements(w, g, m, v, n, step, inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
}

// Adam with its step t read on the device (a graph-replayed step): t = *counter + t_offset. The
// bias corrections are formed in double as adam_scalars() forms them on the host; CUDA's pow is
// within 2 ulp of the host's in double, so the float scalars agree except when a double lands
// within those 2 ulp of a float rounding boundary.
__global__ void adam_counted_kernel(float* w, const float* g, float* m, float* v, std::size_t n, float lr,
                                    float beta1, float beta2, float eps, float decay, float l2,
                                    const uint32_t* counter, int64_t t_offset) {
  const double t = static_cast<double>(static_cast<int64_t>(*counter) + t_offset);
  const double bc1 = 1.0 - pow(static_cast<double>(beta1), t);
  const double bc2 = 1.0 - pow(static_cast<double>(beta2), t);
  adam_elements(w, g, m, v, n, static_cast<float>(static_cast<double>(lr) / bc1),
                static_cast<float>(1.0 / sqrt(bc2)), beta1, beta2, eps, decay, l2);
}

__global__ void signgd_kernel(float* w, const float* g, float* m, std::size_t n, float lr, float mu, float decay) {
  if (mu == 0.0f) {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) {
      const float gi = g[i];
      if (m != nullptr) m[i] = gi;  // m = g, kept for checkpoints
      w[i] = w[i] * decay - lr * sign_of(gi);
    }
  } else {
    for (std::size_t i = global_index(); i < n; i += grid_stride()) {
      const float mi = mu * m[i] + g[i];
      m[i] = mi;
      w[i] = w[i] * decay - lr * sign_of(mi);
    }
  }
}

__global__ void momentum_kernel(float* m, const float* g, float* out, std::size_t n, float beta, bool nesterov) {
  // out may alias g or m: each element is read before it is written, by the same thread.
  for (std::size_t i = global_index(); i < n; i += grid_stride()) {
    const float gi = g[i];
    const float mi = beta * m[i] + gi;
    m[i] = mi;
    out[i] = nesterov ? gi + beta * mi : mi;
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
  const float decay = 1.0f - lr * weight_decay;
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
  const float decay = 1.0f - lr * weight_decay;
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
