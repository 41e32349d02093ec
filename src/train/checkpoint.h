// Checkpoints for exact resume: everything the loop needs to continue as if never stopped
// (parameters, optimizer state, step counters, T_k so far, wall time). Data needs no state:
// the batch of step t is a pure function of (seed, t).
// File: checkpoint/ckpt-<step>.bin = magic, JSON header, raw float buffers, FNV-1a-64 checksum.
// Written atomically (temp, fsync, rename, dir fsync); the previous one is deleted only after.
#pragma once
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace skillrun {

struct CheckpointState {
  nlohmann::json run_config;    // checkpoint_identity of the run that wrote it; null in old files
  int64_t step = 0;             // updates done
  int64_t optimizer_steps = 0;  // Optimizer::steps_taken (Adam's bias-correction t)
  double wall_seconds = 0;      // run time so far, so wall_s in metrics.csv continues
  std::vector<std::optional<int64_t>> T_k;
  std::vector<std::string> names;          // one per buffer, for error messages
  std::vector<std::vector<float>> buffers;  // parameters, then optimizer state, fixed order
};

// 64-bit FNV-1a of `bytes`: the checksum that detects torn or corrupted checkpoint files.
uint64_t fnv1a64(const std::string& bytes);

// What names the run a checkpoint belongs to: its resolved config without the settings that
// say only when to checkpoint (train.checkpoint_every, train.checkpoint_seconds), so that a
// checkpoint copied from another run (another seed, say) is told apart.
nlohmann::json checkpoint_identity(const nlohmann::json& resolved_config);

// Writes run_dir/checkpoint/ckpt-<step>.bin (creating checkpoint/, never run_dir: a run directory
// deleted meanwhile stays deleted), then removes the older ones beyond the newest `keep` and any
// file that claims a later step (left by another run, or junk: this run, which writes steps in
// order, cannot have written it).
void write_checkpoint(const std::filesystem::path& run_dir, const CheckpointState& state, int keep = 2);

// The newest checkpoint of the run with this checkpoint_identity at a step <= max_step that
// reads back whole (checksum, header, sizes); each one skipped is logged as a warning with the
// reason (corrupted, another run's, past max_step). The identity stored in a file is resolved
// again by this build before it is compared, so keys added with defaults since it was written
// compare equal (as config.json does); a file without one (written before identities) is
// accepted. Empty when there is none.
std::optional<CheckpointState> load_latest_checkpoint(const std::filesystem::path& run_dir,
                                                      const nlohmann::json& identity,
                                                      int64_t max_step = std::numeric_limits<int64_t>::max());

// Whether run_dir/checkpoint holds any checkpoint file, valid or not.
bool has_checkpoint_files(const std::filesystem::path& run_dir);

// Parses one checkpoint file; throws RuntimeError with the reason when it is not valid.
CheckpointState read_checkpoint(const std::filesystem::path& file);

}  // namespace skillrun
