// Logging set-up: spdlog's default logger writes to stderr and, once a run directory exists,
// to its run.log as well. Every run log starts with the provenance of the binary and machine.
#pragma once
#include <filesystem>
#include <string>

namespace skillrun {

// level: trace | debug | info | warn | error | off. Throws UsageError for other names.
void setup_logging(const std::string& level);
// Adds a file sink (appending) to the default logger.
void log_to_file(const std::filesystem::path& file);

}  // namespace skillrun
