// sweep.json, the manifest in a sweep's output directory: which runs the sweep file expanded to
// (index, directory name, overrides), how it was invoked and with which build. Statuses are not
// in it: they live in each run directory, where the run process writes them.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sweep/sweep.h"

namespace skillrun {

// This process's command line, from /proc/self/cmdline (empty where there is none).
std::vector<std::string> own_command_line();

nlohmann::ordered_json sweep_manifest(const Sweep& sweep, const std::vector<std::string>& command_line);

// Writes out_dir/sweep.json atomically. Array tasks of one sweep start together and all write
// it, so writers take turns under an flock on out_dir/sweep.lock.
void write_manifest(const std::filesystem::path& out_dir, const nlohmann::ordered_json& manifest);

}  // namespace skillrun
