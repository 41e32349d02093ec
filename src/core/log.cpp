// spdlog wiring. The stderr sink is colour only on a terminal.
#include "core/log.h"

#include <algorithm>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/error.h"

namespace skillrun {

void setup_logging(const std::string& level) {
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    throw UsageError("--log-level: unknown level \"" + level + "\" (expected trace, debug, info, warn, error, off)");
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("skillrun", sink);
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  sink->set_level(lvl);
  // The logger passes info and up so run.log is complete whatever the terminal shows.
  logger->set_level(std::min(lvl, spdlog::level::info));
  spdlog::set_default_logger(logger);
}

void log_to_file(const std::filesystem::path& file) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string(), /*truncate=*/false);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  sink->set_level(spdlog::level::trace);
  spdlog::default_logger()->sinks().push_back(sink);
  spdlog::default_logger()->flush_on(spdlog::level::info);
}

}  // namespace skillrun
