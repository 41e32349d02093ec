// Run directory writer. metrics.csv rows use %.9g so every float loss survives a round trip.
#include "io/run_dir.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "config/experiment.h"
#include "core/version.h"

namespace skillrun {

const char* to_string(RunStatus s) {
  switch (s) {
    case RunStatus::Running: return "running";
    case RunStatus::Converged: return "converged";
    case RunStatus::MaxSteps: return "max_steps";
    case RunStatus::Diverged: return "diverged";
    case RunStatus::Interrupted: return "interrupted";
  }
  return "unknown";
}

RunDirectory::RunDirectory(std::filesystem::path path, RunDirMode mode) : path_(std::move(path)) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (mode == RunDirMode::Fresh && (fs::exists(path_ / "metrics.csv", ec) || fs::exists(path_ / "summary.json", ec)))
    throw UsageError(fmt::format("{} already holds a run; choose another --out (nothing was overwritten)",
                                 path_.string()));
  fs::create_directories(path_, ec);
  if (ec) throw RuntimeError(fmt::format("cannot create run directory {}: {}", path_.string(), ec.message()));
}

RunDirectory::~RunDirectory() {
  if (metrics_) std::fclose(metrics_);
}

void RunDirectory::write_config(const nlohmann::json& resolved) {
  write_file_atomic(path_ / "config.json", resolved.dump(2) + "\n");
}

void RunDirectory::open_metrics(int n_tasks, std::optional<int64_t> keep_through) {
  std::vector<std::string> columns = {"train_loss", "mean_loss"};
  for (int k = 0; k < n_tasks; ++k) columns.push_back(fmt::format("loss_{}", k));
  for (int k = 0; k < n_tasks; ++k) columns.push_back(fmt::format("acc_{}", k));
  open_metrics_columns(columns, keep_through);
}

void RunDirectory::open_metrics_columns(const std::vector<std::string>& columns, std::optional<int64_t> keep_through) {
  const auto file = path_ / "metrics.csv";
  std::string content = "step,wall_s";
  for (const std::string& c : columns) content += "," + c;
  content += "\n";
  if (keep_through && std::filesystem::exists(file)) {
    const std::string old = read_file(file);
    if (old.compare(0, content.size(), content) != 0)
      throw RuntimeError(fmt::format("{}: header does not match this run's columns", file.string()));
    // Keep whole rows whose step is <= keep_through; a torn last line (no newline) is dropped.
    for (std::size_t pos = content.size(); pos < old.size();) {
      const std::size_t end = old.find('\n', pos);
      if (end == std::string::npos) break;
      if (std::stoll(old.substr(pos, old.find(',', pos) - pos)) > *keep_through) break;
      content.append(old, pos, end + 1 - pos);
      pos = end + 1;
    }
  }
  write_file_atomic(file, content);
  metrics_ = std::fopen(file.c_str(), "a");
  if (!metrics_) throw RuntimeError(fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)));
}

void RunDirectory::append_metrics(const MetricsRow& row) {
  fmt::memory_buffer line;
  fmt::format_to(std::back_inserter(line), "{},{:.3f},", row.step, row.wall_seconds);
  if (row.train_loss_bits) fmt::format_to(std::back_inserter(line), "{:.9g}", *row.train_loss_bits);
  fmt::format_to(std::back_inserter(line), ",{:.9g}", row.mean_loss_bits);
  for (double v : row.loss_bits) fmt::format_to(std::back_inserter(line), ",{:.9g}", v);
  for (double v : row.accuracy) fmt::format_to(std::back_inserter(line), ",{:.9g}", v);
  write_metrics_line(line);
}

void RunDirectory::append_metrics_values(int64_t step, double wall_seconds, const std::vector<double>& values) {
  fmt::memory_buffer line;
  fmt::format_to(std::back_inserter(line), "{},{:.3f}", step, wall_seconds);
  for (double v : values) fmt::format_to(std::back_inserter(line), ",{:.9g}", v);
  write_metrics_line(line);
}

void RunDirectory::write_metrics_line(fmt::memory_buffer& line) {
  line.push_back('\n');
  if (std::fwrite(line.data(), 1, line.size(), metrics_) != line.size() || std::fflush(metrics_) != 0)
    throw RuntimeError(fmt::format("cannot write {}: {}", (path_ / "metrics.csv").string(), std::strerror(errno)));
}

void RunDirectory::write_summary(const RunSummary& s) {
  nlohmann::json j = {
      {"status", to_string(s.status)}, {"steps", s.steps},     {"seconds", s.seconds}, {"device", s.device},
      {"git_commit", git_commit()},    {"version", version()}, {"message", s.message},
  };
  if (!s.T_k.empty()) {
    nlohmann::json T = nlohmann::json::array();
    for (const auto& t : s.T_k) T.push_back(t ? nlohmann::json(*t) : nlohmann::json(nullptr));
    j["T_k"] = T;
    j["tau_bits"] = s.tau_bits;
  }
  for (const auto& [key, value] : s.extra.items()) j[key] = value;
  write_file_atomic(path_ / "summary.json", j.dump(2) + "\n");
}

std::optional<std::string> recorded_status(const std::filesystem::path& run_dir) {
  try {
    return nlohmann::json::parse(read_file(run_dir / "summary.json")).at("status").get<std::string>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool is_finished_status(const std::string& status) {
  return status == to_string(RunStatus::Converged) || status == to_string(RunStatus::MaxSteps) ||
         status == to_string(RunStatus::Diverged);
}

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

// "/optimizer/lr" -> "optimizer.lr"
std::string dotted(const std::string& pointer) {
  std::string s = pointer.empty() ? pointer : pointer.substr(1);
  for (char& ch : s)
    if (ch == '/') ch = '.';
  return s;
}

std::string value_at(const json& j, const std::string& pointer) {
  const json::json_pointer p(pointer);
  return j.contains(p) ? j.at(p).dump() : std::string("absent");
}

}  // namespace

std::optional<std::string> config_difference(const fs::path& dir, const json& resolved, std::string_view here) {
  const fs::path file = dir / "config.json";
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  // Resolving the stored config again makes keys added with defaults since it was written
  // compare equal, and a config written by hand compare by meaning, not by text.
  json existing;
  try {
    existing = to_json(parse_experiment(read_json_file(file.string())));
  } catch (const std::exception& e) {
    return fmt::format("it is not a valid config ({})", e.what());
  }
  if (existing == resolved) return std::nullopt;
  std::string keys;
  int shown = 0;
  for (const auto& op : json::diff(existing, resolved)) {
    const std::string pointer = op.at("path").get<std::string>();
    if (shown++ == 4) {
      keys += ", ...";
      break;
    }
    keys += fmt::format("{}{} ({} in the directory, {} {})", keys.empty() ? "" : ", ", dotted(pointer),
                        value_at(existing, pointer), value_at(resolved, pointer), here);
  }
  return keys;
}

std::filesystem::path default_run_path(const std::string& name) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  std::filesystem::path base = std::filesystem::path("runs") / fmt::format("{}-{}", name, stamp);
  std::filesystem::path candidate = base;
  for (int n = 2; std::filesystem::exists(candidate); ++n) candidate = base.string() + "-" + std::to_string(n);
  return candidate;
}

}  // namespace skillrun
