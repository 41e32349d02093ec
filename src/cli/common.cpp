// --device is applied as one more override so it is validated like the config key.
#include "cli/common.h"

#include "core/error.h"

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

}  // namespace skillrun
