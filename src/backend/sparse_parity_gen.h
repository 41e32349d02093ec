// Multi-task sparse parity (and the facts of assoc_memory, DrawKind::Assoc), one sample at a
// time: host+device code shared by the CPU backend's loop and the CUDA kernel, so both produce
// the same bits from the same (seed, counter).
//
// Sample j of a draw: x = [u, v], u one-hot over n_tasks control bits, v in {0,1}^n_bits;
// y = XOR of v over S_task. Random words come from Philox blocks (stream, step_or_task, j, block):
// word 0 of block 0 picks the task (Zipf, integer thresholds), words 1.. give v's bits,
// bit b in word 1 + b/32 (block (1 + b/32) / 4, lane (1 + b/32) % 4), bit position b % 32.
#pragma once
#include <cstdint>

#include "core/hostdevice.h"
#include "core/philox.h"

namespace skillrun {

// Which task a draw samples: multi-task sparse parity, or the facts of a linear associative
// memory (tasks/assoc_memory.h): assoc_sample() below.
enum class DrawKind : int32_t { Parity = 0, Assoc = 1 };

// What to draw. Training batches: stream TrainBatch, step_or_task = step, fixed_task = -1 (Zipf).
// Eval sets: stream EvalSet, step_or_task = task, fixed_task = task.
struct ParityDraw {
  uint64_t seed = 0;
  RngStream stream = RngStream::TrainBatch;
  uint32_t step_or_task = 0;  // Philox counter word: the step (training batches), the task (eval sets)
  int32_t fixed_task = -1;    // -1: draw the task from the Zipf thresholds
  uint32_t first_sample = 0;  // sample index of the first row written
  int32_t n_tasks = 0;
  int32_t n_bits = 0;
  int32_t k = 0;
  // DrawKind::Assoc: n_tasks is the number of facts N (n_bits 0, k 0), the row the one-hot
  // query; the label is answers[query], or with probability noise_threshold / 2^32 a uniform
  // answer in [0, n_answers); the task id written is the query's group, query * n_groups / N.
  DrawKind kind = DrawKind::Parity;
  int32_t n_answers = 0;
  uint32_t noise_threshold = 0;
  int32_t n_groups = 1;
};

// Backend memory describing the task family (built once per run by tasks/sparse_parity.cpp).
struct ParityTables {
  const int32_t* subsets = nullptr;           // (n_tasks, k): S_i as indices into v
  const uint32_t* zipf_thresholds = nullptr;  // (n_tasks - 1): task = #thresholds <= u
  const int32_t* answers = nullptr;           // DrawKind::Assoc: (n_tasks) the answer f(i) of fact i
};

// Task for a uniform 32-bit word: the number of thresholds t_i with t_i <= u (thresholds
// ascending), i.e. P(task <= i) = t_i / 2^32. Binary search, integer only.
SKR_HD int32_t zipf_task(uint32_t u, const uint32_t* thresholds, int32_t n_tasks) {
  int32_t lo = 0, hi = n_tasks - 1;  // answer in [lo, hi]
  while (lo < hi) {
    const int32_t mid = (lo + hi) / 2;
    if (u < thresholds[mid]) hi = mid; else lo = mid + 1;
  }
  return lo;
}

// DrawKind::Assoc's sample `sample`: word 0 of block 0 picks the query (Zipf over the N facts;
// with fixed_task >= 0 the query is fixed_task + sample instead: an eval set, every fact once,
// labels clean), word 1 below noise_threshold replaces the answer by the uniform one of word 2
// (multiply-shift). Writes the one-hot row (N floats) and the label; returns the query's group.
SKR_HD int32_t assoc_sample(const ParityDraw& d, const ParityTables& t, uint32_t sample, float* x_row,
                            int32_t* label) {
  const Philox4x32 block = philox_draw(d.seed, d.stream, d.step_or_task, sample, 0);
  const int32_t query = d.fixed_task >= 0 ? d.fixed_task + static_cast<int32_t>(sample)
                                          : zipf_task(block.v[0], t.zipf_thresholds, d.n_tasks);
  for (int32_t i = 0; i < d.n_tasks; ++i) x_row[i] = (i == query) ? 1.0f : 0.0f;
  *label = block.v[1] < d.noise_threshold
               ? static_cast<int32_t>((static_cast<uint64_t>(block.v[2]) * static_cast<uint64_t>(d.n_answers)) >> 32)
               : t.answers[query];
  return static_cast<int32_t>(static_cast<uint64_t>(query) * static_cast<uint64_t>(d.n_groups) /
                              static_cast<uint64_t>(d.n_tasks));
}

// Writes row `x_row` (n_tasks + n_bits floats) and the label of sample `sample`; returns its task.
SKR_HD int32_t parity_sample(const ParityDraw& d, const ParityTables& t, uint32_t sample,
                             float* x_row, int32_t* label) {
  if (d.kind == DrawKind::Assoc) return assoc_sample(d, t, sample, x_row, label);
  Philox4x32 block = philox_draw(d.seed, d.stream, d.step_or_task, sample, 0);
  const int32_t task = d.fixed_task >= 0 ? d.fixed_task
                                         : zipf_task(block.v[0], t.zipf_thresholds, d.n_tasks);
  for (int32_t i = 0; i < d.n_tasks; ++i) x_row[i] = (i == task) ? 1.0f : 0.0f;
  float* v = x_row + d.n_tasks;
  // Word w >= 1 holds bits 32 (w - 1) .. 32 (w - 1) + 31 of v; a full word is expanded by a
  // fixed 32-trip loop (vectorised on the CPU), the last one bit by bit.
  const uint32_t n_words = 1u + (static_cast<uint32_t>(d.n_bits) + 31u) / 32u;
  for (uint32_t w = 1; w < n_words; ++w) {
    if (w % 4u == 0) block = philox_draw(d.seed, d.stream, d.step_or_task, sample, w / 4u);
    const uint32_t word = block.v[w % 4u];
    float* out = v + 32 * (w - 1);
    const int32_t bits = d.n_bits - 32 * static_cast<int32_t>(w - 1);
    if (bits >= 32) {
      for (uint32_t j = 0; j < 32; ++j) out[j] = static_cast<float>((word >> j) & 1u);
    } else {
      for (int32_t j = 0; j < bits; ++j) out[j] = static_cast<float>((word >> j) & 1u);
    }
  }
  uint32_t parity = 0;
  for (int32_t j = 0; j < d.k; ++j) parity ^= static_cast<uint32_t>(v[t.subsets[task * d.k + j]]);
  *label = static_cast<int32_t>(parity);
  return task;
}

// The same sample in packed form, for a kernel that draws rows first and writes them later
// (kernels/philox_data.cu): the bits of v 32 per word (bit b is bit b % 32 of words[b / 32];
// parity_word_count(n_bits) words, the last one's bits past n_bits unused), the label and the
// task. parity_value() then gives each entry of the row parity_sample() writes.
SKR_HD uint32_t parity_word_count(int32_t n_bits) { return (static_cast<uint32_t>(n_bits) + 31u) / 32u; }

SKR_HD int32_t parity_words(const ParityDraw& d, const ParityTables& t, uint32_t sample, uint32_t* words,
                            int32_t* label) {
  Philox4x32 block = philox_draw(d.seed, d.stream, d.step_or_task, sample, 0);
  const int32_t task = d.fixed_task >= 0 ? d.fixed_task
                                         : zipf_task(block.v[0], t.zipf_thresholds, d.n_tasks);
  const uint32_t n_words = 1u + parity_word_count(d.n_bits);
  for (uint32_t w = 1; w < n_words; ++w) {
    if (w % 4u == 0) block = philox_draw(d.seed, d.stream, d.step_or_task, sample, w / 4u);
    words[w - 1] = block.v[w % 4u];
  }
  uint32_t parity = 0;
  for (int32_t j = 0; j < d.k; ++j) {
    const auto b = static_cast<uint32_t>(t.subsets[task * d.k + j]);
    parity ^= (words[b / 32u] >> (b % 32u)) & 1u;
  }
  *label = static_cast<int32_t>(parity);
  return task;
}

// Entry `col` of the row (n_tasks one-hot entries, then the bits) of a sample given by
// parity_words: what parity_sample writes at x_row[col].
SKR_HD float parity_value(int32_t col, int32_t n_tasks, int32_t task, const uint32_t* words) {
  if (col < n_tasks) return col == task ? 1.0f : 0.0f;
  const auto b = static_cast<uint32_t>(col - n_tasks);
  return static_cast<float>((words[b / 32u] >> (b % 32u)) & 1u);
}

}  // namespace skillrun
