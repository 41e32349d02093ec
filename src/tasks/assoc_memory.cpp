// Host side of assoc_memory: Zipf table over the facts, the answers, the draw descriptors the
// backend expands into batches (backend/sparse_parity_gen.h, assoc_sample).
#include "tasks/assoc_memory.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/philox.h"
#include "tasks/sparse_parity.h"  // zipf_probabilities, zipf_thresholds

namespace skillrun {

std::vector<int32_t> draw_answers(uint64_t seed, int n_facts, int n_answers) {
  std::vector<int32_t> answers;
  answers.reserve(static_cast<std::size_t>(n_facts));
  for (int i = 0; i < n_facts; ++i) {
    const uint32_t word = philox_draw(seed, RngStream::AssocAnswers, static_cast<uint32_t>(i), 0, 0).v[0];
    answers.push_back(static_cast<int32_t>((static_cast<uint64_t>(word) * static_cast<uint64_t>(n_answers)) >> 32));
  }
  return answers;
}

std::vector<double> group_frequencies(const TaskConfig& config) {
  const std::vector<double> p = zipf_probabilities(config.n_facts, config.zipf_exponent);
  const int per_group = config.n_facts / config.n_groups;
  std::vector<double> groups(static_cast<std::size_t>(config.n_groups), 0.0);
  for (int i = 0; i < config.n_facts; ++i) groups[static_cast<std::size_t>(i / per_group)] += p[i];
  return groups;
}

AssocMemoryTask::AssocMemoryTask(Backend& backend, const TaskConfig& config, uint64_t seed)
    : backend_(backend),
      config_(config),
      seed_(seed),
      fact_frequencies_(zipf_probabilities(config.n_facts, config.zipf_exponent)),
      group_frequencies_(group_frequencies(config)),
      answers_(draw_answers(seed, config.n_facts, config.n_answers)),
      answers_device_(backend, answers_.size()),
      thresholds_device_(backend, static_cast<std::size_t>(std::max(config.n_facts - 1, 1))) {
  if (config.n_groups < 1 || config.n_facts % config.n_groups != 0)
    throw std::invalid_argument("AssocMemoryTask: n_groups must divide n_facts");
  answers_device_.upload(answers_);
  std::vector<uint32_t> thresholds = zipf_thresholds(fact_frequencies_);
  thresholds.resize(thresholds_device_.size(), std::numeric_limits<uint32_t>::max());
  thresholds_device_.upload(thresholds);
}

ParityDraw AssocMemoryTask::base_draw() const {
  ParityDraw d;
  d.kind = DrawKind::Assoc;
  d.seed = seed_;
  d.n_tasks = config_.n_facts;
  d.n_bits = 0;
  d.k = 0;
  d.n_answers = config_.n_answers;
  d.n_groups = config_.n_groups;
  return d;
}

ParityTables AssocMemoryTask::tables() const {
  ParityTables t;
  t.zipf_thresholds = thresholds_device_.data();
  t.answers = answers_device_.data();
  return t;
}

void AssocMemoryTask::train_batch(int64_t step, int rows, float* x, int32_t* labels, int32_t* tasks) const {
  ParityDraw d = base_draw();
  d.stream = RngStream::TrainBatch;
  d.step_or_task = static_cast<uint32_t>(step);  // config validation keeps max_steps < 2^32
  // P(word < threshold) = threshold / 2^32 = label_noise (to 2^-32; label_noise < 1).
  d.noise_threshold = static_cast<uint32_t>(std::min(std::round(config_.label_noise * 4294967296.0), 4294967295.0));
  backend_.sparse_parity(d, tables(), rows, x, labels, tasks);
}

void AssocMemoryTask::eval_rows(int task, int first, int rows, float* x, int32_t* labels, int32_t* tasks) const {
  if (first < 0 || rows < 0 || first + rows > facts_per_group())
    throw std::out_of_range("AssocMemoryTask::eval_rows: rows outside the group's facts");
  ParityDraw d = base_draw();
  d.stream = RngStream::EvalSet;
  d.step_or_task = static_cast<uint32_t>(task);
  d.fixed_task = task * facts_per_group();  // the group's first fact; row j is fact fixed_task + first + j
  d.first_sample = static_cast<uint32_t>(first);
  backend_.sparse_parity(d, tables(), rows, x, labels, tasks);
}

}  // namespace skillrun
