// `skillrun analyze`: reads run directories, prints the acquisition report (sparse_parity runs)
// and/or the iterations-to-epsilon report (icl_linreg runs) and writes the --out directory; --plot then hands that directory to scripts/plot.py when python3 and
// matplotlib are there.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "analysis/aggregate.h"
#include "analysis/icl_report.h"
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
    // inf (also what 1e400 reads as) would count no subtask as ever learned and report T_k = 0.
    if (!(std::isfinite(*options.tau_bits) && *options.tau_bits > 0))
      throw UsageError(fmt::format("--tau: must be a finite number of bits > 0, got {}", *options.tau_bits));
    analysis.tau_bits = options.tau_bits;
  }
  if (!options.p_list.empty()) analysis.p_grid = parse_p_list(options.p_list);
  std::sort(analysis.p_grid.begin(), analysis.p_grid.end());
  analysis.p_grid.erase(std::unique(analysis.p_grid.begin(), analysis.p_grid.end()), analysis.p_grid.end());
  if (!options.group_by.empty()) analysis.group_keys = parse_key_list(options.group_by), analysis.group_keys_given = true;
  if (!options.compare.empty()) analysis.compare_keys = parse_key_list(options.compare, "--compare");
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
  // Each task type has its own analysis: sparse_parity runs the acquisition report, icl_linreg
  // runs the iterations-to-epsilon one (icl_report.h). A run directory that cannot be read, or
  // holds what no run writes, is skipped with a warning naming the file and why.
  std::vector<RunAnalysis> runs;
  std::vector<IclRun> icl_runs;
  std::vector<std::string> skipped;  // why, naming the file
  for (const fs::path& dir : dirs) {
    try {
      if (read_run_config(dir).config.is_icl())
        icl_runs.push_back(read_icl_run(dir));
      else
        runs.push_back(analyze_run(read_run(dir, analysis.tau_bits), analysis));
    } catch (const RuntimeError& e) {
      skipped.push_back(e.what());
    }
  }
  if (skipped.size() == dirs.size())
    throw RuntimeError(fmt::format("no run could be analysed ({} run director{} found, none usable):\n  {}",
                                   dirs.size(), dirs.size() == 1 ? "y" : "ies", fmt::join(skipped, "\n  ")));
  for (const std::string& why : skipped) spdlog::warn("run skipped: {}", why);
  if (!skipped.empty())
    spdlog::warn("analysed {} of {} run directories; {} skipped (named above)", dirs.size() - skipped.size(),
                 dirs.size(), skipped.size());
  std::optional<AnalysisResult> result;
  if (!runs.empty()) {
    // Keys given with --group-by must exist; the defaults need not (assoc_memory has no model.width).
    for (const std::string& key : analysis.group_keys_given ? analysis.group_keys : std::vector<std::string>{})
      if (std::all_of(runs.begin(), runs.end(), [&](const RunAnalysis& r) { return value_at(r.config, key).is_null(); }))
        throw UsageError(fmt::format("--group-by: no run has the config key \"{}\"", key));
    // A run that stopped once every subtask reached its own tau (stop_when_learned) has no rows
    // beyond that point: at a stricter --tau its later subtasks show as never learned.
    if (options.tau_bits) {
      std::size_t stopped_early = 0;
      double own_tau = 0;
      for (const RunAnalysis& r : runs) {
        const nlohmann::json own = value_at(r.config, "eval.tau_bits");
        if (r.status == "converged" && own.is_number() && *options.tau_bits < own.get<double>()) {
          ++stopped_early;
          own_tau = own.get<double>();
        }
      }
      if (stopped_early > 0)
        spdlog::warn("--tau {} is below the tau = {} at which {} of the {} runs stopped (train.stop_when_learned): "
                     "their T_k at --tau {} are known only up to the step they stopped at, so subtasks not yet "
                     "below {} bits there show as not learned (\"-\"). To measure at a stricter tau, train with "
                     "--set eval.tau_bits={} (or train.stop_when_learned=false)",
                     *options.tau_bits, own_tau, stopped_early, runs.size(), *options.tau_bits, *options.tau_bits,
                     *options.tau_bits);
    }
    result = aggregate(std::move(runs), analysis);
  } else if (options.tau_bits || !options.p_list.empty() || !options.group_by.empty() || !options.compare.empty() ||
             options.select_lr != "coverage") {
    spdlog::warn("--tau, --p, --group-by, --compare and --select-lr apply to sparse_parity runs only; there are none");
  }
  std::optional<IclReport> icl;
  if (!icl_runs.empty()) icl = icl_report(std::move(icl_runs));
  const AnalysisResult* sparse_ptr = result ? &*result : nullptr;
  const IclReport* icl_ptr = icl ? &*icl : nullptr;

  if (format == "table") std::fputs(report_text(sparse_ptr, icl_ptr).c_str(), stdout);
  if (format == "md") std::fputs(report_markdown(sparse_ptr, icl_ptr).c_str(), stdout);
  if (format == "csv") {
    // One CSV on stdout: runs.csv, or icl_table.csv when there are only icl runs.
    std::fputs(result ? runs_csv(*result).c_str() : icl_table_csv(*icl).c_str(), stdout);
    if (result && icl)
      spdlog::warn("--format csv prints the sparse_parity runs only; the {} icl_linreg runs are in icl_table.csv "
                   "and icl_runs.csv with --out",
                   icl->runs.size());
  }
  if (format == "json") std::fputs((report_json(sparse_ptr, icl_ptr).dump(2) + "\n").c_str(), stdout);
  std::fflush(stdout);

  if (options.out_dir.empty()) return kExitOk;
  const fs::path out(options.out_dir);
  const std::vector<std::string> written = write_report_files(sparse_ptr, icl_ptr, out);
  spdlog::info("wrote {} to {}", fmt::join(written, ", "), out.string());
  return options.plot ? plot(out) : kExitOk;
}

}  // namespace skillrun
