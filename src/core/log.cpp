// spdlog wiring. The stderr sink is colour only on a terminal.
#include "core/log.h"

#include <algorithm>
#include <mutex>
#include <utility>

#include <spdlog/sinks/base_sink.h>
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

namespace {

thread_local const std::string* t_scope = nullptr;  // the LogScope this thread's lines belong to

// A file sink that writes the lines of one scope (and errors from outside every scope).
class ScopedFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ScopedFileSink(const std::filesystem::path& file, std::string scope)
      : file_(file.string(), /*truncate=*/false), scope_(std::move(scope)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const bool unscoped = t_scope == nullptr || t_scope->empty();
    if ((!unscoped && *t_scope == scope_) || (unscoped && msg.level >= spdlog::level::err)) file_.log(msg);
  }
  void flush_() override { file_.flush(); }
  void set_pattern_(const std::string& pattern) override { file_.set_pattern(pattern); }
  void set_formatter_(std::unique_ptr<spdlog::formatter> formatter) override {
    file_.set_formatter(std::move(formatter));
  }

 private:
  spdlog::sinks::basic_file_sink_st file_;
  std::string scope_;
};

}  // namespace

LogScope::LogScope(const std::string& scope) : previous_(std::exchange(t_scope, &scope)) {}
LogScope::~LogScope() { t_scope = previous_; }

void log_to_file(const std::filesystem::path& file, const std::string& scope) {
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (scope.empty())
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string(), /*truncate=*/false);
  else
    sink = std::make_shared<ScopedFileSink>(file, scope);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  sink->set_level(spdlog::level::trace);
  spdlog::default_logger()->sinks().push_back(sink);
  spdlog::default_logger()->flush_on(spdlog::level::info);
}

}  // namespace skillrun
