// Pieces shared by the subcommands: loading the config with --set and --device applied.
#pragma once
#include <cstddef>
#include <string>

#include "backend/backend.h"
#include "cli/commands.h"
#include "config/experiment.h"

namespace skillrun {

// Reads CONFIG, applies --set overrides then --device, validates.
ExperimentConfig load_config(const CommonOptions& options);

// The memory a pack may use, for the sweep's `--pack auto` plan and a pack process:
// SKILLRUN_PACK_MEMORY_MB when set (a share of a GPU others use too; UsageError when it is no
// positive number), else 90% of the GPU's (gpu, when one is usable; the CUDA context and
// cuBLAS workspaces take the rest), else 80% of physical memory.
std::size_t pack_memory_budget(bool gpu);

// Open files a pack process holds per run (its run.lock, run.log and metrics.csv), and those it
// keeps for itself (standard streams, libraries, the CUDA driver, a checkpoint being written).
constexpr std::size_t kFilesPerPackedRun = 3;
constexpr std::size_t kFilesReserved = 64;
// Raises the soft limit on open files to the hard one (children inherit it); the limit now.
std::size_t raise_open_file_limit();
// Throws RuntimeError when a pack of `runs` runs would need more open files than this process
// may have even after raise_open_file_limit(), saying the largest pack that fits. `what`: how the
// user chose that pack ("--pack 400", "this pack").
void check_open_file_limit(std::size_t runs, const std::string& what = "this pack");

}  // namespace skillrun
