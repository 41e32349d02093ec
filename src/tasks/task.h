// A classification task the sparse-parity Trainer drives (train/trainer.h): batches drawn on the
// backend from (seed, step), a fixed eval set per loss stream ("subtask": a sparse-parity task,
// an assoc_memory frequency group), and the streams' frequencies. SparseParityTask and
// AssocMemoryTask; make_task picks by task.type.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "config/experiment.h"

namespace skillrun {

class Task {
 public:
  virtual ~Task() = default;
  // The loss streams (metrics.csv's loss_k columns).
  virtual int n_tasks() const = 0;
  // Floats per input row, and the classes of the logits.
  virtual int input_dim() const = 0;
  virtual int classes() const = 0;
  // Per stream: the probability that a training sample belongs to it.
  virtual const std::vector<double>& frequencies() const = 0;
  // The training batch of step `step`: a pure function of (seed, step).
  virtual void train_batch(int64_t step, int rows, float* x, int32_t* labels, int32_t* tasks) const = 0;
  // Rows [first, first + rows) of the held-out eval set of stream `task`.
  virtual void eval_rows(int task, int first, int rows, float* x, int32_t* labels, int32_t* tasks) const = 0;
};

// The task of `config` (sparse_parity or assoc_memory) for `seed`.
std::unique_ptr<Task> make_task(Backend& backend, const TaskConfig& config, uint64_t seed);

// The frequencies of a config's loss streams without building the task (analysis): the Zipf
// p_k of the sparse-parity tasks, the summed p_i of each assoc_memory group.
std::vector<double> stream_frequencies(const TaskConfig& config);

}  // namespace skillrun
