// Runs CUDA kernels on the CPU, for tests on machines without a GPU. A test defines
// SKILLRUN_CUDA_EMULATION and includes a kernel file (kernels/*.cu), which then takes this header
// instead of <cuda_runtime.h> (kernels/cuda_api.cuh): the CUDA names the kernels use become host
// code, and a launch (SKR_LAUNCH, kernels/common.cuh) runs every block in turn (in a shuffled
// order), each as one fiber (ucontext) per thread, switched round-robin at every __syncthreads()
// (and, within a warp, at every __shfl_down_sync), in ascending thread order in half the blocks
// and descending in the others. One OS thread runs them all, so atomics and fences are plain
// operations and the schedule is deterministic.
//
// What it checks: index arithmetic, shared-memory staging, barriers (one reached by some threads
// of a block after others returned is an error, as is a warp exchange some lanes never reach; a
// missing one shows in one of the two thread orders), launch limits, an order between blocks that
// a kernel must not assume,
// what is written where, and the bits of the arithmetic (fused multiply-adds are std::fma, as on
// the device; the kernels otherwise compile with --fmad=false, the host with no contraction
// across these explicit operations). What it cannot: timing, races that the round-robin order
// happens not to expose (compute-sanitizer's racecheck on a GPU), the memory model between
// blocks (they run one after another), device math functions (expf, logf) to the bit.
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <stdexcept>
#include <vector>

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// The runtime API the kernel files' error checks use: nothing fails here.
struct CUstream_st;
using cudaStream_t = CUstream_st*;
enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorName(cudaError_t) { return "cudaEmulated"; }
inline const char* cudaGetErrorString(cudaError_t) { return "emulated CUDA"; }
inline cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t = nullptr) {
  std::memset(p, value, bytes);
  return cudaSuccess;
}

namespace skillrun::emulation {

inline dim3 thread_idx, block_idx, grid_dim, block_dim;

class Block {
 public:
  static constexpr std::size_t kStackBytes = 256 * 1024;

  // Runs body() once per thread of a block of `threads`, as fibers, switched in ascending
  // thread order or, with `reverse`, descending (so that a missing barrier shows: a thread that
  // reads what another writes before the barrier finds it unwritten in one of the two orders).
  void run(unsigned int threads, bool reverse, const std::function<void()>& body) {
    body_ = &body;
    threads_ = threads;
    if (fibers_.size() < threads) {
      fibers_.resize(threads);
      stacks_.resize(threads);
      for (auto& s : stacks_)
        if (!s) s = std::make_unique<char[]>(kStackBytes);
    }
    state_.assign(threads, kReady);
    for (unsigned int t = 0; t < threads; ++t) {
      if (getcontext(&fibers_[t]) != 0) throw std::runtime_error("emulation: getcontext failed");
      fibers_[t].uc_stack.ss_sp = stacks_[t].get();
      fibers_[t].uc_stack.ss_size = kStackBytes;
      fibers_[t].uc_link = &scheduler_;
      makecontext(&fibers_[t], &Block::trampoline, 0);
    }
    for (;;) {
      bool ran = false;
      for (unsigned int i = 0; i < threads; ++i) {
        const unsigned int t = reverse ? threads - 1 - i : i;
        if (state_[t] != kReady) continue;
        ran = true;
        current_ = t;
        thread_idx = dim3(t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y));
        if (swapcontext(&scheduler_, &fibers_[t]) != 0) throw std::runtime_error("emulation: swapcontext failed");
      }
      if (ran) continue;
      if (std::all_of(state_.begin(), state_.end(), [](int s) { return s == kDone; })) break;
      release();
    }
  }

  void syncthreads() { wait(kAtBarrier); }
  void warp_barrier() { wait(kAtWarpBarrier); }
  unsigned int current() const { return current_; }
  unsigned int threads() const { return threads_; }

  static Block& instance() {
    static Block block;
    return block;
  }

 private:
  enum { kReady = 0, kAtBarrier = 1, kAtWarpBarrier = 2, kDone = 3 };

  void wait(int state) {
    state_[current_] = state;
    if (swapcontext(&fibers_[current_], &scheduler_) != 0) throw std::runtime_error("emulation: swapcontext failed");
  }

  // No thread can run: release a warp whose lanes all wait at a warp exchange (every lane takes
  // part: the kernels exchange with full masks, and a lane that has returned would leave its
  // partners reading nothing), else the block barrier if every live thread waits there.
  void release() {
    bool released = false;
    for (unsigned int w = 0; w * 32 < threads_; ++w) {
      const unsigned int end = std::min(threads_, (w + 1) * 32);
      bool any_waiting = false, all_waiting = true, any_done = false;
      for (unsigned int t = w * 32; t < end; ++t) {
        any_waiting |= state_[t] == kAtWarpBarrier;
        all_waiting &= state_[t] == kAtWarpBarrier;
        any_done |= state_[t] == kDone;
      }
      if (any_waiting && any_done)
        throw std::logic_error("emulation: a warp exchange after some lanes of the warp returned");
      if (!all_waiting) continue;
      for (unsigned int t = w * 32; t < end; ++t)
        if (state_[t] == kAtWarpBarrier) state_[t] = kReady;
      released = true;
    }
    if (released) return;
    bool done = false, at_barrier = false, at_warp = false;
    for (int s : state_) {
      done |= s == kDone;
      at_barrier |= s == kAtBarrier;
      at_warp |= s == kAtWarpBarrier;
    }
    if (at_warp) throw std::logic_error("emulation: a warp exchange that some lanes of the warp never reach");
    if (done && at_barrier)
      throw std::logic_error("emulation: __syncthreads() reached after some threads of the block returned");
    for (int& s : state_)
      if (s == kAtBarrier) s = kReady;
  }

  static void trampoline() {
    Block& b = instance();
    (*b.body_)();
    b.state_[b.current_] = kDone;  // returns to uc_link: the scheduler
  }
  const std::function<void()>* body_ = nullptr;
  ucontext_t scheduler_{};
  std::vector<ucontext_t> fibers_;
  std::vector<std::unique_ptr<char[]>> stacks_;
  std::vector<int> state_;
  unsigned int current_ = 0, threads_ = 0;
};

// The dynamic shared memory of the running launch.
inline std::vector<std::max_align_t> dynamic_shared_memory;
template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(dynamic_shared_memory.data());
}

// A launch: the configuration checked against the limits of sm_90 that a GPU would refuse
// (cudaErrorInvalidConfiguration there, std::logic_error here), then every block, in a shuffled
// order (the same one every time: a fixed seed), threads ascending in even-numbered blocks of that
// order and descending in odd ones, dynamic shared memory filled with NaN bytes before each block.
inline void launch(dim3 grid, dim3 block, std::size_t shared_bytes, const std::function<void()>& kernel) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0 || threads > 1024 || block.z > 64 ||
      grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u || shared_bytes > 48 * 1024)
    throw std::logic_error("emulation: a launch configuration a GPU refuses (grid " + std::to_string(grid.x) + "x" +
                           std::to_string(grid.y) + "x" + std::to_string(grid.z) + ", block " +
                           std::to_string(threads) + " threads, " + std::to_string(shared_bytes) +
                           " bytes of dynamic shared memory)");
  grid_dim = grid;
  block_dim = block;
  std::vector<dim3> order;
  order.reserve(1ull * grid.x * grid.y * grid.z);
  for (unsigned int z = 0; z < grid.z; ++z)
    for (unsigned int y = 0; y < grid.y; ++y)
      for (unsigned int x = 0; x < grid.x; ++x) order.emplace_back(x, y, z);
  std::mt19937 rng(12345);
  std::shuffle(order.begin(), order.end(), rng);
  const std::size_t words = (shared_bytes + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
  for (std::size_t b = 0; b < order.size(); ++b) {
    dynamic_shared_memory.assign(words, {});
    if (words > 0) std::memset(dynamic_shared_memory.data(), 0xFF, words * sizeof(std::max_align_t));
    block_idx = order[b];
    Block::instance().run(static_cast<unsigned int>(threads), b % 2 == 1, kernel);
  }
}

// What SKR_LAUNCH(grid, block, shared, stream, kernel)(args...) becomes here.
template <class Kernel>
auto launcher(dim3 grid, dim3 block, std::size_t shared_bytes, Kernel* kernel) {
  return [=](auto... args) { launch(grid, block, shared_bytes, [&] { kernel(args...); }); };
}

}  // namespace skillrun::emulation

#define threadIdx ::skillrun::emulation::thread_idx
#define blockIdx ::skillrun::emulation::block_idx
#define gridDim ::skillrun::emulation::grid_dim
#define blockDim ::skillrun::emulation::block_dim
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
// One block runs at a time, so a static is one block's shared memory. (Statics start at zero and
// keep the previous block's values; on a GPU shared memory starts as garbage: a read before a
// write is not caught here, initcheck on a GPU catches it.)
#define __shared__ static

inline void __syncthreads() { ::skillrun::emulation::Block::instance().syncthreads(); }
inline void __threadfence() {}
template <class T>
T __ldcg(const T* p) {
  return *p;
}
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p += v;
  return old;
}
inline int atomicMin(int* p, int v) {
  const int old = *p;
  *p = v < old ? v : old;
  return old;
}
inline int atomicMax(int* p, int v) {
  const int old = *p;
  *p = v > old ? v : old;
  return old;
}
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
template <class T>
T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
T max(T a, T b) {
  return a < b ? b : a;
}
// The value of lane + delta of this warp (this lane's own past the warp's end); every live lane
// of the warp must take part, as the mask says on a GPU.
template <class T>
T __shfl_down_sync(unsigned int /*mask*/, T v, unsigned int delta) {
  auto& block = ::skillrun::emulation::Block::instance();
  static std::vector<T> lanes;
  if (lanes.size() < block.threads()) lanes.resize(block.threads());
  const unsigned int t = block.current();
  lanes[t] = v;
  block.warp_barrier();
  const unsigned int lane = t % 32;
  const T r = lane + delta < 32 && t + delta < block.threads() ? lanes[t + delta] : v;
  block.warp_barrier();
  return r;
}
