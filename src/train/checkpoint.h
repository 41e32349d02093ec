// Checkpoints for exact resume: everything the loop needs to continue as if never stopped
// (parameters, optimizer state, step counters, T_k so far, wall time). Data needs no state:
// the batch of step t is a pure function of (seed, t).
// File: checkpoint/ckpt-<step>.bin = magic, JSON header, raw float buffers, FNV-1a-64 checksum.
// Written atomically (temp, fsync, rename, dir fsync); the previous one is deleted only after.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace skillrun {

struct CheckpointState {
  int64_t step = 0;             // updates done
  int64_t optimizer_steps = 0;  // Optimizer::steps_taken (Adam's bias-correction t)
  double wall_seconds = 0;      // run time so far, so wall_s in metrics.csv continues
  std::vector<std::optional<int64_t>> T_k;
  std::vector<std::string> names;          // one per buffer, for error messages
  std::vector<std::vector<float>> buffers;  // parameters, then optimizer state, fixed order
};

// 64-bit FNV-1a of `bytes`: the checksum that detects torn or corrupted checkpoint files.
uint64_t fnv1a64(const std::string& bytes);

// Writes run_dir/checkpoint/ckpt-<step>.bin, then removes older checkpoints (keeping `keep`).
void write_checkpoint(const std::filesystem::path& run_dir, const CheckpointState& state, int keep = 2);

// The newest checkpoint that reads back whole (checksum, header, sizes); each one skipped is
// logged as a warning with the reason. Empty when there is none.
std::optional<CheckpointState> load_latest_checkpoint(const std::filesystem::path& run_dir);

// Parses one checkpoint file; throws RuntimeError with the reason when it is not valid.
CheckpointState read_checkpoint(const std::filesystem::path& file);

}  // namespace skillrun
