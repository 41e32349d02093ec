// --device is applied as one more override so it is validated like the config key.
#include "cli/common.h"

#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>

#include "core/error.h"
#include "core/strings.h"

namespace skillrun {

ExperimentConfig load_config(const CommonOptions& options) {
  std::vector<std::string> overrides = options.overrides;
  if (!options.device.empty()) overrides.push_back("device=" + options.device);
  return load_experiment(options.config_path, overrides);
}

DeviceChoice parse_device(const std::string& name) {
  if (name == "cpu") return DeviceChoice::Cpu;
  if (name == "cuda") return DeviceChoice::Cuda;
  if (name == "auto") return DeviceChoice::Auto;
  throw ConfigError("device", "unknown device \"" + name + "\" (expected auto, cpu or cuda)");
}

std::size_t pack_memory_budget(bool gpu) {
  if (const char* env = std::getenv("SKILLRUN_PACK_MEMORY_MB"); env != nullptr && *env != '\0') {
    const auto mb = parse_int(env);
    if (!mb || *mb < 1) throw UsageError(fmt::format("SKILLRUN_PACK_MEMORY_MB=\"{}\": expected a number of MiB >= 1", env));
    return static_cast<std::size_t>(*mb) << 20;
  }
  if (gpu && cuda_memory_bytes() > 0) return cuda_memory_bytes() / 10 * 9;
  return static_cast<std::size_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) /
         10 * 8;
}

}  // namespace skillrun
