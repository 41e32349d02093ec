// A sparse-parity run's checkpoint (train/checkpoint.h is the file format): what it holds of the
// run (its parameters, then its optimizer's state buffers, in a fixed order, and the optimizer's
// step count) and which of a run directory's checkpoints a resume continues from.
#pragma once
#include <filesystem>
#include <optional>
#include <vector>

#include "config/experiment.h"
#include "model/mlp.h"
#include "optim/optimizer.h"
#include "train/checkpoint.h"

namespace skillrun {

// Fills state.names, state.buffers (downloaded) and state.optimizer_steps from one run's
// parameters and optimizer.
void save_run_buffers(CheckpointState& state, std::vector<Parameter>& params, Optimizer& optimizer);
// Uploads them back and sets the optimizer's step count; throws RuntimeError (naming the step
// and the buffer) when they do not fit these parameters and optimizer, or T_k is not n_tasks long.
void restore_run_buffers(const CheckpointState& state, std::vector<Parameter>& params, Optimizer& optimizer,
                         int n_tasks);

// The checkpoint of `config`'s run in run_dir to resume from: the newest of this run
// (checkpoint_identity) from which no metrics row would be lost, i.e. whose step metrics.csv
// covers with its whole rows (a malformed row or a deleted file makes older checkpoints, or
// step 0, the start). Empty: start from step 0 (warned when the directory held checkpoints or
// rows).
std::optional<CheckpointState> checkpoint_to_resume(const std::filesystem::path& run_dir,
                                                    const ExperimentConfig& config);

}  // namespace skillrun
