// Runs CUDA kernels on the CPU, for tests on machines without a GPU: the few CUDA names a kernel
// file uses become host code, and a launch runs every block in turn, each as one fiber
// (ucontext) per thread, switched round-robin at every __syncthreads(). One OS thread runs them
// all, so atomics and fences are plain operations and the schedule is deterministic. A kernel
// file opts in with `#if defined(SKILLRUN_CUDA_EMULATION)` around its includes and launchers
// (kernels/newton_schulz.cu).
//
// What it checks: the index arithmetic, shared-memory staging, barriers (a barrier reached by
// some threads while others have finished is reported), bounds and the bits of the arithmetic
// (fused multiply-adds are std::fma, as on the device). What it cannot: timing, races that the
// round-robin order happens not to expose (compute-sanitizer's racecheck on a GPU does that),
// the memory model between blocks (blocks run one after another).
#pragma once
#include <ucontext.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
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

namespace skillrun::emulation {

inline dim3 thread_idx, block_idx, grid_dim, block_dim;

class Block {
 public:
  static constexpr std::size_t kStackBytes = 256 * 1024;

  // Runs body() once per thread of a block of `threads`, as fibers.
  void run(unsigned int threads, const std::function<void()>& body) {
    body_ = &body;
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
      bool any_ready = false;
      for (unsigned int t = 0; t < threads; ++t) {
        if (state_[t] != kReady) continue;
        any_ready = true;
        current_ = t;
        thread_idx = dim3(t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y));
        if (swapcontext(&scheduler_, &fibers_[t]) != 0) throw std::runtime_error("emulation: swapcontext failed");
      }
      if (!any_ready) break;
      // Every thread has reached the barrier or finished: release the barrier.
      bool at_barrier = false, finished = false;
      for (int s : state_) {
        at_barrier |= s == kAtBarrier;
        finished |= s == kDone;
      }
      if (at_barrier && finished)
        throw std::logic_error("emulation: __syncthreads() reached after some threads of the block returned");
      for (int& s : state_)
        if (s == kAtBarrier) s = kReady;
    }
  }

  void syncthreads() {
    state_[current_] = kAtBarrier;
    if (swapcontext(&fibers_[current_], &scheduler_) != 0) throw std::runtime_error("emulation: swapcontext failed");
  }

  static Block& instance() {
    static Block block;
    return block;
  }

 private:
  enum { kReady = 0, kAtBarrier = 1, kDone = 2 };
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
  unsigned int current_ = 0;
};

// kernel<<<grid, block>>>(args...) as launch(grid, block, [&] { kernel(args...); }).
inline void launch(dim3 grid, dim3 block, const std::function<void()>& kernel) {
  grid_dim = grid;
  block_dim = block;
  const unsigned int threads = block.x * block.y * block.z;
  for (unsigned int z = 0; z < grid.z; ++z)
    for (unsigned int y = 0; y < grid.y; ++y)
      for (unsigned int x = 0; x < grid.x; ++x) {
        block_idx = dim3(x, y, z);
        Block::instance().run(threads, kernel);
      }
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
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
