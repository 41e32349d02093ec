// `skillrun sweep SWEEP.json`: the sweep's runs, each in OUT/<run name>, each run by a child
// `skillrun run OUT/<name>/config.json --out OUT/<name> --resume --no-progress` so that one
// failing run never stops the others. Finished runs (done, diverged) are skipped, unfinished
// ones resumed, failed ones re-run only with --retry-failed; the statuses come from the run
// directories alone, so a second invocation of a finished sweep does no work.
#include "cli/sweep.h"

#include "core/strings.h"

#include <sched.h>
#include <unistd.h>

#include <csignal>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"
#include "sweep/launcher.h"
#include "sweep/manifest.h"
#include "sweep/run_status.h"
#include "sweep/sweep.h"

namespace skillrun {
namespace {

namespace fs = std::filesystem;

struct SweepOptions {
  std::string sweep_path;
  std::string out_dir;        // empty: runs/<sweep name>
  std::string jobs = "1";     // N, or "gpu": one per visible GPU
  bool list = false;
  std::string format = "table";  // --list output: table | count | json
  std::optional<int64_t> index;  // --index; empty: every run
  bool retry_failed = false;
  std::vector<std::string> overrides;  // --set, applied to the base config
  std::string on_interrupt;            // shell command run before exiting 3
};

// Bytes of a failed run's output kept in failed.json.
constexpr std::size_t kOutputTailBytes = 4000;

template <typename... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  std::fputs(fmt::format(format, std::forward<Args>(args)...).c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);  // the progress of a sweep is read from a log file under Slurm
}

// GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else the driver's list.
std::vector<std::string> visible_gpus() {
  if (const char* env = std::getenv("CUDA_VISIBLE_DEVICES")) {
    std::vector<std::string> ids = split(env, ',');
    std::erase(ids, std::string());  // "0,,1" and a trailing comma name no device
    if (!ids.empty() && (ids[0] == "-1" || ids[0] == "NoDevFiles")) ids.clear();
    return ids;
  }
  std::vector<std::string> ids;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/driver/nvidia/gpus", ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    ids.push_back(std::to_string(ids.size()));
  return ids;
}

int usable_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// --jobs N runs N at once, each child with its share of the CPUs (unless the user set the
// thread counts); --jobs gpu runs one per visible GPU, each child pinned to its own.
struct JobPlan {
  int slots = 1;
  std::vector<std::string> gpus;         // per slot, when pinning
  std::vector<std::string> thread_env;   // OMP/OpenBLAS thread counts for the children
};

JobPlan plan_jobs(const std::string& jobs) {
  JobPlan plan;
  if (jobs == "gpu") {
    plan.gpus = visible_gpus();
    if (plan.gpus.empty())
      throw UsageError("--jobs gpu: no GPU is visible (CUDA_VISIBLE_DEVICES, /proc/driver/nvidia)");
    plan.slots = static_cast<int>(plan.gpus.size());
    return plan;
  }
  try {
    std::size_t used = 0;
    plan.slots = std::stoi(jobs, &used);
    if (used != jobs.size() || plan.slots < 1) throw std::invalid_argument(jobs);
  } catch (const std::exception&) {
    throw UsageError("--jobs \"" + jobs + "\": expected a positive number of runs at once, or gpu");
  }
  if (plan.slots > 1) {
    const std::string threads = std::to_string(std::max(1, usable_cpus() / plan.slots));
    for (const char* name : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"})
      if (std::getenv(name) == nullptr) plan.thread_env.push_back(std::string(name) + "=" + threads);
  }
  return plan;
}

// The last whole lines of at most kOutputTailBytes of a run's output.
std::string output_tail(const fs::path& file) {
  std::string text;
  try {
    text = read_file(file);
  } catch (const RuntimeError&) {
    return "";
  }
  if (text.size() <= kOutputTailBytes) return text;
  text.erase(0, text.size() - kOutputTailBytes);
  const auto newline = text.find('\n');
  return newline == std::string::npos ? text : text.substr(newline + 1);
}

class SweepCommand {
 public:
  SweepCommand(const SweepOptions& options, Sweep sweep)
      : options_(options),
        sweep_(std::move(sweep)),
        out_(options.out_dir.empty() ? fs::path("runs") / sweep_.name : fs::path(options.out_dir)) {
    for (const std::string& line : adopt_existing_run_directories(sweep_, out_))
      std::fprintf(stderr, "run %s: found under another name (the axes were written in another order)\n",
                   line.c_str());  // stderr: --list --format json|count keeps stdout parseable
    if (options.index) {
      // Checked here, not by CLI11, so the message gives the real range.
      if (*options.index < 0 || static_cast<std::size_t>(*options.index) >= sweep_.runs.size())
        throw UsageError(fmt::format("--index {} is out of range: {} has {} runs (0..{})", *options.index,
                                     options.sweep_path, sweep_.runs.size(), sweep_.runs.size() - 1));
      selected_.push_back(&sweep_.runs[static_cast<std::size_t>(*options.index)]);
    } else {
      for (const auto& run : sweep_.runs) selected_.push_back(&run);
    }
  }

  int list() const {
    if (options_.format == "count") {
      say("{}", selected_.size());
    } else if (options_.format == "json") {
      nlohmann::json runs = nlohmann::json::array();
      for (const SweepRun* run : selected_) {
        const RunDirState s = inspect_run(dir(*run));
        runs.push_back({{"index", run->index}, {"name", run->name}, {"dir", dir(*run).string()},
                        {"status", to_string(s.state)}, {"detail", s.detail}});
      }
      say("{}", runs.dump(2));
    } else {
      print_table();
    }
    return kExitOk;
  }

  int run() {
    check_configs();
    const JobPlan jobs = plan_jobs(options_.jobs);
    std::error_code ec;
    fs::create_directories(out_, ec);
    if (ec) throw RuntimeError(fmt::format("cannot create {}: {}", out_.string(), ec.message()));
    write_manifest(out_, sweep_manifest(sweep_, own_command_line()));

    int finished = 0, failed_kept = 0;
    for (const SweepRun* run : selected_) {
      const SweepRunState state = inspect_run(dir(*run)).state;
      if (is_result(state))
        ++finished;
      else if (state == SweepRunState::Failed && !options_.retry_failed)
        ++failed_kept;
      else
        todo_.push_back(run);
    }
    say("sweep {}: {} run{} in {}", sweep_.name, selected_.size(), selected_.size() == 1 ? "" : "s", out_.string());
    if (finished > 0) say("skipped {} finished run{} (done or diverged)", finished, finished == 1 ? "" : "s");
    if (failed_kept > 0)
      say("skipped {} failed run{}: --retry-failed runs them again", failed_kept, failed_kept == 1 ? "" : "s");
    if (!todo_.empty()) say("running {} with {} at once", todo_.size(), jobs.slots);

    const int stop_signal = run_children(
        todo_.size(), jobs.slots, [&](std::size_t i, int slot) { return launch(*todo_[i], jobs, slot); },
        [&](std::size_t i, const ChildExit& exit) { finish(*todo_[i], exit); });

    print_table();
    if (stop_signal != 0 || interrupted_ > 0) {
      say("interrupted{}: the runs checkpointed; run the sweep again to resume them",
          stop_signal != 0 ? fmt::format(" by signal {}", stop_signal) : std::string());
      if (!options_.on_interrupt.empty()) {
        // The command may tell a time-limit warning (USR1) from a cancellation (TERM).
        const char* name = stop_signal != 0 ? sigabbrev_np(stop_signal) : nullptr;
        ::setenv("SKILLRUN_STOP_SIGNAL", name != nullptr ? name : "", 1);
        say("running --on-interrupt: {}", options_.on_interrupt);
        const int rc = std::system(options_.on_interrupt.c_str());
        if (rc != 0) say("--on-interrupt command returned {}", rc);
      }
      return kExitInterrupted;
    }
    for (const SweepRun* run : selected_)
      if (inspect_run(dir(*run)).state == SweepRunState::Failed) return kExitRuntime;
    return kExitOk;
  }

 private:
  fs::path dir(const SweepRun& run) const { return out_ / run.name; }

  // A run directory whose config.json no longer matches the sweep is never overwritten or
  // resumed: the sweep file (or --set) changed under it. Checked for all before anything runs.
  void check_configs() const {
    std::string problems;
    for (const SweepRun* run : selected_)
      if (const auto diff = config_difference(dir(*run), run->config, "in the sweep"))
        problems += fmt::format("\n  run {}: {} differs from the sweep: {}", run->index,
                                (dir(*run) / "config.json").string(), *diff);
    if (!problems.empty())
      throw UsageError("run directories hold runs of a different config (the sweep file or --set changed); "
                       "nothing was run or overwritten. Restore the sweep, or move these directories away:" +
                       problems);
  }

  std::optional<ChildSpec> launch(const SweepRun& run, const JobPlan& jobs, int slot) {
    const fs::path d = dir(run);
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) throw RuntimeError(fmt::format("cannot create {}: {}", d.string(), ec.message()));
    std::optional<FileLock> lock = try_lock_run(d);
    if (!lock) {
      say("[{}] busy     {}: another process is running it", run.index, run.name);
      return std::nullopt;
    }
    lock->describe_holder(fmt::format("pid {}, skillrun sweep {}", ::getpid(), sweep_.name));
    const RunDirState state = inspect_run(d);  // again, now that no one else can change it
    if (is_result(state.state)) {
      say("[{}] skip     {}: {}", run.index, run.name, state.detail);
      return std::nullopt;
    }
    if (!fs::exists(d / "config.json", ec)) write_file_atomic(d / "config.json", run.config.dump(2) + "\n");
    if (state.state == SweepRunState::Failed) remove_failed_marker(d);
    const char* action = state.state == SweepRunState::Pending ? "start"
                         : state.state == SweepRunState::Failed ? "retry"
                                                                : "resume";
    say("[{}] {:<8} {}", run.index, action, run.name);

    ChildSpec spec;
    // /proc/self/exe: this very binary, even if the file was replaced since the sweep started.
    spec.argv = {"/proc/self/exe", "run",    (d / "config.json").string(), "--out", d.string(),
                 "--resume",       "--no-progress"};
    spec.output = d / "output.log";
    spec.env = jobs.thread_env;
    if (!jobs.gpus.empty()) spec.env.push_back("CUDA_VISIBLE_DEVICES=" + jobs.gpus[static_cast<std::size_t>(slot)]);
    spec.inherit_fd = lock->fd();
    spec.env.push_back(fmt::format("{}={}", kRunLockFdVariable, lock->fd()));  // the run adopts it
    locks_.emplace(run.index, std::move(*lock));
    return spec;
  }

  void finish(const SweepRun& run, const ChildExit& exit) {
    const fs::path d = dir(run);
    const bool stopped = exit.exit_code == kExitInterrupted ||
                         exit.signal == SIGINT || exit.signal == SIGTERM || exit.signal == SIGUSR1;
    const RunDirState state = inspect_run(d);
    if (stopped) {
      ++interrupted_;
      say("[{}] stopped  {}: interrupted, resumable", run.index, run.name);
    } else if (exit.exit_code == kExitOk && is_result(state.state)) {
      say("[{}] {:<8} {}: {}", run.index, to_string(state.state), run.name, state.detail);
    } else {
      RunFailure failure{exit.exit_code, exit.signal, output_tail(d / "output.log")};
      if (exit.exit_code == kExitOk)  // a run that says it ended but left no result
        failure.output_tail += fmt::format("\nskillrun sweep: the run exited 0 but summary.json says {}\n",
                                           to_string(state.state));
      write_failed_marker(d, failure);
      say("[{}] FAILED   {}: {} (output: {})", run.index, run.name, inspect_run(d).detail,
          (d / "output.log").string());
    }
    locks_.erase(run.index);
  }

  void print_table() const {
    std::map<std::string, int> counts;
    std::size_t name_width = 4;
    for (const SweepRun* run : selected_) name_width = std::max(name_width, run->name.size());
    say("{:>5}  {:<11}  {:<{}}  {}", "index", "status", "name", name_width, "detail");
    for (const SweepRun* run : selected_) {
      const RunDirState s = inspect_run(dir(*run));
      std::string detail = s.detail;
      if (const auto diff = config_difference(dir(*run), run->config, "in the sweep")) detail = "CONFIG DIFFERS: " + *diff;
      const std::string row = fmt::format("{:>5}  {:<11}  {:<{}}  {}", run->index, to_string(s.state), run->name,
                                          name_width, detail);
      say("{}", row.substr(0, row.find_last_not_of(' ') + 1));
      ++counts[to_string(s.state)];
    }
    std::string totals;
    for (const auto& [state, n] : counts) totals += fmt::format("{}{} {}", totals.empty() ? "" : ", ", n, state);
    say("{} run{}: {}", selected_.size(), selected_.size() == 1 ? "" : "s", totals);
  }

  const SweepOptions& options_;
  Sweep sweep_;
  fs::path out_;
  std::vector<const SweepRun*> selected_;
  std::vector<const SweepRun*> todo_;
  std::map<std::size_t, FileLock> locks_;  // held while each run's process lives
  int interrupted_ = 0;
};

int cmd_sweep(const SweepOptions& options) {
  SweepCommand command(options, load_sweep(options.sweep_path, options.overrides));
  return options.list ? command.list() : command.run();
}

}  // namespace

CLI::App* add_sweep_command(CLI::App& app, std::function<int()>& action) {
  auto options = std::make_shared<SweepOptions>();
  CLI::App* cmd =
      app.add_subcommand("sweep", "run a sweep file's grid of runs: skips finished runs, resumes unfinished ones");
  cmd->add_option("sweep", options->sweep_path, "sweep file (JSON): base config, axes, zip groups")->required();
  cmd->add_option("--out", options->out_dir, "output directory (default runs/<sweep name>)");
  cmd->add_option("--jobs", options->jobs, "runs at once: N, or gpu (one per visible GPU)")->capture_default_str();
  CLI::Option* list = cmd->add_flag("--list", options->list, "print the runs and their status; run nothing");
  cmd->add_option("--format", options->format, "--list output: table | count | json")
      ->check(CLI::IsMember({"table", "count", "json"}))
      ->needs(list)
      ->capture_default_str();
  cmd->add_option("--index", options->index, "run only run I (the Slurm array index)");
  cmd->add_flag("--retry-failed", options->retry_failed, "run failed runs again");
  cmd->add_option("--set", options->overrides,
                  "override a key of the base config: --set train.max_steps=500 (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--on-interrupt", options->on_interrupt,
                  "shell command run when the sweep is interrupted, before it exits 3 (e.g. a Slurm requeue); "
                  "$SKILLRUN_STOP_SIGNAL holds the signal's name (USR1, TERM, INT)");
  action = [options] { return cmd_sweep(*options); };
  return cmd;
}

}  // namespace skillrun
