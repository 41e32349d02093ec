// Linear associative memory (Wang, Li, Zhong, Lu, Wang, arXiv 2602.05725; docs/CONFIG.md,
// "assoc_memory"): N facts, query i (0-based here; the paper's i + 1) drawn with p_i
// proportional to (i+1)^-zipf_exponent, its answer f(i) in [0, M) fixed from the seed (the
// AssocAnswers stream), replaced by a uniform answer with probability label_noise. A batch is
// drawn on the backend (DrawKind::Assoc of backend/sparse_parity_gen.h): one-hot query rows
// (N floats), labels, and as "task id" the query's group (facts by frequency rank in n_groups
// contiguous equal groups). The eval set is exact: every fact once with its clean answer, so a
// group's loss is the mean over its facts with equal weight. The embeddings E, U are the
// model's (model/linear_memory.h).
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"
#include "tasks/task.h"

namespace skillrun {

// f(i) for every fact: uniform in [0, n_answers) from the AssocAnswers stream of `seed`.
std::vector<int32_t> draw_answers(uint64_t seed, int n_facts, int n_answers);
// Per group: the summed p_i of its facts.
std::vector<double> group_frequencies(const TaskConfig& config);

class AssocMemoryTask : public Task {
 public:
  AssocMemoryTask(Backend& backend, const TaskConfig& config, uint64_t seed);

  int n_tasks() const override { return config_.n_groups; }
  int input_dim() const override { return config_.n_facts; }
  int classes() const override { return config_.n_answers; }
  const std::vector<double>& frequencies() const override { return group_frequencies_; }
  const std::vector<double>& fact_frequencies() const { return fact_frequencies_; }
  const std::vector<int32_t>& answers() const { return answers_; }
  int facts_per_group() const { return config_.n_facts / config_.n_groups; }

  void train_batch(int64_t step, int rows, float* x, int32_t* labels, int32_t* tasks) const override;
  // Rows [first, first + rows) of group `task`'s facts (rows <= facts_per_group() - first).
  void eval_rows(int task, int first, int rows, float* x, int32_t* labels, int32_t* tasks) const override;

 private:
  ParityDraw base_draw() const;
  ParityTables tables() const;

  Backend& backend_;
  TaskConfig config_;
  uint64_t seed_;
  std::vector<double> fact_frequencies_, group_frequencies_;
  std::vector<int32_t> answers_;
  Buffer<int32_t> answers_device_;
  Buffer<uint32_t> thresholds_device_;
};

}  // namespace skillrun
