// Pieces shared by the subcommands: loading the config with --set and --device applied.
#pragma once
#include <string>

#include "backend/backend.h"
#include "cli/commands.h"
#include "config/experiment.h"

namespace skillrun {

// Reads CONFIG, applies --set overrides then --device, validates.
ExperimentConfig load_config(const CommonOptions& options);
// "auto" | "cpu" | "cuda" (already validated by the config parser).
DeviceChoice parse_device(const std::string& name);

}  // namespace skillrun
