// `skillrun status PATH...`: every run directory under the paths (a run, a sweep's output, a
// folder of runs), what each is doing: running (and which process writes it), killed, stopped
// by a signal, done, diverged, failed or pending; its step out of max_steps, its pace and a
// time left at that pace. Read only: it takes no lock and writes nothing.
#include "cli/status.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/experiment.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"
#include "io/run_dir.h"
#include "sweep/run_status.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

struct StatusOptions {
  std::vector<std::string> paths;
  std::string format = "table";  // table | json
};

// Run directories at or under `root` (not inside a run: checkpoints, the sweep's pack logs). A
// sweep's output directory lists its runs in sweep.json: those not started yet are included
// (they show as pending), in the sweep's order.
void find_runs(const fs::path& root, int depth, std::vector<fs::path>& out) {
  if (holds_run(root)) {
    out.push_back(root);
    return;
  }
  std::error_code ec;
  if (fs::exists(root / "sweep.json", ec)) {
    try {
      const nlohmann::json manifest = parse_json(read_file(root / "sweep.json"), (root / "sweep.json").string());
      for (const auto& run : manifest.at("runs")) out.push_back(root / run.at("name").get<std::string>());
      return;
    } catch (const std::exception&) {
      // unreadable: look at the directories themselves
    }
  }
  if (depth == 0) return;
  std::vector<fs::path> children;
  for (const auto& entry : fs::directory_iterator(root, ec))
    if (entry.is_directory(ec)) children.push_back(entry.path());
  std::sort(children.begin(), children.end());
  for (const fs::path& child : children) find_runs(child, depth - 1, out);
}

// Time left at the run's pace to max_steps (an upper bound: a run may converge first).
std::string time_left(const RunProgress& p) {
  if (!p.writer) return "";  // nothing is training it: no time left to count
  if (!p.steps_per_second || p.max_steps <= p.step) return "?";
  return "<" + format_duration(static_cast<double>(p.max_steps - p.step) / *p.steps_per_second);
}

int cmd_status(const StatusOptions& options) {
  std::vector<fs::path> dirs, shown;  // shown: relative to the path given, where under it
  for (const std::string& path : options.paths) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) throw UsageError(fmt::format("{}: no such directory", path));
    const std::size_t before = dirs.size();
    find_runs(path, 4, dirs);
    for (std::size_t i = before; i < dirs.size(); ++i) {
      const fs::path rel = dirs[i].lexically_relative(path);
      shown.push_back(rel.empty() || rel == "." || rel.string().starts_with("..") ? dirs[i] : rel);
    }
  }
  if (dirs.empty())
    throw UsageError(fmt::format("no run directories under {} (a run holds config.json, metrics.csv or summary.json)",
                                 fmt::format("{}", fmt::join(options.paths, ", "))));
  std::vector<RunProgress> progress;
  for (const fs::path& d : dirs) progress.push_back(progress_of(d));

  if (options.format == "json") {
    nlohmann::json runs = nlohmann::json::array();
    for (std::size_t i = 0; i < dirs.size(); ++i) {
      const RunProgress& p = progress[i];
      nlohmann::json r = {{"dir", dirs[i].string()},       {"status", describe_state(p)}, {"detail", p.state.detail},
                          {"step", p.step},                {"max_steps", p.max_steps},     {"seconds", p.seconds}};
      r["writer"] = p.writer ? nlohmann::json(*p.writer) : nlohmann::json(nullptr);
      r["steps_per_second"] = p.steps_per_second ? nlohmann::json(*p.steps_per_second) : nlohmann::json(nullptr);
      runs.push_back(r);
    }
    std::printf("%s\n", runs.dump(2).c_str());
    return kExitOk;
  }

  // 100 columns: status 11, step/max 15, pace 8, time left 7, the run 51.
  constexpr std::size_t kNameWidth = 51;
  std::printf("%-11s  %15s  %8s  %7s  %s\n", "status", "step/max", "steps/s", "left", "run");
  std::map<std::string, int> counts;
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    const RunProgress& p = progress[i];
    const std::string state = describe_state(p);
    ++counts[state];
    const std::string steps = p.max_steps > 0 ? fmt::format("{}/{}", p.step, p.max_steps) : std::to_string(p.step);
    const std::string pace = p.steps_per_second ? fmt::format("{:.1f}", *p.steps_per_second) : "";
    std::printf("%-11s  %15s  %8s  %7s  %s\n", state.c_str(), steps.c_str(), pace.c_str(), time_left(p).c_str(),
                fit_middle(shown[i].string(), kNameWidth).c_str());
  }
  std::string totals;
  for (const auto& [state, n] : counts) totals += fmt::format("{}{} {}", totals.empty() ? "" : ", ", n, state);
  std::printf("%zu run%s: %s\n", dirs.size(), dirs.size() == 1 ? "" : "s", totals.c_str());
  // Where the live and the broken ones are, in full.
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    const RunProgress& p = progress[i];
    if (p.writer) std::printf("running: %s (%s)\n", dirs[i].c_str(), p.writer->c_str());
  }
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    const RunProgress& p = progress[i];
    const std::string state = describe_state(p);
    if (state == "failed" || state == "killed")
      std::printf("%s: %s (%s)\n", state.c_str(), dirs[i].c_str(),
                  state == "killed" ? "its process ended without a word; `skillrun run --resume` or the sweep "
                                      "continues it"
                                    : p.state.detail.c_str());
  }
  return kExitOk;
}

}  // namespace

CLI::App* add_status_command(CLI::App& app, std::function<int()>& action) {
  auto options = std::make_shared<StatusOptions>();
  CLI::App* cmd = app.add_subcommand(
      "status", "what the runs under these directories are doing: running (by whom), killed, done, failed, ...");
  cmd->add_option("paths", options->paths, "run directories, sweep outputs or folders of runs")->required();
  cmd->add_option("--format", options->format, "table | json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  action = [options] { return cmd_status(*options); };
  return cmd;
}

}  // namespace skillrun
