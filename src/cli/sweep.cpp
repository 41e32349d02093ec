// `skillrun sweep SWEEP.json`: the sweep's runs, each in OUT/<run name>, each run by a child
// `skillrun run OUT/<name>/config.json --out OUT/<name> --resume --no-progress` so that one
// failing run never stops the others. Finished runs (done, diverged) are skipped, unfinished
// ones resumed, failed ones re-run only with --retry-failed; the statuses come from the run
// directories alone, so a second invocation of a finished sweep does no work.
#include "cli/sweep.h"

#include "core/strings.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend/backend.h"
#include "cli/bench.h"
#include "cli/common.h"
#include "config/experiment.h"
#include "core/error.h"
#include "core/fs.h"
#include "sweep/launcher.h"
#include "sweep/manifest.h"
#include "sweep/packing.h"
#include "sweep/run_status.h"
#include "sweep/sweep.h"
#include "train/run_monitor.h"  // seconds_since

namespace skillrun {
namespace {

namespace fs = std::filesystem;

struct SweepOptions {
  std::string sweep_path;
  std::string out_dir;        // empty: runs/<sweep name>
  std::string jobs = "1";     // N, or "gpu": one per visible GPU (processes: runs, or packs)
  std::string pack = "auto";  // N | auto | off: runs per process (docs/SWEEPS.md, "Packs")
  bool list = false;
  std::string format = "table";  // --list output: table | count | json
  std::optional<int64_t> index;  // --index; empty: every run
  bool retry_failed = false;
  std::vector<std::string> overrides;  // --set, applied to the base config
  std::string on_interrupt;            // shell command run before exiting 3
  std::string base;                    // --base CONFIG: a sweep from the command line (no file)
  std::vector<std::string> axes;       // --axis KEY=V1,V2,... with --base
};

// The sweep file of `--base CONFIG --axis KEY=V1,V2 ...`, written into the output directory so
// that the same sweep can be run again, resumed or listed from it.
constexpr const char* kMultirunFile = "multirun.json";

// The program as the user ran it (build/bin/skillrun, skillrun on the PATH), for hints to copy.
std::string program_name() {
  const std::vector<std::string> args = own_command_line();
  return args.empty() || args.front().empty() ? "skillrun" : args.front();
}

// "a,b,{\"x\":1,\"y\":2},[3,4]" -> the four values, split at the commas outside brackets and quotes;
// each parsed as JSON when it parses (numbers, booleans, objects), else kept as a string.
std::vector<nlohmann::ordered_json> axis_values(const std::string& key, const std::string& text) {
  std::vector<std::string> parts{""};
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '\\' && i + 1 < text.size()) {  // an escaped character, kept as written
        parts.back() += c;
        parts.back() += text[++i];
        continue;
      }
      if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 0) {
      parts.emplace_back();
      continue;
    }
    parts.back() += c;
  }
  std::vector<nlohmann::ordered_json> values;
  for (const std::string& part : parts) {
    if (part.empty()) throw UsageError(fmt::format("--axis {}: an empty value in \"{}\"", key, text));
    nlohmann::json holder;
    apply_override(holder, "v=" + part);  // --set's rule: JSON when it parses, else a string
    values.push_back(nlohmann::ordered_json::parse(holder["v"].dump()));
  }
  return values;
}

// The sweep spec of --base/--axis, as a sweep file would hold it, self-contained: the base is
// the config with --set applied, so `skillrun sweep OUT/multirun.json` needs nothing else.
nlohmann::ordered_json multirun_spec(const SweepOptions& options) {
  std::error_code ec;
  const fs::path base = fs::absolute(options.base, ec);
  if (!fs::is_regular_file(base, ec)) throw UsageError(fmt::format("--base {}: no such file", options.base));
  nlohmann::ordered_json config = read_ordered_json_file(base.string());
  for (const std::string& assignment : options.overrides) {
    nlohmann::json plain = nlohmann::json::parse(config.dump());
    apply_override(plain, assignment);
    config = nlohmann::ordered_json::parse(plain.dump());
  }
  nlohmann::ordered_json axes = nlohmann::ordered_json::object();
  for (const std::string& axis : options.axes) {
    const auto eq = axis.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError(fmt::format("--axis \"{}\": expected KEY=V1,V2,... such as model.width=250,450", axis));
    const std::string key = axis.substr(0, eq);
    if (axes.contains(key)) throw UsageError(fmt::format("--axis {} is given twice", key));
    axes[key] = axis_values(key, axis.substr(eq + 1));
  }
  // The name must be a safe directory name, whatever the file is called (`.hidden.json`).
  return {{"name", safe_path_component(format_sweep_value(base.stem().string()) + "-multirun")},
          {"base", config},
          {"axes", axes}};
}

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

// Which runs share a process. --pack N: packs of at most N runs of one pack_signature, a pure
// function of the sweep (so --index I and `--list --format count` count packs, and every Slurm
// array task forms the same packs); auto: on a GPU, every run of one signature in one pack as
// far as the device memory goes, on the CPU one run per process (a pack there only saves the
// shared batches: measured no faster than --jobs, docs/SWEEPS.md); off: one run per process.
struct PackPlan {
  bool packed = false;
  bool by_index = false;  // --index I selects pack I (an explicit --pack N)
  std::vector<Pack> packs;
  std::vector<std::string> notes;  // how auto chose, and packs split to fit
};

constexpr std::size_t kAutoPackRuns = 64;

bool runs_on_gpu(const std::vector<SweepRun>& runs) {
  if (runs.empty()) return false;
  const DeviceChoice device = parse_experiment(runs.front().config).device;
  return device == DeviceChoice::Cuda || (device == DeviceChoice::Auto && cuda_backend_available());
}

PackPlan plan_sweep_packs(const std::string& pack, const Sweep& sweep, bool index_given) {
  PackPlan plan;
  if (pack == "off") return plan;
  std::size_t max_runs = 0;
  if (pack == "auto") {
    if (index_given) return plan;  // run I alone: auto depends on the machine, an array task must not
    if (!runs_on_gpu(sweep.runs)) return plan;
    max_runs = kAutoPackRuns;
  } else {
    try {
      std::size_t used = 0;
      const long n = std::stol(pack, &used);
      if (used != pack.size() || n < 1) throw std::invalid_argument(pack);
      max_runs = static_cast<std::size_t>(n);
    } catch (const std::exception&) {
      throw UsageError("--pack \"" + pack + "\": expected a positive number of runs per pack, auto or off");
    }
    plan.by_index = true;
  }
  plan.packed = true;
  plan.packs = plan_packs(sweep.runs, max_runs);
  const auto alone = std::count_if(plan.packs.begin(), plan.packs.end(), [](const Pack& p) { return p.alone; });
  if (alone > 0)
    plan.notes.push_back(fmt::format("{} run{} cannot share a pack (icl_linreg): each is a pack of its own, run alone",
                                     alone, alone == 1 ? "" : "s"));
  if (pack == "auto") {
    // Fitted to the GPU's memory (pack_memory_budget). An explicit --pack N is not: its packs
    // must be the same on every machine (Slurm array indices), and a pack process trains runs
    // that do not fit its machine as consecutive packs itself.
    plan.packs = fit_packs(plan.packs, sweep.runs, pack_memory_budget(true), plan.notes);
    plan.notes.insert(plan.notes.begin(), "--pack auto: runs of one shape share a pack on the GPU");
  }
  return plan;
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
    plan_ = plan_sweep_packs(options.pack, sweep_, options.index.has_value());
    for (std::size_t p = 0; p < plan_.packs.size(); ++p)
      for (std::size_t i : plan_.packs[p].runs) pack_of_[i] = p;
    if (options.index && plan_.by_index) {
      // With --pack N, I is a pack (a Slurm array task trains one pack).
      if (*options.index < 0 || static_cast<std::size_t>(*options.index) >= plan_.packs.size())
        throw UsageError(fmt::format("--index {} is out of range: {} forms {} packs with --pack {} (0..{})",
                                     *options.index, options.sweep_path, plan_.packs.size(), options.pack,
                                     plan_.packs.size() - 1));
      for (std::size_t i : plan_.packs[static_cast<std::size_t>(*options.index)].runs)
        selected_.push_back(&sweep_.runs[i]);
    } else if (options.index) {
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
      // What a Slurm array spans: packs with an explicit --pack N, else runs.
      say("{}", plan_.by_index && !options_.index ? plan_.packs.size() : selected_.size());
    } else if (options_.format == "json") {
      nlohmann::json runs = nlohmann::json::array();
      for (const SweepRun* run : selected_) {
        const RunDirState s = inspect_run(dir(*run));
        nlohmann::json entry = {{"index", run->index}, {"name", run->name}, {"dir", dir(*run).string()},
                                {"status", to_string(s.state)}, {"detail", s.detail}};
        if (plan_.packed) entry["pack"] = pack_of_.at(run->index);
        runs.push_back(entry);
      }
      say("{}", runs.dump(2));
    } else {
      print_table();
      print_cost_estimate();
    }
    return kExitOk;
  }

  // Makes the output directory this sweep's, before anything is written there: refuses one that
  // holds no sweep (a user's files) or that another sweep is writing, then holds its sweep.lock
  // until the sweep ends. Once per process.
  void claim_out_dir() {
    if (out_lock_) return;
    check_sweep_directory(out_, sweep_);
    std::error_code ec;
    fs::create_directories(out_, ec);
    if (ec) throw FileError(fmt::format("cannot create {}: {}", out_.string(), ec.message()), out_.string(), ec.value());
    out_lock_.emplace(lock_sweep_directory(
        out_, !options_.index,
        fmt::format("pid {}, skillrun sweep {}{}", ::getpid(), sweep_.name,
                    options_.index ? fmt::format(" --index {}", *options_.index) : std::string())));
  }

  int run() {
    check_configs();
    if (plan_.packed) {
      // A pack process holds a few files per run: checked before anything is written or launched.
      std::size_t largest = 0;
      for (const Pack& p : plan_.packs) largest = std::max(largest, p.runs.size());
      check_open_file_limit(largest, "--pack " + options_.pack);
    }
    const JobPlan jobs = plan_jobs(options_.jobs);
    try {
      claim_out_dir();
      return run_claimed(jobs);
    } catch (const RuntimeError& e) {
      // The sweep's own bookkeeping failed (a full disk, say): the runs it had started were told
      // to stop and checkpointed. What is known of every run is printed before the error.
      if (launching_) print_table();
      const auto* file = dynamic_cast<const FileError*>(&e);
      if (file != nullptr && file->error_number() == ENOSPC)
        throw RuntimeError(fmt::format("no space left on device while writing {}: the sweep stopped; free space and "
                                       "run it again to resume",
                                       file->file()));
      if (!launching_) throw;
      throw RuntimeError(fmt::format("{}: the sweep stopped; run it again to resume once this is mended", e.what()));
    }
  }

 private:
  int run_claimed(const JobPlan& jobs) {
    nlohmann::ordered_json manifest = sweep_manifest(sweep_, own_command_line());
    if (plan_.packed) {
      // Which pack trains each run, and where its process writes.
      nlohmann::ordered_json packs = nlohmann::ordered_json::array();
      for (std::size_t p = 0; p < plan_.packs.size(); ++p)
        packs.push_back({{"pack", p}, {"runs", plan_.packs[p].runs}, {"output", pack_log(p).string()}});
      for (auto& entry : manifest["runs"]) entry["pack"] = pack_of_.at(entry["index"].get<std::size_t>());
      manifest["pack"] = options_.pack;
      manifest["packs"] = packs;
    }
    write_manifest(out_, manifest);

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
    finished_before_ = static_cast<std::size_t>(finished);
    failed_before_ = static_cast<std::size_t>(failed_kept);
    say("sweep {}: {} run{} in {}", sweep_.name, selected_.size(), selected_.size() == 1 ? "" : "s", out_.string());
    if (finished > 0) say("skipped {} finished run{} (done or diverged)", finished, finished == 1 ? "" : "s");
    if (failed_kept > 0)
      say("skipped {} failed run{}: --retry-failed runs them again", failed_kept, failed_kept == 1 ? "" : "s");
    for (const std::string& note : plan_.notes) say("{}", note);
    launching_ = true;
    int stop_signal = 0;
    if (!plan_.packed) {
      if (!todo_.empty()) say("running {} with {} at once", todo_.size(), jobs.slots);
      stop_signal = run_children(
          todo_.size(), jobs.slots, [&](std::size_t i, int slot) { return launch(*todo_[i], jobs, slot); },
          [&](std::size_t i, const ChildExit& exit) {
            finish(*todo_[i], exit, dir(*todo_[i]) / "output.log");
            say_progress();
          });
    } else {
      std::vector<std::size_t> pack_order;                    // packs with a run to train, in order
      std::map<std::size_t, std::vector<const SweepRun*>> todo_of;  // by pack
      for (const SweepRun* run : todo_) todo_of[pack_of_.at(run->index)].push_back(run);
      for (const auto& [p, runs] : todo_of) pack_order.push_back(p);
      if (!todo_.empty())
        say("running {} run{} in {} pack{}, {} pack{} at once", todo_.size(), todo_.size() == 1 ? "" : "s",
            pack_order.size(), pack_order.size() == 1 ? "" : "s", jobs.slots, jobs.slots == 1 ? "" : "s");
      std::map<std::size_t, std::vector<const SweepRun*>> launched;  // by pack
      stop_signal = run_children(
          pack_order.size(), jobs.slots,
          [&](std::size_t i, int slot) -> std::optional<ChildSpec> {
            const std::size_t p = pack_order[i];
            if (!plan_.packs[p].alone) return launch_pack(p, todo_of[p], launched[p], jobs, slot);
            auto spec = launch(*todo_of[p].front(), jobs, slot);  // a run that cannot pack
            if (spec) launched[p] = todo_of[p];
            return spec;
          },
          [&](std::size_t i, const ChildExit& exit) {
            const std::size_t p = pack_order[i];
            for (const SweepRun* run : launched[p])
              finish(*run, exit, plan_.packs[p].alone ? dir(*run) / "output.log" : pack_log(p));
            say_progress();
          });
    }

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

  // Why run's directory may not be run: its config.json cannot be read as a config (corrupt,
  // hand-edited), or it holds a run of another config; empty when neither.
  struct ConfigProblem {
    bool unreadable = false;
    std::string detail;  // unreadable: the reason, naming the file; else the keys that differ
  };
  std::optional<ConfigProblem> config_problem(const SweepRun& run) const {
    const fs::path file = dir(run) / "config.json";
    try {
      (void)resolved_config_of(dir(run));
    } catch (const std::exception& e) {
      const std::string why = e.what();
      return ConfigProblem{true, why.starts_with(file.string()) ? why : file.string() + ": " + why};
    }
    if (const auto diff = config_difference(dir(run), run.config, "in the sweep")) return ConfigProblem{false, *diff};
    return std::nullopt;
  }

  // A run directory whose config.json no longer matches the sweep is never overwritten or
  // resumed: the sweep file (or --set) changed under it; nor one whose config.json cannot be
  // read. Checked for all before anything runs.
  void check_configs() const {
    std::string unreadable, differ;
    for (const SweepRun* run : selected_)
      if (const auto problem = config_problem(*run)) {
        if (problem->unreadable)
          unreadable += fmt::format("\n  run {}: {}", run->index, problem->detail);
        else
          differ += fmt::format("\n  run {}: {} differs from the sweep: {}", run->index,
                                (dir(*run) / "config.json").string(), problem->detail);
      }
    if (!unreadable.empty())
      throw UsageError("run directories hold a config.json that is not a valid config (damaged or edited by hand); "
                       "nothing was run or overwritten. Repair or remove these files, or move the directories away:" +
                       unreadable + differ);
    if (!differ.empty())
      throw UsageError("run directories hold runs of a different config (the sweep file or --set changed); "
                       "nothing was run or overwritten. Restore the sweep, or move these directories away:" +
                       differ);
  }

  fs::path pack_log(std::size_t pack) const { return out_ / "packs" / fmt::format("pack-{}.log", pack); }

  // Locks run's directory and readies it to be trained (config.json, no failed marker); empty
  // when another process holds it or it finished meanwhile.
  std::optional<FileLock> prepare(const SweepRun& run, const std::string& where) {
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
    say("[{}] {:<8} {}{}", run.index, action, run.name, where);
    return lock;
  }

  void child_environment(ChildSpec& spec, const JobPlan& jobs, int slot) const {
    spec.env = jobs.thread_env;
    if (!jobs.gpus.empty()) spec.env.push_back("CUDA_VISIBLE_DEVICES=" + jobs.gpus[static_cast<std::size_t>(slot)]);
  }

  // One process for the runs of pack `pack` still to train; `launched` gets those it trains.
  std::optional<ChildSpec> launch_pack(std::size_t pack, const std::vector<const SweepRun*>& runs,
                                       std::vector<const SweepRun*>& launched, const JobPlan& jobs, int slot) {
    ChildSpec spec;
    spec.argv = {"/proc/self/exe", "pack"};
    std::string fds;
    for (const SweepRun* run : runs) {
      std::optional<FileLock> lock = prepare(*run, fmt::format(" (pack {})", pack));
      if (!lock) continue;
      spec.argv.push_back(dir(*run).string());
      spec.inherit_fds.push_back(lock->fd());
      fds += (fds.empty() ? "" : ",") + std::to_string(lock->fd());
      locks_.emplace(run->index, std::move(*lock));
      launched.push_back(run);
      std::error_code ec;
      summary_before_[run->index] = fs::last_write_time(dir(*run) / "summary.json", ec);  // ec: none yet
    }
    if (launched.empty()) return std::nullopt;
    spec.argv.push_back("--no-progress");
    spec.argv.push_back("--pack-log");  // each run's run.log names it
    spec.argv.push_back(pack_log(pack).string());
    std::error_code ec;
    fs::create_directories(pack_log(pack).parent_path(), ec);
    if (ec) throw RuntimeError(fmt::format("cannot create {}: {}", pack_log(pack).parent_path().string(), ec.message()));
    spec.output = pack_log(pack);
    child_environment(spec, jobs, slot);
    spec.env.push_back(fmt::format("{}={}", kRunLockFdVariable, fds));  // each run adopts its own
    return spec;
  }

  std::optional<ChildSpec> launch(const SweepRun& run, const JobPlan& jobs, int slot) {
    const fs::path d = dir(run);
    std::optional<FileLock> lock = prepare(run, "");
    if (!lock) return std::nullopt;

    ChildSpec spec;
    // /proc/self/exe: this very binary, even if the file was replaced since the sweep started.
    spec.argv = {"/proc/self/exe", "run",    (d / "config.json").string(), "--out", d.string(),
                 "--resume",       "--no-progress"};
    spec.output = d / "output.log";
    child_environment(spec, jobs, slot);
    spec.inherit_fds.push_back(lock->fd());
    spec.env.push_back(fmt::format("{}={}", kRunLockFdVariable, lock->fd()));  // the run adopts it
    locks_.emplace(run.index, std::move(*lock));
    return spec;
  }

  // `output`: where the run's process wrote (its output.log, or its pack's log).
  void finish(const SweepRun& run, const ChildExit& exit, const fs::path& output) {
    const fs::path d = dir(run);
    const bool stopped = exit.exit_code == kExitInterrupted ||
                         exit.signal == SIGINT || exit.signal == SIGTERM || exit.signal == SIGUSR1;
    const RunDirState state = inspect_run(d);
    if (is_result(state.state)) ++ended_here_;
    // A run of a pack may have finished before its pack was stopped or failed.
    if (plan_.packed && is_result(state.state) && exit.exit_code != kExitOk) {
      say("[{}] {:<8} {}: {}", run.index, to_string(state.state), run.name, state.detail);
    } else if (stopped) {
      ++interrupted_;
      say("[{}] stopped  {}: interrupted, resumable", run.index, run.name);
    } else if (exit.exit_code == kExitOk && is_result(state.state)) {
      say("[{}] {:<8} {}: {}", run.index, to_string(state.state), run.name, state.detail);
    } else {
      RunFailure failure{exit.exit_code, exit.signal, output_tail(output)};
      if (exit.exit_code == kExitOk)  // a run that says it ended but left no result
        failure.output_tail += fmt::format("\nskillrun sweep: the run exited 0 but summary.json says {}\n",
                                           to_string(state.state));
      std::error_code ec;
      // A run that failed alone in its pack says why in the summary.json its pack wrote (the
      // pack's output ends with the others' results): that is the line failed.json ends with.
      if (const auto before = summary_before_.find(run.index);
          before != summary_before_.end() && state.state == SweepRunState::Failed && !state.detail.empty() &&
          fs::last_write_time(d / "summary.json", ec) != before->second && !ec)
        failure.output_tail += fmt::format("\nskillrun sweep: {}: {}\n", (d / "summary.json").string(), state.detail);
      if (!fs::exists(d, ec)) {  // deleted while it trained: a directory with only failed.json, for --retry-failed
        fs::create_directories(d, ec);
        failure.output_tail += fmt::format(
            "\nskillrun sweep: {} was deleted while the run trained; it now holds only this failed.json "
            "(--retry-failed runs it again)\n",
            d.string());
      }
      write_failed_marker(d, failure);
      ++failed_here_;
      say("[{}] FAILED   {}: {} (output: {})", run.index, run.name, inspect_run(d).detail, output.string());
    }
    locks_.erase(run.index);
  }

  // What the unfinished runs cost at the pace of the finished ones (from their summaries: seconds
  // per step on their device), or how to find out when none has finished.
  void print_cost_estimate() const {
    int64_t steps_left = 0;
    std::size_t unfinished = 0;
    double seconds = 0, steps = 0;
    int timed = 0;  // finished runs with a step time
    std::map<std::string, int> devices;
    for (const SweepRun* run : selected_) {
      const fs::path d = dir(*run);
      if (is_result(inspect_run(d).state)) {
        if (const auto summary = read_summary(d)) {
          const double s = summary->value("seconds", 0.0), n = static_cast<double>(summary->value("steps", 0));
          if (s > 0 && n > 0) {
            seconds += s;
            steps += n;
            ++timed;
            ++devices[summary->value("device", std::string("?"))];
          }
        }
        continue;
      }
      ++unfinished;
      int64_t done = 0;  // the end of metrics.csv is enough for an estimate; unreadable: from step 0
      try {
        if (const auto rows = last_metrics_rows(d, 1); !rows.empty()) done = rows.back().first;
      } catch (const RuntimeError&) {
      }
      steps_left += std::max<int64_t>(0, run->config["train"].value("max_steps", int64_t{0}) - done);
    }
    if (unfinished == 0) return;
    if (steps <= 0) {
      // No finished run to take a pace from: time a few steps of the first unfinished one here.
      const SweepRun* first = nullptr;
      for (const SweepRun* run : selected_)
        if (first == nullptr && !is_result(inspect_run(dir(*run)).state)) first = run;
      std::optional<StepTiming> timed_now;
      try {
        if (first != nullptr) timed_now = time_a_few_steps(first->config);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "cost: could not time a step of run %zu: %s\n", first->index, e.what());
      }
      if (!timed_now) {
        say("cost: {} unfinished run{}, up to {} steps; no finished run to take a step time from "
            "(`skillrun bench CONFIG` times a step on this machine)",
            unfinished, unfinished == 1 ? "" : "s", steps_left);
        return;
      }
      say("cost: {} unfinished run{}, up to {} steps; no run has finished, and 3 steps of run {} timed just now take "
          "{:.3g} ms each ({}; evals not counted): at most {} one run at a time (runs that converge stop sooner)",
          unfinished, unfinished == 1 ? "" : "s", steps_left, first->index, timed_now->seconds_per_step * 1e3,
          timed_now->device, format_duration(timed_now->seconds_per_step * static_cast<double>(steps_left)));
      return;
    }
    const double per_step = seconds / steps;
    std::string device = devices.begin()->first;
    if (devices.size() > 1) device += fmt::format(" and {} other device(s)", devices.size() - 1);
    const double total = per_step * static_cast<double>(steps_left);
    say("cost: {} unfinished run{}, up to {} steps; at {:.3g} ms per step (the {} finished runs, {}) at most {} "
        "one run at a time (runs that converge stop sooner)",
        unfinished, unfinished == 1 ? "" : "s", steps_left, per_step * 1e3, timed, device, format_duration(total));
  }

  // After each run (or pack) that ends: how far the sweep is, and a time left at this
  // invocation's pace (its wall time per finished run, with its processes at once).
  // Counted as runs end (no run directory read again: a sweep of thousands stays cheap).
  void say_progress() {
    const std::size_t finished = finished_before_ + ended_here_, failed = failed_before_ + failed_here_;
    const std::size_t left = selected_.size() - finished - failed;
    std::string eta;
    if (ended_here_ > 0 && left > 0)
      eta = fmt::format("; about {} left at this sweep's pace",
                        format_duration(seconds_since(started_) / static_cast<double>(ended_here_) *
                                       static_cast<double>(left)));
    say("progress: {}/{} runs finished{}, {} to go{}", finished, selected_.size(),
        failed > 0 ? fmt::format(" ({} failed)", failed) : std::string(), left, eta);
  }

  // Run names for the table: "model.width=64,optimizer.lr=0.01" -> "width=64,lr=0.01", each key
  // shortened to its last dotted part where no other key of the sweep ends the same way, the
  // values whole. `shortened` lists what was shortened ("width = model.width").
  std::map<std::size_t, std::string> display_names(std::vector<std::string>& shortened) const {
    const auto parts_of = [](const std::string& name) {
      std::vector<std::string> parts;
      for (const std::string& piece : split(name, ',')) {
        if (piece.find('=') == std::string::npos && !parts.empty())
          parts.back() += "," + piece;  // a comma inside a value
        else
          parts.push_back(piece);
      }
      return parts;
    };
    const auto last_part = [](const std::string& key) { return key.substr(key.rfind('.') + 1); };
    std::map<std::string, std::set<std::string>> keys_of_short;  // "lr" -> {"optimizer.lr", ...}
    for (const SweepRun* run : selected_)
      for (const std::string& part : parts_of(run->name))
        if (const auto eq = part.find('='); eq != std::string::npos)
          keys_of_short[last_part(part.substr(0, eq))].insert(part.substr(0, eq));
    std::map<std::size_t, std::string> names;
    std::set<std::string> noted;
    for (const SweepRun* run : selected_) {
      std::string shown;
      for (const std::string& part : parts_of(run->name)) {
        std::string key = part.substr(0, part.find('=')), rest = part.substr(key.size());
        const std::string short_key = last_part(key);
        if (short_key != key && !rest.empty() && keys_of_short[short_key].size() == 1) {
          if (noted.insert(key).second) shortened.push_back(short_key + " = " + key);
          key = short_key;
        }
        shown += (shown.empty() ? "" : ",") + key + rest;
      }
      names[run->index] = shown;
    }
    return names;
  }

  void print_table() const {
    std::map<std::string, int> counts;
    std::vector<std::string> shortened;
    const std::map<std::size_t, std::string> names = display_names(shortened);
    std::size_t name_width = 4;
    for (const auto& [index, name] : names) name_width = std::max(name_width, name.size());
    // 100 columns: index 5, pack 4, status 11 and a detail of about 24 leave the rest to names
    // (`--format json` has them whole).
    const std::size_t fixed = 5 + 2 + (plan_.packed ? 6 : 0) + 11 + 2 + 2 + 24;
    name_width = std::min(name_width, std::max<std::size_t>(20, 100 - fixed));
    const std::string pack_header = plan_.packed ? fmt::format("{:>4}  ", "pack") : "";
    say("{:>5}  {}{:<11}  {:<{}}  {}", "index", pack_header, "status", "name", name_width, "detail");
    for (const SweepRun* run : selected_) {
      const RunDirState s = inspect_run(dir(*run));
      std::string detail = s.detail;
      if (const auto problem = config_problem(*run))
        detail = (problem->unreadable ? "CONFIG UNREADABLE: " : "CONFIG DIFFERS: ") + problem->detail;
      const std::string pack = plan_.packed ? fmt::format("{:>4}  ", pack_of_.at(run->index)) : "";
      const std::string row = fmt::format("{:>5}  {}{:<11}  {:<{}}  {}", run->index, pack, to_string(s.state),
                                          fit_middle(names.at(run->index), name_width), name_width, detail);
      say("{}", row.substr(0, row.find_last_not_of(' ') + 1));
      ++counts[to_string(s.state)];
    }
    if (!shortened.empty())
      say("(names: {}; the directories keep the full names, --format json lists them)",
          fmt::format("{}", fmt::join(shortened, ", ")));
    std::string totals;
    for (const auto& [state, n] : counts) totals += fmt::format("{}{} {}", totals.empty() ? "" : ", ", n, state);
    say("{} run{}{}: {}", selected_.size(), selected_.size() == 1 ? "" : "s",
        plan_.packed ? fmt::format(" in {} pack{}", plan_.packs.size(), plan_.packs.size() == 1 ? "" : "s") : "",
        totals);
  }

  const SweepOptions& options_;
  Sweep sweep_;
  fs::path out_;
  std::vector<const SweepRun*> selected_;
  std::vector<const SweepRun*> todo_;
  std::map<std::size_t, FileLock> locks_;  // held while each run's process lives
  std::map<std::size_t, fs::file_time_type> summary_before_;  // a packed run's summary.json at launch
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::size_t ended_here_ = 0;  // runs this invocation saw end with a result
  std::size_t failed_here_ = 0;  // ... and fail
  std::size_t finished_before_ = 0, failed_before_ = 0;  // results and kept failures at the start
  PackPlan plan_;
  std::map<std::size_t, std::size_t> pack_of_;  // run index -> pack, when packed
  int interrupted_ = 0;
  std::optional<FileLock> out_lock_;  // sweep.lock, held while this sweep writes out_
  bool launching_ = false;            // runs may have started: a failure prints the table first
};

int cmd_sweep(const SweepOptions& options) {
  if (options.base.empty()) {
    if (options.sweep_path.empty()) throw UsageError("sweep needs a SWEEP file, or --base CONFIG with --axis KEY=V1,V2");
    if (!options.axes.empty()) throw UsageError("--axis goes with --base CONFIG, not with a sweep file");
    SweepCommand command(options, load_sweep(options.sweep_path, options.overrides));
    return options.list ? command.list() : command.run();
  }
  if (!options.sweep_path.empty()) throw UsageError("give a SWEEP file or --base CONFIG, not both");
  if (options.axes.empty()) throw UsageError("--base CONFIG needs at least one --axis KEY=V1,V2,...");
  const nlohmann::ordered_json spec = multirun_spec(options);
  Sweep sweep = expand_sweep(spec, fs::path(options.base).parent_path(), spec["name"].get<std::string>());
  const fs::path out = options.out_dir.empty() ? fs::path("runs") / sweep.name : fs::path(options.out_dir);
  const fs::path file = out / kMultirunFile;
  // The same command again finds its file and resumes; other axes in the same place are refused.
  std::error_code ec;
  if (fs::exists(file, ec)) {
    const nlohmann::ordered_json before = read_ordered_json_file(file.string());
    if (before != spec)
      throw UsageError(fmt::format("{} holds a sweep of other axes or another base ({}); choose another --out, or "
                                   "run that one with: {} sweep {} --out {}",
                                   out.string(), file.string(), program_name(), file.string(), out.string()));
  }
  sweep.file = file;
  SweepOptions with_out = options;
  with_out.out_dir = out.string();
  with_out.sweep_path = file.string();  // what messages name
  SweepCommand command(with_out, std::move(sweep));  // checks --index and --pack first
  if (!options.list) {
    command.claim_out_dir();  // a directory of someone else's files, or of a live sweep, is refused
    write_file_atomic(file, spec.dump(2) + "\n");
    say("wrote {}: run it again, resume it or list it with: {} sweep {} --out {}", file.string(), program_name(),
        file.string(), out.string());
  }
  return options.list ? command.list() : command.run();
}

}  // namespace

CLI::App* add_sweep_command(CLI::App& app, std::function<int()>& action) {
  auto options = std::make_shared<SweepOptions>();
  CLI::App* cmd =
      app.add_subcommand("sweep", "run a sweep file's grid of runs: skips finished runs, resumes unfinished ones");
  cmd->add_option("sweep", options->sweep_path, "sweep file (JSON): base config, axes, zip groups");
  cmd->add_option("--base", options->base, "a sweep without a file: this config as the base (with --axis)");
  cmd->add_option("--axis", options->axes,
                  "with --base: KEY=V1,V2,... one axis (repeatable), expanded as a sweep file's axes; the sweep file "
                  "is written to OUT/multirun.json")
      ->allow_extra_args(false);
  cmd->add_option("--out", options->out_dir, "output directory (default runs/<sweep name>)");
  cmd->add_option("--jobs", options->jobs, "processes at once (runs, or packs): N, or gpu (one per visible GPU)")
      ->capture_default_str();
  cmd->add_option("--pack", options->pack,
                  "runs per process: N (packs of at most N runs of one shape; --index then picks a pack), auto "
                  "(a GPU: as many as fit; the CPU: off), off (one run per process)")
      ->capture_default_str();
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
