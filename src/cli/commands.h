// The subcommands behind src/main.cpp. Each returns the process exit code (0 ok, 1 runtime
// failure, 2 usage or config error) or throws ConfigError/UsageError/RuntimeError.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace skillrun {

struct CommonOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set KEY=VALUE
  std::string device;                  // --device, empty: the config's
};

struct RunOptions {
  CommonOptions common;
  std::string out_dir;  // empty: runs/<name>-<timestamp>
  bool no_progress = false;
};

struct BenchOptions {
  CommonOptions common;
  int64_t steps = 20;
  int64_t warmup = 3;
};

int cmd_run(const RunOptions& options);
int cmd_validate(const CommonOptions& options);
int cmd_bench(const BenchOptions& options);

}  // namespace skillrun
