// Shared by all kernel files: the throwing CUDA error check used by every launcher, grid sizing
// for grid-stride loops, the float4 (16-byte) access helpers of the vectorised elementwise
// passes, and the warp/block sums the reductions are built from.
// Device code is compiled as C++17 and never logs: errors travel as exceptions to the host code.
#pragma once
#include "cuda_api.cuh"

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace skillrun::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  // A failed API call (not a launch) also leaves `err` as the thread's last error; if it stayed
  // there, the next SKR_CUDA_CHECK_LAUNCH would report it as that kernel's failure after the
  // caller caught this exception. Sticky errors (a faulted context) survive this, as they must.
  (void)cudaGetLastError();
  const std::string message = std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
                              ") in " + expr + " at " + file + ":" + std::to_string(line);
  // Out of memory gets its own opening words: it is the one error a user can act on directly.
  if (err == cudaErrorMemoryAllocation) throw ::skillrun::RuntimeError("out of device memory: " + message);
  throw ::skillrun::RuntimeError(message);
}

// Threads per block of every 1-D kernel: a multiple of the warp size (block_sum relies on it).
constexpr int kThreads = 256;
// Grid-stride loops need no more blocks than this to fill any current GPU (132 SMs x 2048
// threads / 256 = 1056 resident blocks on an H100); more blocks only add scheduling.
constexpr unsigned int kMaxBlocks = 4096;

// Blocks for n elements at `threads` per block, at least 1 and at most kMaxBlocks.
inline unsigned int grid_for(std::size_t n, int threads = kThreads) {
  const std::size_t blocks = (n + static_cast<std::size_t>(threads) - 1) / static_cast<std::size_t>(threads);
  if (blocks == 0) return 1;
  return blocks > kMaxBlocks ? kMaxBlocks : static_cast<unsigned int>(blocks);
}

// Host checks before a vectorised launch: float4 (16-byte) accesses need every base pointer
// 16-byte aligned (nullptr counts: it is never dereferenced) and, on a run axis, every stride
// between runs a multiple of 4 elements, so that each run's operands stay aligned.
inline bool is_aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16u == 0; }
inline bool keeps_vec4(std::size_t stride_elements) { return stride_elements % 4u == 0; }

// Blocks for a pass over n floats, 4 per thread-iteration when vec4 (the scalar tail of n % 4
// elements needs no block of its own: grid-stride loops cover it).
inline unsigned int grid_for_elements(std::size_t n, bool vec4) { return grid_for(vec4 ? (n + 3) / 4 : n); }

// Kernel launches: SKR_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...) is
// kernel<<<grid, block, shared_bytes, stream>>>(args...) (the kernel last, so that template
// arguments may hold commas); in a CPU emulation test it runs the kernel there. A kernel's dynamic
// shared memory is declared by SKR_DYNAMIC_SHARED(type, name).
#if defined(SKILLRUN_CUDA_EMULATION)
#define SKR_LAUNCH(grid, block, shared, stream, ...) \
  ((void)(stream), ::skillrun::emulation::launcher((grid), (block), (shared), __VA_ARGS__))
#define SKR_DYNAMIC_SHARED(type, name) type* name = ::skillrun::emulation::dynamic_shared<type>()
#else
#define SKR_LAUNCH(grid, block, shared, stream, ...) __VA_ARGS__<<<(grid), (block), (shared), (stream)>>>
#define SKR_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

#if defined(__CUDACC__) || defined(SKILLRUN_CUDA_EMULATION)
// First index of this thread and the grid-wide stride, in 64 bits: n may exceed 2^31.
__device__ __forceinline__ std::size_t global_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::size_t grid_stride() { return static_cast<std::size_t>(gridDim.x) * blockDim.x; }

// Four consecutive floats moved as one 16-byte access: p must be 16-byte aligned, q counts
// float4s (elements 4q .. 4q + 3). Lanes4 holds them as an array so that an element function
// runs on each lane in a fully unrolled loop (registers, no local memory).
struct Lanes4 {
  float v[4];
};
__device__ __forceinline__ Lanes4 load4(const float* p, std::size_t q) {
  const float4 t = reinterpret_cast<const float4*>(p)[q];
  return Lanes4{{t.x, t.y, t.z, t.w}};
}
__device__ __forceinline__ void store4(float* p, std::size_t q, const Lanes4& a) {
  reinterpret_cast<float4*>(p)[q] = make_float4(a.v[0], a.v[1], a.v[2], a.v[3]);
}

// The grid-stride loop of an elementwise pass over n elements. kVec: vec_body(q) for every
// float4 q < n / 4 (the caller's pointers 16-byte aligned), then scalar_body(i) for the n % 4
// tail elements; otherwise scalar_body(i) for every i < n. Each element is handled once, by one
// thread; callers write the same float expression in both bodies, so the path never changes
// the bits.
template <bool kVec, class VecBody, class ScalarBody>
__device__ __forceinline__ void for_each_element(std::size_t n, VecBody vec_body, ScalarBody scalar_body) {
  std::size_t done = 0;
  if constexpr (kVec) {
    const std::size_t n4 = n / 4;  // a shift
    for (std::size_t q = global_index(); q < n4; q += grid_stride()) vec_body(q);
    done = n4 * 4;
  }
  for (std::size_t i = done + global_index(); i < n; i += grid_stride()) scalar_body(i);
}

// y = alpha x + beta y over n elements (beta == 0 never reads y: it may hold NaN), 16 bytes at
// a time when kVec: axpby's loop, also Muon's step w = step_alpha d + step_beta w.
template <bool kVec>
__device__ __forceinline__ void axpby_elements(float* y, const float* x, std::size_t n, float alpha, float beta) {
  if (beta == 0.0f) {
    for_each_element<kVec>(
        n,
        [=](std::size_t q) {
          const Lanes4 xv = load4(x, q);
          Lanes4 yv;
#pragma unroll
          for (int k = 0; k < 4; ++k) yv.v[k] = alpha * xv.v[k];
          store4(y, q, yv);
        },
        [=](std::size_t i) { y[i] = alpha * x[i]; });
  } else {
    for_each_element<kVec>(
        n,
        [=](std::size_t q) {
          const Lanes4 xv = load4(x, q);
          Lanes4 yv = load4(y, q);
#pragma unroll
          for (int k = 0; k < 4; ++k) yv.v[k] = alpha * xv.v[k] + beta * yv.v[k];
          store4(y, q, yv);
        },
        [=](std::size_t i) { y[i] = alpha * x[i] + beta * y[i]; });
  }
}

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of v over the block, valid in thread 0 only. blockDim.x must be a multiple of 32 (at most
// 1024) and every thread of the block must call it; call it at most once per kernel.
// The summation order is fixed by the block shape, so results are reproducible run to run.
template <class T>
__device__ __forceinline__ T block_sum(T v) {
  __shared__ T warp_totals[32];
  const unsigned int lane = threadIdx.x % 32u, warp = threadIdx.x / 32u;
  v = warp_sum(v);
  if (lane == 0) warp_totals[warp] = v;
  __syncthreads();
  const unsigned int warps = blockDim.x / 32u;
  v = threadIdx.x < warps ? warp_totals[threadIdx.x] : T(0);
  if (warp == 0) v = warp_sum(v);
  return v;
}
#endif

}  // namespace skillrun::cuda

#define SKR_CUDA_CHECK(expr)                                                                             \
  do {                                                                                                   \
    const cudaError_t skr_err_ = (expr);                                                                 \
    if (skr_err_ != cudaSuccess) ::skillrun::cuda::throw_cuda_error(skr_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a launch: a bad configuration (grid, shared memory) or a missing kernel image for this
// GPU shows up here, named by the kernel.
#define SKR_CUDA_CHECK_LAUNCH(kernel_name)                                                                   \
  do {                                                                                                       \
    const cudaError_t skr_err_ = cudaGetLastError();                                                         \
    if (skr_err_ != cudaSuccess) ::skillrun::cuda::throw_cuda_error(skr_err_, "launch of " kernel_name, __FILE__, \
                                                                    __LINE__);                               \
  } while (0)
