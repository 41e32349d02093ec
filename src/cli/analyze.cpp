// `skillrun analyze`: reads run directories, prints the acquisition report and writes the
// --out directory; --plot then hands that directory to scripts/plot.py when python3 and
// matplotlib are there.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "analysis/aggregate.h"
#include "analysis/report.h"
#include "analysis/run_reader.h"
#include "analysis/summary_tables.h"
#include "cli/commands.h"
#include "core/error.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// scripts/plot.py: looked for above the executable first (build/bin/skillrun -> repository),
// then in the source tree this binary was built from.
std::optional<fs::path> find_plot_script() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path())
      if (fs::exists(dir / "scripts" / "plot.py")) return dir / "scripts" / "plot.py";
  const fs::path built_from = fs::path(SKILLRUN_SOURCE_DIR) / "scripts" / "plot.py";
  if (fs::exists(built_from)) return built_from;
  return std::nullopt;
}

// The first Python with matplotlib: `python3` on the PATH, else Debian's own (a PATH may put a
// virtualenv or pyenv python3 first that lacks python3-matplotlib).
std::optional<std::string> find_python_with_matplotlib() {
  for (const char* python : {"python3", "/usr/bin/python3"}) {
    const std::string probe = std::string(python) + " -c 'import matplotlib' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) return std::string(python);
  }
  return std::nullopt;
}

// Returns the exit code: 0 when plotted or when plotting is not possible here (a warning says
// why), 1 when the script ran and failed.
int plot(const fs::path& out) {
  const auto script = find_plot_script();
  if (!script) {
    spdlog::warn("--plot: scripts/plot.py not found; tables are in {}", out.string());
    return kExitOk;
  }
  const auto python = find_python_with_matplotlib();
  if (!python) {
    spdlog::warn("--plot: no python3 with matplotlib (scripts/setup.sh installs python3-matplotlib); tables are in "
                 "{}; plot later with: python3 {} {}",
                 out.string(), script->string(), out.string());
    return kExitOk;
  }
  const std::string cmd = *python + " " + shell_quote(script->string()) + " " + shell_quote(out.string());
  if (std::system(cmd.c_str()) != 0) {
    spdlog::error("--plot: {} failed", cmd);
    return kExitRuntime;
  }
  return kExitOk;
}

}  // namespace

int cmd_analyze(const AnalyzeOptions& options) {
  AnalysisOptions analysis;
  if (options.tau_bits) {
    if (!(*options.tau_bits > 0)) throw UsageError(fmt::format("--tau: must be > 0 bits, got {}", *options.tau_bits));
    analysis.tau_bits = options.tau_bits;
  }
  if (!options.p_list.empty()) analysis.p_grid = parse_p_list(options.p_list);
  std::sort(analysis.p_grid.begin(), analysis.p_grid.end());
  analysis.p_grid.erase(std::unique(analysis.p_grid.begin(), analysis.p_grid.end()), analysis.p_grid.end());
  if (!options.group_by.empty()) analysis.group_keys = parse_key_list(options.group_by);
  analysis.select_lr = parse_lr_selection(options.select_lr);
  const std::string format = options.format;
  if (format != "table" && format != "csv" && format != "md" && format != "json")
    throw UsageError(fmt::format("--format: \"{}\" is not table, csv, md or json", format));
  if (options.plot && options.out_dir.empty()) throw UsageError("--plot needs --out DIR (the plots are written there)");

  std::vector<fs::path> roots(options.paths.begin(), options.paths.end());
  const std::vector<fs::path> dirs = discover_runs(roots);
  if (dirs.empty())
    throw UsageError(fmt::format("no run directories (directories holding a metrics.csv) under {}",
                                 fmt::join(options.paths, ", ")));
  std::vector<RunAnalysis> runs;
  for (const fs::path& dir : dirs) runs.push_back(analyze_run(read_run(dir), analysis));
  for (const std::string& key : analysis.group_keys)
    if (std::all_of(runs.begin(), runs.end(), [&](const RunAnalysis& r) { return value_at(r.config, key).is_null(); }))
      throw UsageError(fmt::format("--group-by: no run has the config key \"{}\"", key));
  const AnalysisResult result = aggregate(std::move(runs), analysis);

  if (format == "table") std::fputs(render_report_text(result).c_str(), stdout);
  if (format == "md") std::fputs(render_report_markdown(result).c_str(), stdout);
  if (format == "csv") std::fputs(runs_csv(result).c_str(), stdout);
  if (format == "json") std::fputs((analysis_json(result).dump(2) + "\n").c_str(), stdout);
  std::fflush(stdout);

  if (options.out_dir.empty()) return kExitOk;
  const fs::path out(options.out_dir);
  write_report_files(result, out);
  spdlog::info("wrote runs.csv, coverage.csv, sal.csv, summary.md, analysis.json to {}", out.string());
  return options.plot ? plot(out) : kExitOk;
}

}  // namespace skillrun
