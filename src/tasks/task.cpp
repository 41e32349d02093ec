#include "tasks/task.h"

#include "core/error.h"
#include "tasks/assoc_memory.h"
#include "tasks/sparse_parity.h"

namespace skillrun {

std::unique_ptr<Task> make_task(Backend& backend, const TaskConfig& config, uint64_t seed) {
  if (config.type == TaskType::AssocMemory) return std::make_unique<AssocMemoryTask>(backend, config, seed);
  if (config.type == TaskType::SparseParity) return std::make_unique<SparseParityTask>(backend, config, seed);
  throw RuntimeError("make_task: icl_linreg is not a task of the sparse-parity trainer");
}

std::vector<double> stream_frequencies(const TaskConfig& config) {
  if (config.type == TaskType::AssocMemory) return group_frequencies(config);
  return zipf_probabilities(config.n_tasks, config.zipf_exponent);
}

}  // namespace skillrun
