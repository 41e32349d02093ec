// Run directory state for sweeps. summary.json is read through io/run_dir (the writer's own
// reader); failed.json is this module's marker, written atomically like every other file.
#include "sweep/run_status.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <system_error>

#include <fmt/format.h>

#include "config/experiment.h"
#include "core/error.h"
#include "core/fs.h"
#include "io/run_dir.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kFailedMarker = "failed.json";

std::string last_line(const std::string& text) {
  const auto end = text.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  const auto newline = text.rfind('\n', end);
  const auto start = newline == std::string::npos ? 0 : newline + 1;
  return text.substr(start, end + 1 - start);
}

std::string failure_detail(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / kFailedMarker, ec)) return "failed.json unreadable";  // a FIFO would block
  try {
    const json j = parse_json(read_file(dir / kFailedMarker), (dir / kFailedMarker).string());
    const int signal = j.value("signal", 0);
    const std::string how =
        signal != 0 ? fmt::format("killed by signal {}", signal) : fmt::format("exit {}", j.value("exit_code", -1));
    // The last line of the output is usually main()'s "error: ..." line.
    const std::string line = last_line(j.value("output_tail", std::string()));
    return line.empty() ? how : how + ": " + line;
  } catch (const std::exception&) {
    return "failed.json unreadable";
  }
}

}  // namespace

const char* to_string(SweepRunState s) {
  switch (s) {
    case SweepRunState::Pending: return "pending";
    case SweepRunState::Running: return "running";
    case SweepRunState::Interrupted: return "interrupted";
    case SweepRunState::Incomplete: return "incomplete";
    case SweepRunState::Done: return "done";
    case SweepRunState::Diverged: return "diverged";
    case SweepRunState::Failed: return "failed";
  }
  return "unknown";
}

bool is_result(SweepRunState s) { return s == SweepRunState::Done || s == SweepRunState::Diverged; }

RunProgress progress_of(const fs::path& dir) {
  RunProgress p;
  std::error_code ec;
  fs::directory_iterator listing(dir, ec);  // a run directory made unreadable shows as such, not as pending
  if (ec && ec != std::errc::no_such_file_or_directory)
    p.unreadable = fmt::format("{}: {}", dir.string(), ec.message());
  p.state = inspect_run(dir);
  p.writer = run_writer(dir);
  try {
    const auto rows = last_metrics_rows(dir, 10);
    if (!rows.empty()) {
      p.step = rows.back().first;
      p.seconds = rows.back().second;
      const double dt = rows.back().second - rows.front().second;
      const int64_t ds = rows.back().first - rows.front().first;
      if (dt > 0 && ds > 0) p.steps_per_second = static_cast<double>(ds) / dt;
      // A run no process trains (ended, stopped or killed): its average pace, not the last rows'
      // (the last interval of a run that converged can be far from what it averaged).
      if (!p.writer && p.seconds > 0 && p.step > 0) p.steps_per_second = static_cast<double>(p.step) / p.seconds;
    }
  } catch (const std::exception& e) {
    if (!p.unreadable) p.unreadable = e.what();
  }
  try {
    if (!fs::is_regular_file(dir / "config.json", ec)) return p;  // none, or one that would block a reader
    const json config = parse_json(read_file(dir / "config.json"), (dir / "config.json").string());
    if (config.contains("train") && config["train"].is_object())
      p.max_steps = config["train"].value("max_steps", int64_t{0});
  } catch (const std::exception&) {
    // no or no readable config: the progress shows steps only
  }
  return p;
}

std::string describe_state(const RunProgress& p) {
  if (p.unreadable) return "unreadable";
  // Finished is finished: a lock taken since (by anyone) does not make the run train again.
  if (is_result(p.state.state)) return to_string(p.state.state);
  if (p.writer) return "running";
  if (p.state.state == SweepRunState::Running) return "killed";
  return to_string(p.state.state);
}

RunDirState inspect_run(const fs::path& dir) {
  std::error_code ec;
  const bool has_summary = fs::exists(dir / "summary.json", ec);
  const std::optional<json> summary = has_summary ? read_summary(dir) : std::nullopt;
  const std::optional<std::string> status = summary ? status_of(*summary) : std::nullopt;
  const int64_t steps = summary ? summary->value("steps", int64_t{0}) : 0;
  if (status && is_finished_status(*status)) {
    const std::string detail = fmt::format("{}, {} steps", *status, steps);
    return {*status == to_string(RunStatus::Diverged) ? SweepRunState::Diverged : SweepRunState::Done, detail};
  }
  if (fs::exists(dir / kFailedMarker, ec)) return {SweepRunState::Failed, failure_detail(dir)};
  if (status && *status == to_string(RunStatus::Failed))
    return {SweepRunState::Failed, summary->value("message", std::string())};
  if (!has_summary) return {SweepRunState::Pending, ""};
  if (!status) return {SweepRunState::Incomplete, "summary.json unreadable"};
  if (*status == to_string(RunStatus::Running))
    return {SweepRunState::Running, fmt::format("{} steps at the last summary", steps)};
  if (*status == to_string(RunStatus::Interrupted)) return {SweepRunState::Interrupted, fmt::format("{} steps", steps)};
  return {SweepRunState::Incomplete, "unknown status \"" + *status + "\""};
}

void write_failed_marker(const fs::path& dir, const RunFailure& failure) {
  const json j = {{"exit_code", failure.exit_code}, {"signal", failure.signal}, {"output_tail", failure.output_tail}};
  write_file_atomic(dir / kFailedMarker, j.dump(2) + "\n");
}

void remove_failed_marker(const fs::path& dir) {
  std::error_code ec;
  fs::remove(dir / kFailedMarker, ec);
  if (ec) throw RuntimeError(fmt::format("cannot remove {}: {}", (dir / kFailedMarker).string(), ec.message()));
}

std::vector<std::string> adopt_existing_run_directories(Sweep& sweep, const fs::path& out_dir) {
  std::vector<std::string> adopted;
  std::set<std::string> names;
  for (const SweepRun& run : sweep.runs) names.insert(run.name);
  std::error_code ec;
  std::map<std::string, std::string> by_config;  // resolved config (dumped) -> directory name
  bool indexed = false;
  for (SweepRun& run : sweep.runs) {
    if (fs::exists(out_dir / run.name / "config.json", ec)) continue;
    if (!indexed) {  // only read the other directories when some run needs them
      indexed = true;
      for (auto it = fs::directory_iterator(out_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (names.contains(name)) continue;
        try {
          if (const auto config = resolved_config_of(it->path())) by_config.emplace(config->dump(), name);
        } catch (const std::exception&) {
          // not a run of ours: never adopted
        }
      }
    }
    const auto found = by_config.find(run.config.dump());
    if (found == by_config.end()) continue;
    adopted.push_back(fmt::format("{} -> {}", run.name, found->second));
    run.name = found->second;
    by_config.erase(found);
  }
  return adopted;
}

}  // namespace skillrun
