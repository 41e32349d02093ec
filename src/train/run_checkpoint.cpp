#include "train/run_checkpoint.h"

#include <string>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "io/run_dir.h"

namespace skillrun {

namespace {
// Every buffer a checkpoint carries, in a fixed order: parameters, then optimizer state.
std::vector<std::pair<std::string, Buffer<float>*>> checkpoint_buffers(std::vector<Parameter>& params,
                                                                       Optimizer& optimizer) {
  std::vector<std::pair<std::string, Buffer<float>*>> all;
  for (Parameter& p : params) all.emplace_back(p.name, &p.value);
  const auto state = optimizer.state();
  for (std::size_t i = 0; i < state.size(); ++i) all.emplace_back("optimizer.state." + std::to_string(i), state[i]);
  return all;
}
}  // namespace

void save_run_buffers(CheckpointState& state, std::vector<Parameter>& params, Optimizer& optimizer) {
  state.optimizer_steps = optimizer.steps_taken();
  for (auto& [name, buffer] : checkpoint_buffers(params, optimizer)) {
    state.names.push_back(name);
    state.buffers.push_back(buffer->download());
  }
}

void restore_run_buffers(const CheckpointState& s, std::vector<Parameter>& params, Optimizer& optimizer, int n_tasks) {
  const auto buffers = checkpoint_buffers(params, optimizer);
  if (s.buffers.size() != buffers.size() || s.T_k.size() != static_cast<std::size_t>(n_tasks))
    throw RuntimeError(fmt::format("checkpoint at step {} holds {} buffers, this run needs {}", s.step,
                                   s.buffers.size(), buffers.size()));
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    if (s.names[i] != buffers[i].first || s.buffers[i].size() != buffers[i].second->size())
      throw RuntimeError(fmt::format("checkpoint buffer {} ({} values) does not fit {} ({} values)", s.names[i],
                                     s.buffers[i].size(), buffers[i].first, buffers[i].second->size()));
    buffers[i].second->upload(s.buffers[i]);
  }
  optimizer.set_steps_taken(s.optimizer_steps);
}

std::optional<CheckpointState> checkpoint_to_resume(const std::filesystem::path& run_dir,
                                                    const ExperimentConfig& config) {
  const std::optional<int64_t> last_row = last_whole_metrics_step(run_dir, /*warn=*/true);
  // Eval rows fall on multiples of eval.every (checkpoints never at max_steps, which ends the
  // run): from a checkpoint at step s the run writes the rows after s again, so the rows up to
  // s must be there, i.e. s < last_row + every.
  const int64_t usable_through = last_row ? *last_row + config.eval.every - 1 : -1;
  const bool has_checkpoints = has_checkpoint_files(run_dir);
  if (!last_row && has_checkpoints)
    spdlog::warn(
        "{}: metrics.csv is missing or holds no whole row, so no checkpoint can continue it without losing "
        "rows; the run starts over from step 0",
        run_dir.string());
  std::optional<CheckpointState> checkpoint =
      load_latest_checkpoint(run_dir, checkpoint_identity(to_json(config)), usable_through);
  if (!checkpoint && (last_row || has_checkpoints))
    spdlog::warn("no usable checkpoint in {}; starting the run over from step 0", run_dir.string());
  return checkpoint;
}

}  // namespace skillrun
