// Logging set-up: spdlog's default logger writes to stderr and, once a run directory exists,
// to its run.log as well. Every run log starts with the provenance of the binary and machine.
#pragma once
#include <filesystem>
#include <string>

namespace skillrun {

// level: trace | debug | info | warn | error | off. Throws UsageError for other names.
void setup_logging(const std::string& level);
// Adds a file sink (appending) to the default logger. With a `scope` (a pack: one process, many
// runs, each with its own run.log), the file receives only the lines logged inside a LogScope of
// that name, and the errors logged outside every scope (what stopped the whole process).
void log_to_file(const std::filesystem::path& file, const std::string& scope = "");

// While alive, this thread's log lines belong to `scope` (nested scopes: the innermost). The
// string is referred to, not copied (a scope is entered once per run and step of a pack): it
// must outlive the LogScope (a run directory's path().native(), say).
class LogScope {
 public:
  explicit LogScope(const std::string& scope);
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  const std::string* previous_;
};

}  // namespace skillrun
