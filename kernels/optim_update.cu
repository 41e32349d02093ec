// Optimizer updates in grid-stride loops (one element, or one float4, per thread per stride).
// The per-element maths is backend/update_math.h (the rules are written out there), the same
// functions the CPU backend's loops call; kernels are built with --fmad=false, so a*b + c is two
// rounded operations here as there, and the two backends agree to the bit on these rules.
// NMD is three kernels: momentum + per-block partial sums of m^2, a one-block finalize into
// device memory, then the step, which reads ||m||_F^2 there: no host round trip.
//
// Vectorised form (kVec): every element pass but NMD's momentum pass moves 16 bytes (a float4)
// per access when the launcher finds every base pointer 16-byte aligned and, on the run axis,
// every stride a multiple of 4 elements (all entries of a table share the strides, so that
// suffices); the n % 4 tail goes through the scalar body. Each lane runs the same update_math.h
// function on the same operands as the scalar loop, so the choice never changes a bit. NMD's
// momentum pass stays one element per thread per stride: it also sums m^2, and a thread's
// elements fix the summation order of ||m||_F^2.
#include "backend/run_update.h"
#include "backend/update_math.h"
#include "common.cuh"
#include "optim_update.cuh"
#include "reduce.cuh"

namespace skillrun::cuda {

// kernels

// The element loops, shared by the one-run kernels and the run-axis kernels (blockIdx.y: an
// entry of the run table), so a run in a pack gets exactly the arithmetic of a run alone.
template <bool kVec>
__device__ __forceinline__ void sgd_elements(float* w, const float* g, float* m, std::size_t n, float lr, float mu,
                                             bool nesterov, float wd) {
  if (mu == 0.0f) {  // m untouched, may be nullptr
    for_each_element<kVec>(
        n,
        [=](std::size_t q) {
          Lanes4 wv = load4(w, q);
          const Lanes4 gv = load4(g, q);
#pragma unroll
          for (int k = 0; k < 4; ++k) wv.v[k] = sgd_element(wv.v[k], gv.v[k], lr, wd);
          store4(w, q, wv);
        },
        [=](std::size_t i) { w[i] = sgd_element(w[i], g[i], lr, wd); });
  } else if (nesterov) {
    for_each_element<kVec>(
        n,
        [=](std::size_t q) {
          Lanes4 wv = load4(w, q), mv = load4(m, q);
          const Lanes4 gv = load4(g, q);
#pragma unroll
          for (int k = 0; k < 4; ++k) sgd_nesterov_element(wv.v[k], gv.v[k], mv.v[k], lr, mu, wd);
          store4(m, q, mv);
          store4(w, q, wv);
        },
        [=](std::size_t i) { sgd_nesterov_element(w[i], g[i], m[i], lr, mu, wd); });
  } else {
    for_each_element<kVec>(
        n,
        [=](std::size_t q) {
          Lanes4 wv = load4(w, q), mv = load4(m, q);
          const Lanes4 gv = load4(g, q);
#pragma unroll
          for (int k = 0; k < 4; ++k) sgd_heavy_ball_element(wv.v[k], gv.v[k], mv.v[k], lr, mu, wd);
          store4(m, q, mv);
          store4(w, q, wv);
        },
        [=](std::size_t i) { sgd_heavy_ball_element(w[i], g[i], m[i], lr, mu, wd); });
  }
}

template <bool kVec>
__global__ void sgd_kernel(float* w, const float* g, float* m, std::size_t n, float lr, float mu, bool nesterov,
                           float wd) {
  sgd_elements<kVec>(w, g, m, n, lr, mu, nesterov, wd);
}

// Scalar only (see the top): thread t of block b sums the elements b * blockDim + t + k * stride.
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

template <bool kVec>
__device__ __forceinline__ void nmd_step_elements(float* w, const float* m, std::size_t n, float lr, float decay,
                                                  const double* norm_sq) {
  const double ss = *norm_sq;
  if (ss == 0.0) return;  // no direction, so no step (weight decay included), as on the CPU
  const float step = nmd_step_size(lr, ss);
  for_each_element<kVec>(
      n,
      [=](std::size_t q) {
        Lanes4 wv = load4(w, q);
        const Lanes4 mv = load4(m, q);
#pragma unroll
        for (int k = 0; k < 4; ++k) wv.v[k] = nmd_step_element(wv.v[k], mv.v[k], step, decay);
        store4(w, q, wv);
      },
      [=](std::size_t i) { w[i] = nmd_step_element(w[i], m[i], step, decay); });
}

template <bool kVec>
__global__ void nmd_step_kernel(float* w, const float* m, std::size_t n, float lr, float decay, const double* norm_sq) {
  nmd_step_elements<kVec>(w, m, n, lr, decay, norm_sq);
}

// The Adam element loop both Adam kernels run, given the step's scalars.
template <bool kVec>
__device__ __forceinline__ void adam_elements(float* w, const float* g, float* m, float* v, std::size_t n, float step,
                                              float inv_sqrt_bc2, float beta1, float beta2, float eps, float decay,
                                              float l2) {
  for_each_element<kVec>(
      n,
      [=](std::size_t q) {
        Lanes4 wv = load4(w, q), mv = load4(m, q), vv = load4(v, q);
        const Lanes4 gv = load4(g, q);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          adam_element(wv.v[k], gv.v[k], mv.v[k], vv.v[k], step, inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
        }
        store4(m, q, mv);
        store4(v, q, vv);
        store4(w, q, wv);
      },
      [=](std::size_t i) {
        adam_element(w[i], g[i], m[i], v[i], step, inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
      });
}

template <bool kVec>
__global__ void adam_kernel(float* w, const float* g, float* m, float* v, std::size_t n, float step, float inv_sqrt_bc2,
                            float beta1, float beta2, float eps, float decay, float l2) {
  adam_elements<kVec>(w, g, m, v, n, step, inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
}

// Adam with its step t read on the device (a graph-replayed step): t = *counter + t_offset. The
// bias corrections are adam_bias_correction, the function adam_scalars() calls on the host;
// CUDA's pow is within 2 ulp of the host's in double, so the float scalars agree except when a
// double lands within those 2 ulp of a float rounding boundary.
template <bool kVec>
__global__ void adam_counted_kernel(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1,
                                    float beta2, float eps, float decay, float l2, const uint32_t* counter,
                                    int64_t t_offset) {
  const double t = static_cast<double>(static_cast<int64_t>(*counter) + t_offset);
  const AdamBiasCorrection<float> bc = adam_bias_correction(lr, beta1, beta2, t);
  adam_elements<kVec>(w, g, m, v, n, bc.step, bc.inv_sqrt_bc2, beta1, beta2, eps, decay, l2);
}

template <bool kVec>
__device__ __forceinline__ void signgd_elements(float* w, const float* g, float* m, std::size_t n, float lr, float mu,
                                                float decay) {
  if (mu == 0.0f) {  // m = g, kept for checkpoints (m may be nullptr: no state)
    for_each_element<kVec>(
        n,
        [=](std::size_t q) {
          const Lanes4 gv = load4(g, q);
          if (m != nullptr) store4(m, q, gv);
          Lanes4 wv = load4(w, q);
#pragma unroll
          for (int k = 0; k < 4; ++k) wv.v[k] = signgd_element(wv.v[k], gv.v[k], lr, decay);
          store4(w, q, wv);
        },
        [=](std::size_t i) {
          const float gi = g[i];
          if (m != nullptr) m[i] = gi;
          w[i] = signgd_element(w[i], gi, lr, decay);
        });
  } else {
    for_each_element<kVec>(
        n,
        [=](std::size_t q) {
          Lanes4 wv = load4(w, q), mv = load4(m, q);
          const Lanes4 gv = load4(g, q);
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const float mi = accumulate_momentum(mv.v[k], gv.v[k], mu);
            wv.v[k] = signgd_element(wv.v[k], mi, lr, decay);
          }
          store4(m, q, mv);
          store4(w, q, wv);
        },
        [=](std::size_t i) {
          const float mi = accumulate_momentum(m[i], g[i], mu);
          w[i] = signgd_element(w[i], mi, lr, decay);
        });
  }
}

template <bool kVec>
__global__ void signgd_kernel(float* w, const float* g, float* m, std::size_t n, float lr, float mu, float decay) {
  signgd_elements<kVec>(w, g, m, n, lr, mu, decay);
}

// out may alias g or m (the same pointer): each element (each float4) is read before it is
// written, by the same thread, and m is stored before out, as in the scalar loop.
template <bool kVec>
__device__ __forceinline__ void momentum_elements(float* m, const float* g, float* out, std::size_t n, float beta,
                                                  bool nesterov) {
  for_each_element<kVec>(
      n,
      [=](std::size_t q) {
        Lanes4 mv = load4(m, q);
        const Lanes4 gv = load4(g, q);
        Lanes4 ov;
#pragma unroll
        for (int k = 0; k < 4; ++k) ov.v[k] = momentum_element(mv.v[k], gv.v[k], beta, nesterov);
        store4(m, q, mv);
        store4(out, q, ov);
      },
      [=](std::size_t i) { out[i] = momentum_element(m[i], g[i], beta, nesterov); });
}

template <bool kVec>
__global__ void momentum_kernel(float* m, const float* g, float* out, std::size_t n, float beta, bool nesterov) {
  momentum_elements<kVec>(m, g, out, n, beta, nesterov);
}

// ---- the run axis: entry blockIdx.y of `table`; w, g at run * ps; state at slice * ss;
// Muon's scratch at blockIdx.y * xs.

template <bool kVec>
__global__ void sgd_runs_kernel(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                                const RunUpdate* table, bool nesterov) {
  const RunUpdate u = table[blockIdx.y];
  sgd_elements<kVec>(w + u.run * ps, g + u.run * ps, m != nullptr ? m + u.slice * ss : nullptr, n, u.lr, u.momentum,
                     nesterov, u.weight_decay);
}

__global__ void nmd_momentum_runs_kernel(const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                                         const RunUpdate* table, double* partials) {
  const RunUpdate u = table[blockIdx.y];
  nmd_momentum_elements(g + u.run * ps, m + u.slice * ss, n, u.momentum,
                        partials + static_cast<std::size_t>(blockIdx.y) * gridDim.x);
}

template <bool kVec>
__global__ void nmd_step_runs_kernel(float* w, std::size_t ps, const float* m, std::size_t ss, std::size_t n,
                                     const RunUpdate* table, const double* norm_sq) {
  const RunUpdate u = table[blockIdx.y];
  nmd_step_elements<kVec>(w + u.run * ps, m + u.slice * ss, n, u.lr, decay_factor(u.lr, u.weight_decay),
                          norm_sq + blockIdx.y);
}

// t = *counter + t_offset in a captured step, t_offset alone eagerly (counter == nullptr). The
// bias corrections are formed on the device, as in a graph-replayed run alone.
template <bool kVec>
__global__ void adam_runs_kernel(float* w, const float* g, std::size_t ps, float* m, std::size_t ms, float* v,
                                 std::size_t vs, std::size_t n, const RunUpdate* table, bool decoupled,
                                 const uint32_t* counter, int64_t t_offset) {
  const RunUpdate u = table[blockIdx.y];
  const double t = static_cast<double>((counter != nullptr ? static_cast<int64_t>(*counter) : 0) + t_offset);
  const AdamBiasCorrection<float> bc = adam_bias_correction(u.lr, u.momentum, u.beta2, t);
  const float decay = decoupled ? decay_factor(u.lr, u.weight_decay) : 1.0f;
  const float l2 = decoupled ? 0.0f : u.weight_decay;
  adam_elements<kVec>(w + u.run * ps, g + u.run * ps, m + u.slice * ms, v + u.slice * vs, n, bc.step,
                      bc.inv_sqrt_bc2, u.momentum, u.beta2, u.eps, decay, l2);
}

template <bool kVec>
__global__ void signgd_runs_kernel(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                                   const RunUpdate* table) {
  const RunUpdate u = table[blockIdx.y];
  signgd_elements<kVec>(w + u.run * ps, g + u.run * ps, m != nullptr ? m + u.slice * ss : nullptr, n, u.lr,
                        u.momentum, decay_factor(u.lr, u.weight_decay));
}

template <bool kVec>
__global__ void momentum_runs_kernel(float* m, std::size_t ss, const float* g, std::size_t ps, float* out,
                                     std::size_t xs, std::size_t n, const RunUpdate* table, bool nesterov) {
  const RunUpdate u = table[blockIdx.y];
  momentum_elements<kVec>(m + u.slice * ss, g + u.run * ps, out + blockIdx.y * xs, n, u.momentum, nesterov);
}

// w = step_alpha d + step_beta w: axpby's loop (common.cuh); beta == 0 never reads w.
template <bool kVec>
__global__ void muon_step_runs_kernel(float* w, std::size_t ps, const float* d, std::size_t xs, std::size_t n,
                                      const RunUpdate* table) {
  const RunUpdate u = table[blockIdx.y];
  axpby_elements<kVec>(w + u.run * ps, d + blockIdx.y * xs, n, u.step_alpha, u.step_beta);
}

// launchers

// One launch of kernel<true> (float4 accesses) or kernel<false> (scalar), as `vec` says, on
// `grid` (its x sized by grid_for_elements for the same choice), followed by its launch check.
#define SKR_LAUNCH_VEC(kernel, vec, grid, stream, ...)               \
  do {                                                               \
    if (vec) {                                                       \
      SKR_LAUNCH((grid), kThreads, 0, (stream), kernel<true>)(__VA_ARGS__);  \
    } else {                                                         \
      SKR_LAUNCH((grid), kThreads, 0, (stream), kernel<false>)(__VA_ARGS__); \
    }                                                                \
    SKR_CUDA_CHECK_LAUNCH(#kernel);                                  \
  } while (0)

namespace {
// The x extent for n elements per entry and `entries` entries on y.
dim3 runs_grid(std::size_t n, bool vec, int entries) {
  return dim3(grid_for_elements(n, vec), static_cast<unsigned int>(entries));
}
}  // namespace

void launch_sgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum, bool nesterov,
                       float weight_decay, cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = is_aligned16(w) && is_aligned16(g) && is_aligned16(m);
  SKR_LAUNCH_VEC(sgd_kernel, vec, grid_for_elements(n, vec), stream, w, g, m, n, lr, momentum, nesterov,
                 weight_decay);
}

void launch_nmd_update(float* w, const float* g, float* m, std::size_t n, float lr, float beta, float weight_decay,
                       double* partials, double* norm_sq, cudaStream_t stream) {
  if (n == 0) return;
  const unsigned int blocks = reduce_blocks(n);
  SKR_LAUNCH(blocks, kThreads, 0, stream, nmd_momentum_kernel)(g, m, n, beta, partials);
  SKR_CUDA_CHECK_LAUNCH("nmd_momentum_kernel");
  launch_finalize_sum(partials, blocks, norm_sq, stream);
  const float decay = decay_factor(lr, weight_decay);
  const bool vec = is_aligned16(w) && is_aligned16(m);
  SKR_LAUNCH_VEC(nmd_step_kernel, vec, grid_for_elements(n, vec), stream, w, m, n, lr, decay, norm_sq);
}

void launch_adam_update(float* w, const float* g, float* m, float* v, std::size_t n, float step, float inv_sqrt_bc2,
                        float beta1, float beta2, float eps, float decay, float l2, cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = is_aligned16(w) && is_aligned16(g) && is_aligned16(m) && is_aligned16(v);
  SKR_LAUNCH_VEC(adam_kernel, vec, grid_for_elements(n, vec), stream, w, g, m, v, n, step, inv_sqrt_bc2, beta1, beta2,
                 eps, decay, l2);
}

void launch_adam_update_counted(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1,
                                float beta2, float eps, float decay, float l2, const uint32_t* counter,
                                int64_t t_offset, cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = is_aligned16(w) && is_aligned16(g) && is_aligned16(m) && is_aligned16(v);
  SKR_LAUNCH_VEC(adam_counted_kernel, vec, grid_for_elements(n, vec), stream, w, g, m, v, n, lr, beta1, beta2, eps,
                 decay, l2, counter, t_offset);
}

void launch_signgd_update(float* w, const float* g, float* m, std::size_t n, float lr, float momentum,
                          float weight_decay, cudaStream_t stream) {
  if (n == 0) return;
  const float decay = decay_factor(lr, weight_decay);
  const bool vec = is_aligned16(w) && is_aligned16(g) && is_aligned16(m);
  SKR_LAUNCH_VEC(signgd_kernel, vec, grid_for_elements(n, vec), stream, w, g, m, n, lr, momentum, decay);
}

void launch_momentum_accumulate(float* m, const float* g, float* out, std::size_t n, float beta, bool nesterov,
                                cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = is_aligned16(m) && is_aligned16(g) && is_aligned16(out);
  SKR_LAUNCH_VEC(momentum_kernel, vec, grid_for_elements(n, vec), stream, m, g, out, n, beta, nesterov);
}

// ---- run axis launchers: `entries` table entries (<= 65535), one launch each op. Every entry
// shares the strides, so aligned base pointers and strides that are multiples of 4 elements
// keep every entry's operands aligned (a null m's stride is never used).

void launch_sgd_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                            const RunUpdate* table, int entries, bool nesterov, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  const bool vec = is_aligned16(w) && is_aligned16(g) && is_aligned16(m) && keeps_vec4(ps) &&
                   (m == nullptr || keeps_vec4(ss));
  SKR_LAUNCH_VEC(sgd_runs_kernel, vec, runs_grid(n, vec, entries), stream, w, g, ps, m, ss, n, table, nesterov);
}

void launch_nmd_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                            const RunUpdate* table, int entries, double* workspace, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  const unsigned int blocks = reduce_blocks(n);
  double* norm_sq = workspace + static_cast<std::size_t>(blocks) * entries;
  const unsigned int y = static_cast<unsigned int>(entries);
  SKR_LAUNCH(dim3(blocks, y), kThreads, 0, stream, nmd_momentum_runs_kernel)(g, ps, m, ss, n, table, workspace);
  SKR_CUDA_CHECK_LAUNCH("nmd_momentum_runs_kernel");
  launch_finalize_sum_runs(workspace, blocks, norm_sq, entries, stream);
  const bool vec = is_aligned16(w) && is_aligned16(m) && keeps_vec4(ps) && keeps_vec4(ss);
  SKR_LAUNCH_VEC(nmd_step_runs_kernel, vec, runs_grid(n, vec, entries), stream, w, ps, m, ss, n, table, norm_sq);
}

std::size_t nmd_runs_workspace(std::size_t n, int entries) {
  return (static_cast<std::size_t>(reduce_blocks(n)) + 1) * static_cast<std::size_t>(entries);
}

void launch_adam_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ms, float* v,
                             std::size_t vs, std::size_t n, const RunUpdate* table, int entries, bool decoupled,
                             const uint32_t* counter, int64_t t_offset, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  const bool vec = is_aligned16(w) && is_aligned16(g) && is_aligned16(m) && is_aligned16(v) && keeps_vec4(ps) &&
                   keeps_vec4(ms) && keeps_vec4(vs);
  SKR_LAUNCH_VEC(adam_runs_kernel, vec, runs_grid(n, vec, entries), stream, w, g, ps, m, ms, v, vs, n, table,
                 decoupled, counter, t_offset);
}

void launch_signgd_update_runs(float* w, const float* g, std::size_t ps, float* m, std::size_t ss, std::size_t n,
                               const RunUpdate* table, int entries, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  const bool vec = is_aligned16(w) && is_aligned16(g) && is_aligned16(m) && keeps_vec4(ps) &&
                   (m == nullptr || keeps_vec4(ss));
  SKR_LAUNCH_VEC(signgd_runs_kernel, vec, runs_grid(n, vec, entries), stream, w, g, ps, m, ss, n, table);
}

void launch_momentum_accumulate_runs(float* m, std::size_t ss, const float* g, std::size_t ps, float* out,
                                     std::size_t xs, std::size_t n, const RunUpdate* table, int entries,
                                     bool nesterov, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  const bool vec = is_aligned16(m) && is_aligned16(g) && is_aligned16(out) && keeps_vec4(ss) && keeps_vec4(ps) &&
                   keeps_vec4(xs);
  SKR_LAUNCH_VEC(momentum_runs_kernel, vec, runs_grid(n, vec, entries), stream, m, ss, g, ps, out, xs, n, table,
                 nesterov);
}

void launch_muon_step_runs(float* w, std::size_t ps, const float* d, std::size_t xs, std::size_t n,
                           const RunUpdate* table, int entries, cudaStream_t stream) {
  if (n == 0 || entries <= 0) return;
  const bool vec = is_aligned16(w) && is_aligned16(d) && keeps_vec4(ps) && keeps_vec4(xs);
  SKR_LAUNCH_VEC(muon_step_runs_kernel, vec, runs_grid(n, vec, entries), stream, w, ps, d, xs, n, table);
}

#undef SKR_LAUNCH_VEC

}  // namespace skillrun::cuda
