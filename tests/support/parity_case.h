// The sparse-parity case the data tests share (conformance and the CPU emulation of the kernel):
// 5 subtasks of 3 bits out of 100 (three full words and a 4-bit tail), Zipf-like thresholds,
// and a training draw (Zipf tasks) or an eval draw (one fixed task).
#pragma once
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "backend/sparse_parity_gen.h"

namespace skillrun::testing {

// A draw of `seed`: fixed_task < 0 a training draw (step 7), else the eval draw of that task,
// from sample `first_sample` on.
inline ParityDraw parity_draw(uint64_t seed, int32_t fixed_task, uint32_t first_sample, int n_tasks, int n_bits,
                              int k) {
  ParityDraw d;
  d.seed = seed;
  d.stream = fixed_task < 0 ? RngStream::TrainBatch : RngStream::EvalSet;
  d.step_or_task = fixed_task < 0 ? 7u : static_cast<uint32_t>(fixed_task);
  d.fixed_task = fixed_task;
  d.first_sample = first_sample;
  d.n_tasks = n_tasks;
  d.n_bits = n_bits;
  d.k = k;
  return d;
}

struct ParityCase {
  static constexpr int kTasks = 5, kBits = 100, kSubsetSize = 3;
  std::vector<int32_t> subsets;
  std::vector<uint32_t> thresholds = {0x60000000u, 0xA0000000u, 0xD0000000u, 0xF0000000u};

  ParityCase() {
    std::mt19937 rng(70);
    for (int t = 0; t < kTasks; ++t) {
      std::set<int32_t> s;
      while (static_cast<int>(s.size()) < kSubsetSize) s.insert(static_cast<int32_t>(rng() % kBits));
      subsets.insert(subsets.end(), s.begin(), s.end());
    }
  }

  // fixed_task < 0: a training draw (step 7); else the eval draw of that task.
  static ParityDraw draw(int32_t fixed_task) {
    return parity_draw(0x123456789ABCDEFull, fixed_task, 3, kTasks, kBits, kSubsetSize);
  }
};

}  // namespace skillrun::testing
