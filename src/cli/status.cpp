// `skillrun status PATH...`: every run directory under the paths (a run, a sweep's output, a
// folder of runs), what each is doing: running (and which process writes it), killed, stopped
// by a signal, done, diverged, failed or pending; its step out of max_steps, its pace and a
// time left at that pace. What it cannot read is listed as unreadable, a name in sweep.json that
// would lead out of the sweep's directory as invalid; what it prints from files is escaped.
// Read only: it takes no lock and writes nothing.
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

// One line of the listing: a run directory, a directory that cannot be looked into, or a
// sweep.json entry whose name is no directory of the sweep's.
struct Entry {
  fs::path dir;                        // where the run is; the sweep's directory for an invalid name
  std::string name;                    // as the run column shows it (not escaped yet); empty: dir's
  std::optional<std::string> problem;  // for a directory that cannot be listed, or an invalid name
  bool invalid_name = false;

  static Entry run(fs::path dir) { return {std::move(dir), "", std::nullopt, false}; }
};

// Whether `name` from sweep.json names a directory right inside the sweep's: one path
// component, not "." or "..", no control character. Anything else is never joined to a path.
bool is_run_name(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) return false;
  return std::none_of(name.begin(), name.end(),
                      [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// The runs sweep.json in `dir` lists, in the sweep's order (those not started yet show as
// pending), or false when there is no readable sweep.json.
bool add_sweep_runs(const fs::path& dir, std::vector<Entry>& out) {
  const fs::path file = dir / "sweep.json";
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return false;
  nlohmann::json runs;
  try {
    runs = parse_json(read_file(file), file.string()).at("runs");
  } catch (const std::exception&) {
    return false;  // unreadable: look at the directories themselves
  }
  if (!runs.is_array()) return false;
  for (const nlohmann::json& run : runs) {
    const nlohmann::json* name = run.is_object() && run.contains("name") ? &run["name"] : nullptr;
    if (name != nullptr && name->is_string() && is_run_name(name->get<std::string>())) {
      out.push_back(Entry::run(dir / name->get<std::string>()));
      continue;
    }
    // Quoted, so that an empty name shows; an entry without a string name as JSON.
    const std::string shown =
        name != nullptr && name->is_string()
            ? "\"" + name->get<std::string>() + "\""
            : (name != nullptr ? *name : run).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out.push_back({dir, shown,
                   fmt::format("listed in {}, but not the name of a directory in it (one path component, no control "
                               "character); nothing read for it",
                               file.string()),
                   /*invalid_name=*/true});
  }
  return true;
}

// Run directories at or under `root`, as deep as they are (walk_run_tree, as `analyze` finds
// them), not looking inside a run (checkpoints) or a sweep's output (its sweep.json lists its
// runs, the sweep's pack logs are no run). Directories that cannot be listed are entries too.
void find_runs(const fs::path& root, std::vector<Entry>& out) {
  walk_run_tree(
      root,
      [&](const fs::path& dir) {
        if (holds_run(dir)) {
          out.push_back(Entry::run(dir));
          return false;
        }
        return !add_sweep_runs(dir, out);
      },
      [&](const fs::path& dir, const std::string& why) {
        out.push_back({dir, "", "cannot be listed: " + why, false});
      });
}

// Time left at a running run's pace to max_steps (an upper bound: a run may converge first).
std::string time_left(const RunProgress& p) {
  if (!p.steps_per_second || p.max_steps <= p.step) return "?";
  return "<" + format_duration(static_cast<double>(p.max_steps - p.step) / *p.steps_per_second);
}

int cmd_status(const StatusOptions& options) {
  std::vector<Entry> entries;
  for (const std::string& path : options.paths) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) throw UsageError(fmt::format("{}: no such directory", printable(path)));
    const std::size_t before = entries.size();
    find_runs(path, entries);
    for (std::size_t i = before; i < entries.size(); ++i) {  // the run column: relative to the path given
      if (!entries[i].name.empty() || entries[i].invalid_name) continue;
      const fs::path rel = entries[i].dir.lexically_relative(path);
      entries[i].name = (rel.empty() || rel == "." || rel.string().starts_with("..") ? entries[i].dir : rel).string();
    }
  }
  if (entries.empty())
    throw UsageError(fmt::format("no run directories under {} (a run holds config.json, metrics.csv or summary.json)",
                                 printable(fmt::format("{}", fmt::join(options.paths, ", ")))));
  // States, and what each line says after the table (where the live and the broken ones are).
  std::vector<RunProgress> progress(entries.size());
  std::vector<std::string> states(entries.size()), details(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.invalid_name) {
      states[i] = "invalid";
      details[i] = *e.problem;
      continue;
    }
    if (e.problem) {
      progress[i].unreadable = fmt::format("{}: {}", e.dir.string(), *e.problem);
    } else {
      progress[i] = progress_of(e.dir);
    }
    const RunProgress& p = progress[i];
    states[i] = describe_state(p);
    if (states[i] == "unreadable")
      details[i] = *p.unreadable;
    else if (states[i] == "running")
      details[i] = p.writer ? *p.writer : "";
    else if (states[i] == "killed")
      details[i] = "its process ended without a word; `skillrun run --resume` or the sweep continues it";
    else
      details[i] = p.state.detail;
  }

  if (options.format == "json") {
    nlohmann::json runs = nlohmann::json::array();
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const RunProgress& p = progress[i];
      nlohmann::json r = {
          {"dir", entries[i].invalid_name ? nlohmann::json(nullptr) : nlohmann::json(entries[i].dir.string())},
          {"name", entries[i].name},
          {"status", states[i]},
          {"detail", details[i]},
          {"step", p.step},
          {"max_steps", p.max_steps},
          {"seconds", p.seconds}};
      r["writer"] = p.writer ? nlohmann::json(*p.writer) : nlohmann::json(nullptr);
      r["steps_per_second"] = p.steps_per_second ? nlohmann::json(*p.steps_per_second) : nlohmann::json(nullptr);
      runs.push_back(r);
    }
    // ASCII only: names and notes from files reach the terminal as \u escapes, never raw.
    std::printf("%s\n", runs.dump(2, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace).c_str());
    return kExitOk;
  }

  // 100 columns: status 11, step/max 15, pace 8, time left 7, the run 51.
  constexpr std::size_t kNameWidth = 51;
  std::printf("%-11s  %15s  %8s  %7s  %s\n", "status", "step/max", "steps/s", "left", "run");
  std::map<std::string, int> counts;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const RunProgress& p = progress[i];
    ++counts[states[i]];
    const bool shown = states[i] != "invalid" && states[i] != "unreadable";
    const std::string steps = !shown            ? ""
                              : p.max_steps > 0 ? fmt::format("{}/{}", p.step, p.max_steps)
                                                : std::to_string(p.step);
    const std::string pace = p.steps_per_second ? fmt::format("{:.1f}", *p.steps_per_second) : "";
    std::printf("%-11s  %15s  %8s  %7s  %s\n", states[i].c_str(), steps.c_str(), pace.c_str(),
                states[i] == "running" ? time_left(p).c_str() : "",
                fit_middle(printable(entries[i].name), kNameWidth).c_str());
  }
  std::string totals;
  for (const auto& [state, n] : counts) totals += fmt::format("{}{} {}", totals.empty() ? "" : ", ", n, state);
  std::printf("%zu run%s: %s\n", entries.size(), entries.size() == 1 ? "" : "s", totals.c_str());
  // Where the live and the broken ones are, in full.
  for (const char* state : {"running", "failed", "killed", "unreadable", "invalid"})
    for (std::size_t i = 0; i < entries.size(); ++i)
      if (states[i] == state) {
        const std::string where =
            states[i] == "invalid" ? printable(entries[i].name) : printable(entries[i].dir.string());
        std::printf("%s: %s (%s)\n", state, where.c_str(), printable(details[i]).c_str());
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
