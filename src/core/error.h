// Error types: ConfigError (exit 2, message names the JSON path), UsageError (exit 2) and
// RuntimeError (exit 1). main() maps them to exit codes; nothing else prints stack traces.
#pragma once
#include <stdexcept>
#include <string>

namespace skillrun {

// A config value is missing, malformed or out of range. `path` is the dotted JSON path.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string path, const std::string& reason)
      : std::runtime_error(path.empty() ? reason : path + ": " + reason), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The command line itself is wrong (bad flag value, missing file, existing run directory).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Something failed while running: I/O, a backend call, a numerical library.
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// 3: the run was interrupted by a signal after writing a checkpoint; a wrapper may requeue it.
enum ExitCode : int { kExitOk = 0, kExitRuntime = 1, kExitUsage = 2, kExitInterrupted = 3 };

}  // namespace skillrun
