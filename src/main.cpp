// skillrun entry point: CLI11 subcommands only; the work is in src/cli/. Maps errors to the
// documented exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/bench.h"
#include "cli/commands.h"
#include "cli/devices.h"
#include "cli/status.h"
#include "cli/sweep.h"
#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"
#include "core/version.h"

namespace {

void add_common(CLI::App* cmd, skillrun::CommonOptions& o) {
  cmd->add_option("config", o.config_path, "experiment config (JSON)")->required();
  cmd->add_option("--set", o.overrides, "override a config key: --set optimizer.lr=0.003 (repeatable)")
      ->allow_extra_args(false);  // one KEY=VALUE per --set, so the positional CONFIG may follow
  cmd->add_option("--device", o.device, "auto | cpu | cuda (overrides the config's device)");
}

}  // namespace

namespace {
// Until a command installs its own (run and pack checkpoint on SIGINT/SIGTERM/SIGUSR1 and exit
// 3), a stop signal ends the process as the signal would, saying so first: the parent (a shell
// loop, a sweep) still sees a death by that signal. Files skillrun writes are written whole
// (atomically) or appended line by line, so nothing half-written stays.
extern "C" void on_early_stop_signal(int sig) {
  const char* text = sig == SIGINT    ? "skillrun: interrupted by SIGINT\n"
                     : sig == SIGTERM ? "skillrun: stopped by SIGTERM\n"
                                      : "skillrun: stopped by SIGUSR1\n";
  std::size_t n = 0;
  while (text[n] != '\0') ++n;
  [[maybe_unused]] const ssize_t written = ::write(2, text, n);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// The first argument that is not an option (nor --log-level's value): the subcommand's place.
// For an argument CLI11 did not expect: "--job" -> did you mean --jobs (an option of the
// command); a word after a --set/--axis value that lacks '=' -> KEY=VALUE. Empty: no better hint.
std::optional<std::string> unexpected_argument_hint(const CLI::App& app, const std::string& command, int argc,
                                                    char** argv) {
  const CLI::App* sub = nullptr;
  for (const CLI::App* s : app.get_subcommands({}))
    if (s->get_name() == command) sub = s;
  if (sub == nullptr) return std::nullopt;
  std::vector<std::string> long_names;
  for (const CLI::App* scope : {&app, sub})
    for (const CLI::Option* opt : scope->get_options())
      for (const std::string& n : opt->get_lnames()) long_names.push_back(n);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      const std::string name = a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2);
      if (name.empty() || std::find(long_names.begin(), long_names.end(), name) != long_names.end()) continue;
      const auto meant = skillrun::nearest_name(name, long_names);
      return fmt::format("{} has no option --{}{}", command, name,
                         meant ? fmt::format(": did you mean --{}?", *meant) : std::string(" (see --help)"));
    }
    const std::string before = argv[i - 1];
    if (i >= 2 && (before.find('=') == std::string::npos) && (std::string(argv[i - 2]) == "--set" ||
                                                              std::string(argv[i - 2]) == "--axis"))
      return fmt::format("{} {} {}: {} takes KEY=VALUE in one argument, e.g. {} {}={}", argv[i - 2], before, a,
                         argv[i - 2], argv[i - 2], before, a);
  }
  return std::nullopt;
}

std::string first_word(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--log-level") {
      ++i;
      continue;
    }
    if (!a.starts_with("-")) return a;
  }
  return "";
}
}  // namespace

// Cores' worth of CPU time the rest of the machine used over the last 50 ms, from /proc/stat's
// all-CPU line (this process sleeps meanwhile); 0 when it cannot be read. CPU time, not a count
// of runnable tasks, so the processes of a shell pipeline starting beside this one do not count.
static double others_busy_cores() {
  const auto sample = [](double& busy, double& idle) {
    std::FILE* f = std::fopen("/proc/stat", "r");
    if (f == nullptr) return false;
    double v[8] = {};
    const int got = std::fscanf(f, "cpu %lf %lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                                &v[6], &v[7]);
    std::fclose(f);
    if (got != 8) return false;
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  // user nice system irq softirq steal
    idle = v[3] + v[4];                               // idle iowait
    return true;
  };
  double busy0, idle0, busy1, idle1;
  if (!sample(busy0, idle0)) return 0;
  ::usleep(50000);
  if (!sample(busy1, idle1)) return 0;
  const double total = (busy1 - busy0) + (idle1 - idle0);
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return total > 0 && online > 0 ? (busy1 - busy0) / total * static_cast<double>(online) : 0;
}

// OpenMP threads that spin while they wait (libgomp's default) take the cores from whatever
// else runs: beside other work on a 2-core machine a CPU run was several times slower than with
// waiting threads that sleep, while on a quiet machine sleeping costs ~20% on small steps
// (bench/results/2026-12-07-busy-cpu.md). libgomp reads OMP_WAIT_POLICY once, when it loads,
// before main: so when the user has not chosen one and other work keeps at least half of the
// usable cores busy as this process starts, it sets PASSIVE and executes itself again (the
// metrics are the same bits either way). An exec that fails leaves libgomp's default.
static void prefer_sleeping_openmp_threads_when_busy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  cpu_set_t set;
  const int cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  if (2 * others_busy_cores() < cpus) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);
}

int main(int argc, char** argv) {
  using namespace skillrun;
  prefer_sleeping_openmp_threads_when_busy(argv);
  // Not where the signal is ignored (a background job of a shell keeps ignoring Ctrl-C).
  for (int sig : {SIGINT, SIGTERM, SIGUSR1})
    if (std::signal(sig, on_early_stop_signal) == SIG_IGN) std::signal(sig, SIG_IGN);
  CLI::App app{"skillrun: experiment runner for how optimizers shape skill-learning dynamics"};
  app.set_version_flag("--version", std::string(version()) + " (commit " + git_commit() + ")");
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace | debug | info | warn | error | off")->capture_default_str();

  RunOptions run;
  CLI::App* run_cmd = app.add_subcommand("run", "train one run and write its run directory");
  add_common(run_cmd, run.common);
  run_cmd->add_option("--out", run.out_dir, "run directory (default runs/<name>[,<what --set changed>]-<timestamp>)");
  run_cmd->add_flag("--no-progress", run.no_progress, "no progress line on stderr");
  run_cmd->add_flag("--resume", run.resume, "continue the run in --out from its latest checkpoint (finished runs are left as they are)");
  run_cmd->add_option("--log-level", log_level, "trace | debug | info | warn | error | off");

  CommonOptions validate;
  PackOptions pack;
  CLI::App* pack_cmd = app.add_subcommand(
      "pack", "train the runs in these run directories (each with its config.json) together as one pack");
  pack_cmd->add_option("dirs", pack.dirs, "run directories; their configs may differ only in seed and optimizer")
      ->required();
  pack_cmd->add_flag("--no-progress", pack.no_progress, "no progress line on stderr");
  pack_cmd->add_option("--pack-log", pack.pack_log,
                       "the file this process's stderr goes to (a sweep's pack log), named in each run's run.log");

  CLI::App* validate_cmd = app.add_subcommand("validate", "check a config and print it resolved");
  add_common(validate_cmd, validate);

  std::function<int()> bench_action;
  CLI::App* bench_cmd = add_bench_command(app, bench_action);

  AnalyzeOptions analyze;
  CLI::App* analyze_cmd = app.add_subcommand("analyze", "T_k, p-coverage, SAL, best lr and fits over run directories");
  analyze_cmd->add_option("paths", analyze.paths, "run directories, or directories searched for them")->required();
  analyze_cmd->add_option("--tau", analyze.tau_bits, "learned threshold in bits (default: each run's eval.tau_bits)");
  analyze_cmd->add_option("--p", analyze.p_list, "coverage fractions, comma-separated (default 0.1,0.2,...,1)");
  analyze_cmd->add_option("--group-by", analyze.group_by, "config keys, comma-separated (default optimizer.type,model.width,optimizer.lr and the keys variants differ in)");
  analyze_cmd->add_option("--compare", analyze.compare, "config keys, comma-separated, whose values are the columns and lines of the per-variant views (default: optimizer.type and the keys its runs differ in)");
  analyze_cmd->add_option("--select-lr", analyze.select_lr, "best-lr metric: coverage | coverage:P | final_loss")->capture_default_str();
  analyze_cmd->add_option("--out", analyze.out_dir, "write runs.csv, coverage.csv, sal.csv (sparse parity), icl_runs.csv, icl_table.csv (icl_linreg), summary.md, analysis.json here");
  analyze_cmd->add_option("--format", analyze.format, "stdout format: table | csv | md | json")->capture_default_str();
  analyze_cmd->add_flag("--plot", analyze.plot, "then run scripts/plot.py on --out (needs python3-matplotlib)");
  analyze_cmd->add_option("--log-level", log_level, "trace | debug | info | warn | error | off");

  std::function<int()> sweep_action;
  CLI::App* sweep_cmd = add_sweep_command(app, sweep_action);
  std::function<int()> status_action;
  CLI::App* status_cmd = add_status_command(app, status_action);

  std::function<int()> devices_action;
  CLI::App* devices_cmd = add_devices_command(app, devices_action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // "A subcommand is required" for `skillrun analyse ...`: name the word, suggest a command.
    std::vector<std::string> commands;
    std::string listed;
    for (const CLI::App* sub : app.get_subcommands({})) {
      commands.push_back(sub->get_name());
      listed += (listed.empty() ? "" : ", ") + sub->get_name();
    }
    const std::string word = first_word(argc, argv);
    if (!word.empty() && std::find(commands.begin(), commands.end(), word) == commands.end()) {
      const auto meant = nearest_name(word, commands);
      const std::string hint = meant ? ": did you mean \"" + *meant + "\"?" : "";
      std::fprintf(stderr, "error: unknown command \"%s\"%s (commands: %s; see --help)\n", word.c_str(), hint.c_str(),
                   listed.c_str());
      return kExitUsage;
    }
    if (const auto hint = unexpected_argument_hint(app, word, argc, argv)) {
      std::fprintf(stderr, "error: %s\n", hint->c_str());
      return kExitUsage;
    }
    app.exit(e);
    return kExitUsage;
  }

  try {
    setup_logging(log_level);
    if (*run_cmd) return cmd_run(run);
    if (*pack_cmd) return cmd_pack(pack);
    if (*validate_cmd) return cmd_validate(validate);
    if (*bench_cmd) return bench_action();
    if (*devices_cmd) return devices_action();
    if (*sweep_cmd) return sweep_action();
    if (*status_cmd) return status_action();
    if (*analyze_cmd) return cmd_analyze(analyze);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitUsage;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitRuntime;
  }
  return kExitUsage;
}
