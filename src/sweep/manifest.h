// sweep.json, the manifest in a sweep's output directory: which runs the sweep file expanded to
// (index, directory name, overrides), how it was invoked and with which build. Statuses are not
// in it: they live in each run directory, where the run process writes them.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/file_lock.h"
#include "sweep/sweep.h"

namespace skillrun {

// This process's command line, from /proc/self/cmdline (empty where there is none).
std::vector<std::string> own_command_line();

nlohmann::ordered_json sweep_manifest(const Sweep& sweep, const std::vector<std::string>& command_line);

// Writes out_dir/sweep.json atomically. Array tasks of one sweep start together and all write
// it, so writers take turns under an flock on out_dir/sweep.json.lock.
void write_manifest(const std::filesystem::path& out_dir, const nlohmann::ordered_json& manifest);

// Refuses (UsageError, before anything is written) an output directory that is not empty and
// holds no sweep, as `run --out` refuses a directory that holds no run: one whose sweep.json is
// no sweep's manifest (a user's sweep file), or that holds anything but a manifest, what a sweep
// writes (sweep.lock, multirun.json, packs/) and directories of runs (those that hold a run,
// and those named as `sweep`'s runs).
void check_sweep_directory(const std::filesystem::path& out_dir, const Sweep& sweep);

// The lock a sweep holds on out_dir/sweep.lock while it runs (taken before it writes sweep.json):
// exclusive for a whole sweep, shared for a Slurm array task (`whole` false: --index), so that
// the tasks of one array run together but no two whole sweeps, nor a whole sweep beside the
// tasks, write one output directory. Throws UsageError naming the holder (its pid) when another
// process holds it. `note` says who holds it.
FileLock lock_sweep_directory(const std::filesystem::path& out_dir, bool whole, const std::string& note);

}  // namespace skillrun
